"""Declaring a self-check: `self_check` wraps a judge so that it always answers a `Verdict`.

A check is given what lesson cells made (a run's result, its events) and reads the
learner's answer variables. Anything not passed in is looked up by name in the running
notebook, so a self-check cell can be one call that never fails: an answer that is not
defined, still unset, of the wrong kind, or filler is a HINT before the judge runs, and
an error inside the judge is a HINT too, never a traceback in the notebook.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .expect import Expect, Unfit

Judge = Callable[..., "Verdict"]
"""The body of a check: called with every given and answer, cleaned, by name."""

_MISSING = object()
"""Marks a name that is neither passed in nor defined in the notebook."""


@dataclass(frozen=True)
class Verdict:
    """A self-check's answer: PASS, or a HINT that says where to look (never the answer)."""

    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'HINT'}: {self.message}"

    __repr__ = __str__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def passed(message: str) -> Verdict:
    """A PASS, with what the learner's answer showed."""
    return Verdict(True, message)


def hint(message: str) -> Verdict:
    """A HINT: where to look next."""
    return Verdict(False, message)


def self_check(*, given: Mapping[str, Expect] | None = None,
               answers: Mapping[str, Expect] | None = None) -> Callable[[Judge], Check]:
    """Declare a check: what lesson cells give it, which answer variables it reads, and
    what kind of value each must be; the decorated function judges them, cleaned."""
    def declare(judge: Judge) -> Check:
        """The judge, wrapped so that every call answers a Verdict."""
        return Check(judge, given or {}, answers or {})
    return declare


class Check:
    """A declared self-check: call it in a cell (``check(run)``); it returns a Verdict."""

    def __init__(self, judge: Judge, given: Mapping[str, Expect],
                 answers: Mapping[str, Expect]) -> None:
        self.judge, self.given, self.answers = judge, dict(given), dict(answers)
        functools.update_wrapper(self, judge)

    def __call__(self, *args: Any, **kwargs: Any) -> Verdict:
        """Judge the givens (``args`` in order, or by name) and the answers (by name, or
        read from the notebook); whatever happens, a Verdict."""
        try:
            return self._judged(self._values(args, kwargs))
        except Unfit as unfit:
            return hint(str(unfit))
        except Exception as err:  # a check never raises into the notebook
            return hint(f"this self-check could not judge your work ({type(err).__name__}: "
                        f"{err}): run the exercise's cells again, from its first one")

    def __repr__(self) -> str:
        names = ", ".join([*self.given, *self.answers])
        return f"<self-check {self.__name__}({names})>"

    def _values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every name the check needs: passed in, else the notebook's, else missing."""
        if len(args) > len(self.given):
            raise Unfit(f"{self.__name__} takes {len(self.given)} value(s) from lesson "
                        f"cells ({', '.join(self.given) or 'none'}), not {len(args)}")
        unknown = sorted(set(kwargs) - set(self.given) - set(self.answers))
        if unknown:
            raise Unfit(f"{self.__name__} does not read {', '.join(unknown)}")
        values = {**dict(zip(self.given, args, strict=False)), **kwargs}
        notebook = _notebook_namespace()
        return {name: values.get(name, notebook.get(name, _MISSING))
                for name in [*self.given, *self.answers]}

    def _judged(self, values: dict[str, Any]) -> Verdict:
        """Clean the givens, then the answers in order (a HINT at the first that will not
        do), then let the judge decide."""
        for name, expect in self.given.items():
            if values[name] is _MISSING or expect.unset(values[name]):
                raise Unfit(f"{name} is not there yet ({expect.what}): run the exercise's "
                            "cells from its first one")
        cleaned = {name: expect.clean(values[name], name) for name, expect in self.given.items()}
        for position, (name, expect) in enumerate(self.answers.items()):
            if values[name] is _MISSING or expect.unset(values[name]):
                _refuse_unanswered(dict(list(self.answers.items())[position:]), values)
            cleaned[name] = expect.clean(values[name], name)
        verdict = self.judge(**cleaned)
        if not isinstance(verdict, Verdict):
            raise Unfit(f"{self.__name__} gave no verdict (it returned {type(verdict).__name__})")
        return verdict


def _refuse_unanswered(answers: Mapping[str, Expect], values: Mapping[str, Any]) -> None:
    """One HINT naming every answer variable of ``answers`` that is not defined or still
    unset (at least one is)."""
    missing = [name for name in answers if values[name] is _MISSING]
    if missing:
        raise Unfit(f"{_joined(missing)} {'is' if len(missing) == 1 else 'are'} not defined: "
                    "run the answer cell above (or put back its line "
                    f"{missing[0]} = ...)")
    unset = [name for name, expect in answers.items() if expect.unset(values[name])]
    if unset:
        wanted = [f"{name} ({answers[name].what})" if answers[name].what else name
                  for name in unset]
        raise Unfit(f"set {_joined(wanted)} in the answer cell above")


def _joined(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _notebook_namespace() -> Mapping[str, Any]:
    """The running notebook's variables, where answer cells leave the answers (nothing
    outside IPython: a script or a test passes every value in)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return getattr(shell, "user_ns", None) or {}
