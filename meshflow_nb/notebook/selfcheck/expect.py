"""Expectations: what kind of value a check needs, and the HINT when a value is not that.

Each `Expect` turns a value a learner typed into one the check can use (``clean``), or
raises `Unfit` with the HINT to show: which variable, what kind of value it should be,
what it is instead. They nest: ``ListOf(Pair(Text(min_words=3), OneOf(EFFORTS)))``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...errors import MeshflowError, shown
from ...events import plural
from .text import filler_reason, first_duplicate

RUN = "the result of a run (a RunResult)"
"""How a HINT names a run's result, the kind of most of the values checks are given."""
_NUMBER = re.compile(r"\$?\s*\d+(?:\.\d*)?|\$?\s*\.\d+")


class Unfit(MeshflowError):
    """A value a check cannot use; the message is the HINT the learner reads."""


class Expect:
    """One kind of value (``kind`` says which, for the HINT); ``what`` is what it means."""

    kind = "a value"

    def __init__(self, what: str = "", *, kind: str | None = None) -> None:
        self.what = what
        if kind is not None:
            self.kind = kind

    def unset(self, value: Any) -> bool:
        """The value is the answer cell's placeholder: the learner has not answered yet."""
        return value is None

    def clean(self, value: Any, where: str) -> Any:
        """The value as the check uses it; `Unfit` when it cannot be used."""
        return value

    def refuse(self, value: Any, where: str) -> Unfit:
        """The HINT for a value of the wrong kind: what it should be, what it is."""
        return Unfit(f"{where} should be {self.kind}, not {describe(value)}")


class Count(Expect):
    """A whole number of something, zero or more (a NumPy integer will do)."""

    kind = "a whole number, such as 3"

    def clean(self, value: Any, where: str) -> int:
        """The count as an int; text that holds a number is told to lose its quotes."""
        if isinstance(value, str) and value.strip().isdigit():
            raise Unfit(f"{where} should be {self.kind}, not the text {value!r}: "
                        "drop the quotes")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.refuse(value, where)
        if value < 0:
            raise Unfit(f"{where} counts something, so it cannot be negative")
        return int(value)


class Text(Expect):
    """Text that says something: no placeholder, no filler, enough distinct words."""

    kind = "text in quotes"

    def __init__(self, what: str = "", *, min_words: int = 1, min_distinct: int = 0,
                 max_words: int | None = None, kind: str | None = None) -> None:
        super().__init__(what, kind=kind)
        self.min_words, self.min_distinct, self.max_words = min_words, min_distinct, max_words

    def unset(self, value: Any) -> bool:
        """None or blank text: an empty answer cell, not a wrong answer."""
        return value is None or (isinstance(value, str) and not value.strip())

    def clean(self, value: Any, where: str) -> str:
        """The text, stripped, once it is text that says something in few enough words."""
        if not isinstance(value, str):
            raise self.refuse(value, where)
        reason = filler_reason(value, min_words=self.min_words, min_distinct=self.min_distinct)
        if reason:
            raise Unfit(f"{where} {reason}")
        if self.max_words is not None and len(value.split()) > self.max_words:
            raise Unfit(f"{where} should be {self.kind}, not a phrase of "
                        f"{len(value.split())} words")
        return value.strip()


class OneOf(Expect):
    """One of a few words, in any case; cleaned to the word as written in ``choices``."""

    def __init__(self, choices: Iterable[str], what: str = "") -> None:
        self.choices = tuple(choices)
        *rest, last = (repr(c) for c in self.choices)
        super().__init__(what, kind=f"one of {', '.join(rest)} or {last}")

    def clean(self, value: Any, where: str) -> str:
        """The choice as ``choices`` writes it, whatever case the learner typed."""
        chosen = value.strip().lower() if isinstance(value, str) else None
        for choice in self.choices:
            if choice.lower() == chosen:
                return choice
        raise self.refuse(value, where)


class Pair(Expect):
    """Two values in brackets, ``(first, second)``; ``names`` say what each one is."""

    def __init__(self, first: Expect, second: Expect, *, names: tuple[str, str],
                 example: str, what: str = "") -> None:
        super().__init__(what, kind=f"a pair in brackets, such as {example}")
        self.parts, self.names = (first, second), names

    def clean(self, value: Any, where: str) -> tuple[Any, Any]:
        """Both parts cleaned; a HINT names the part that will not do."""
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise self.refuse(value, where)
        return tuple(part.clean(item, f"the {name} of {where}")
                     for part, item, name in zip(self.parts, value, self.names, strict=True))


class ListOf(Expect):
    """A list (or tuple) of values of one kind; with ``unique_by``, no item twice."""

    def __init__(self, item: Expect, what: str = "", *, min_len: int = 0,
                 unique_by: Callable[[Any], str] | None = None, kind: str | None = None) -> None:
        super().__init__(what, kind=kind or "a list in square brackets [...]")
        self.item, self.min_len, self.unique_by = item, min_len, unique_by

    def clean(self, value: Any, where: str) -> list[Any]:
        """Every item cleaned (a HINT names its position), and none said twice."""
        if not isinstance(value, (list, tuple)):
            raise self.refuse(value, where)
        if len(value) < self.min_len:
            raise Unfit(f"{where} has {len(value)} item(s): it needs at least {self.min_len}")
        items = [self.item.clean(item, f"{where}[{n}]") for n, item in enumerate(value)]
        if self.unique_by is not None:
            twice = first_duplicate([self.unique_by(item) for item in items])
            if twice:
                raise Unfit(f"{where}[{twice[1]}] repeats {where}[{twice[0]}]: "
                            "each entry should say something different")
        return items


class MappingOf(Expect):
    """A dict of text keys to values of one kind; each key of ``required`` filled."""

    kind = "a dict in curly brackets {...}"

    def __init__(self, value: Expect, what: str = "", *, required: Iterable[str] = (),
                 missing: str = "add entries under {}") -> None:
        super().__init__(what)
        self.value, self.required, self.missing = value, tuple(required), missing

    def clean(self, value: Any, where: str) -> dict[str, Any]:
        """Every value cleaned, once each required key holds something."""
        if not isinstance(value, Mapping):
            raise self.refuse(value, where)
        odd = next((key for key in value if not isinstance(key, str)), None)
        if odd is not None:
            raise Unfit(f"the keys of {where} should be text in quotes, not {describe(odd)}")
        empty = [key for key in self.required if _is_empty(value.get(key))]
        if empty:
            raise Unfit(self.missing.format(", ".join(empty)))
        return {key: self.value.clean(item, f"{where}[{key!r}]") for key, item in value.items()}


class Instance(Expect):
    """An object of one of ``types`` (what a lesson cell made, such as a run's result)."""

    def __init__(self, types: type | tuple[type, ...], what: str = "", *, kind: str) -> None:
        super().__init__(what, kind=kind)
        self.types = types

    def clean(self, value: Any, where: str) -> Any:
        """The object itself, when it is one of ``types``."""
        if not isinstance(value, self.types):
            raise self.refuse(value, where)
        return value


class OrNone(Expect):
    """A value a lesson cell made after an answer: None until the learner answered and
    ran that cell (the judge says what to do then), else what ``inner`` accepts."""

    def __init__(self, inner: Expect) -> None:
        super().__init__(inner.what, kind=inner.kind)
        self.inner = inner

    def unset(self, value: Any) -> bool:
        """None is no gap here: the answer comes first."""
        return False

    def clean(self, value: Any, where: str) -> Any:
        """None as it is, anything else as ``inner`` cleans it."""
        return None if value is None else self.inner.clean(value, where)


class Dollars(Expect):
    """An amount of USD: a number zero or more (a NumPy float will do), not text. With
    ``zero`` (why nothing will not do) the amount must be above zero."""

    kind = "a number of USD, such as 1.25"

    def __init__(self, what: str = "", *, zero: str | None = None) -> None:
        super().__init__(what)
        self.zero = zero

    def clean(self, value: Any, where: str) -> float:
        """The amount as a float; a number in quotes is told to lose its quotes."""
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            extra = " and the $" if "$" in value else ""
            raise Unfit(f"{where} should be a number, not the text {value!r}: drop the "
                        f"quotes{extra}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise self.refuse(value, where)
        if value < 0:
            raise Unfit(f"{where} is an amount of USD, so it cannot be negative")
        if value == 0 and self.zero is not None:
            raise Unfit(f"{where} is $0, {self.zero}: choose an amount above zero")
        return float(value)


def describe(value: Any) -> str:
    """What a value is, in a learner's words: "the text 'x'", "a list of 2 items"."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Number):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {shown(value)}" if value.strip() else "empty text"
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        noun = "dict" if isinstance(value, Mapping) else type(value).__name__
        return f"a {noun} of {plural(len(value), 'item')}"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    if callable(value):
        return "a function"
    noun = type(value).__name__
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _is_empty(value: Any) -> bool:
    """Nothing there yet: None, or an empty list, tuple, dict or text."""
    return value is None or (isinstance(value, (list, tuple, dict, str)) and not value)
