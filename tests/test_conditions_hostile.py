"""Property tests of the condition language against hostile and random input.

1. Any text either parses or raises ConditionSyntaxError; nothing else escapes.
2. Parsing and evaluating hostile text never imports, opens, evals or writes anything.
3. Random valid conditions evaluate exactly like a reference computed while generating them.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from meshflow_nb.model.conditions import (
    MAX_LENGTH,
    Condition,
    ConditionEvalError,
    ConditionSyntaxError,
    parse_condition,
)

HOSTILE_FRAGMENTS = [
    "__import__('os').system('x')",
    "().__class__.__bases__",
    "lambda: 1",
    "[x for x in y]",
    "9**9**9**9",
    "x if y else z",
    "(x := 1)",
    "a.b",
    "f(x)",
    "x[0]",
    "open('f')",
    "open('f', 'w').write('x')",
    "eval('1')",
    "exec('import os')",
    "{'a': 1}",
    "x, y",
    "import os",
    "a; b",
    "'\\x41'",
    "'unterminated",
    "\\",
    "\x00",
    "é",
    "-",
    "--1",
    ".5.",
    "1e999",
    "))",
    "((",
]
VALID_TOKENS = [
    "a",
    "score",
    "_x1",
    "0",
    "0.8",
    ".5",
    "1e3",
    "-2",
    "'x'",
    '"y"',
    "'it\\'s'",
    "true",
    "False",
    "null",
    "None",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "and",
    "or",
    "not",
    "(",
    ")",
]


def _repeat(fragment: str, count: int) -> str:
    """``fragment`` repeated ``count`` times, cut at 100,000 characters."""
    return (fragment * min(count, 100_000 // len(fragment) + 1))[:100_000]


token_soup = st.tuples(
    st.lists(st.sampled_from(VALID_TOKENS + HOSTILE_FRAGMENTS), max_size=30),
    st.sampled_from([" ", "", "\n"]),
).map(lambda parts_and_glue: parts_and_glue[1].join(parts_and_glue[0]))
huge_repetitions = st.builds(
    _repeat,
    st.sampled_from(VALID_TOKENS + HOSTILE_FRAGMENTS + ["a < 1 and ", "not ", "(", " "]),
    st.integers(min_value=1, max_value=100_000),
)
hostile_texts = st.one_of(st.text(max_size=300), token_soup, huge_repetitions)

DEEP_NESTING = "(" * 10_000 + "x" + ")" * 10_000
HUGE_TEXT = "x < 1 and " * 10_000


@settings(max_examples=400, deadline=None)
@given(hostile_texts)
@example(DEEP_NESTING)
@example(HUGE_TEXT)
@example("not " * 10_000 + "x")
@example("'" + "\\" * 100_000)
def test_any_text_parses_or_raises_a_syntax_error(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError as error:
        assert 0 <= error.position <= min(len(text), MAX_LENGTH)
        assert error.reason in str(error)
    else:
        assert isinstance(condition, Condition)
        assert condition.text == text


def test_hostile_sizes_fail_with_the_depth_and_length_errors() -> None:
    with pytest.raises(ConditionSyntaxError, match="nested too deeply"):
        parse_condition(DEEP_NESTING)
    with pytest.raises(ConditionSyntaxError, match="too long"):
        parse_condition(HUGE_TEXT)


FORBIDDEN_BUILTINS = [
    "__import__",
    "open",
    "eval",
    "exec",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "vars",
    "breakpoint",
    "input",
]


@contextlib.contextmanager
def builtins_tripwire() -> Iterator[list[str]]:
    """Replace dangerous builtins with tripwires that record and refuse every call.

    Uses the builtins dict directly, so installing and removing the wires calls none of them.
    """
    touched: list[str] = []
    originals = {name: builtins.__dict__[name] for name in FORBIDDEN_BUILTINS}

    def tripwire(name: str) -> Callable[..., object]:
        def trip(*args: object, **kwargs: object) -> object:
            touched.append(name)
            raise AssertionError(f"builtins.{name} was reached")

        return trip

    builtins.__dict__.update({name: tripwire(name) for name in FORBIDDEN_BUILTINS})
    try:
        yield touched
    finally:
        builtins.__dict__.update(originals)


@contextlib.contextmanager
def empty_working_directory() -> Iterator[str]:
    """Run the body in a fresh, empty working directory."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)
        try:
            yield directory
        finally:
            os.chdir(previous)


SAMPLE_VALUES = [0.5, "x", True, None, 3, False, float("nan")]


def parse_and_evaluate(text: str) -> None:
    """Parse ``text`` and, if it parses, evaluate it with a plain value for every name."""
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError as error:
        str(error)
        return
    values = {
        name: SAMPLE_VALUES[i % len(SAMPLE_VALUES)]
        for i, name in enumerate(sorted(condition.names))
    }
    with contextlib.suppress(ConditionEvalError):
        condition.evaluate(values)


@settings(max_examples=300, deadline=None)
@given(st.one_of(token_soup, st.sampled_from(HOSTILE_FRAGMENTS), st.text(max_size=100)))
@example("open('f', 'w').write('x')")
@example("a < 1 and b == 'x' or not c")
def test_parsing_and_evaluating_touch_nothing_outside(text: str) -> None:
    modules_before = set(sys.modules)
    with empty_working_directory() as directory:
        with builtins_tripwire() as touched:
            parse_and_evaluate(text)
        assert os.listdir(directory) == []
    assert touched == []
    assert set(sys.modules) == modules_before


OR, AND, NOT, COMPARE, ATOM = range(1, 6)
"""Binding strength of each generated shape; a child weaker than its slot needs parentheses."""

FAILS = object()
"""Reference result meaning: evaluating this must raise ConditionEvalError."""

UNKNOWN_NAME = "ghost"
LITERALS = {
    "number": [-2, 0, 1, 3, 0.5, -1.5, 2.0, 1e3, 1e-3],
    "text": ["", "a", "b", "it's", 'say "hi"', "back\\slash"],
    "bool": [True, False],
    "null": [None],
}
numbers = st.one_of(
    st.sampled_from(LITERALS["number"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
)
plain_values = st.one_of(
    numbers, st.sampled_from(LITERALS["text"]), st.booleans(), st.none(), st.text(max_size=3)
)
variable_sets = st.fixed_dictionaries(
    {
        "score": numbers,
        "count": numbers,
        "status": st.sampled_from(LITERALS["text"]),
        "flag": st.booleans(),
        "done": st.booleans(),
        "a": plain_values,
        "b": plain_values,
    }
)


@dataclass(frozen=True)
class Generated:
    """A generated piece of condition text with its reference value and binding strength."""

    text: str
    value: object
    strength: int
    names: frozenset[str] = frozenset()


def reference_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "text" if isinstance(value, str) else "number"


def reference_compare(symbol: str, left: object, right: object) -> object:
    """The spec's comparison rules, written independently of the implementation."""
    same_kind = reference_kind(left) == reference_kind(right)
    if symbol == "==":
        return same_kind and left == right
    if symbol == "!=":
        return not (same_kind and left == right)
    if not same_kind or reference_kind(left) in ("null", "bool"):
        return FAILS
    if symbol == "<":
        return left < right
    if symbol == "<=":
        return left <= right
    if symbol == ">":
        return left > right
    return left >= right


def reference_truth(value: object) -> object:
    return value if isinstance(value, bool) else FAILS


def render_literal(draw: st.DrawFn, value: object) -> str:
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "True"] if value else ["false", "False"]))
    if value is None:
        return draw(st.sampled_from(["null", "None"]))
    if isinstance(value, str):
        quote = draw(st.sampled_from(["'", '"']))
        escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
        return quote + escaped + quote
    return repr(value)


def draw_atom(draw: st.DrawFn, variables: dict[str, object], kind: str) -> Generated:
    """A name or literal of ``kind``; kind "any" mixes every kind and an unknown name."""
    if kind == "any":
        names = [*variables, UNKNOWN_NAME]
        literals = [value for pool in LITERALS.values() for value in pool]
    else:
        names = [name for name, value in variables.items() if reference_kind(value) == kind]
        literals = LITERALS[kind]
    if names and draw(st.booleans()):
        name = draw(st.sampled_from(names))
        return Generated(name, variables.get(name, FAILS), ATOM, frozenset({name}))
    value = draw(st.sampled_from(literals))
    return Generated(render_literal(draw, value), value, ATOM)


def wrapped(child: Generated, strength: int) -> str:
    return child.text if child.strength >= strength else f"({child.text})"


def union_of_names(parts: list[Generated]) -> frozenset[str]:
    return frozenset().union(*(part.names for part in parts))


def draw_comparison(draw: st.DrawFn, variables: dict[str, object], depth: int) -> Generated:
    kind = draw(st.sampled_from(["number", "number", "text", "bool", "any"]))
    count = draw(st.integers(2, 3))
    operands = [draw_operand(draw, variables, depth, kind) for _ in range(count)]
    symbols = [draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])) for _ in operands[1:]]
    text = operands[0].text
    for symbol, operand in zip(symbols, operands[1:], strict=True):
        gap = draw(st.sampled_from(["", " ", "\t", "\n"]))
        text += f"{gap}{symbol}{gap}{operand.text}"
    value = reference_chain(symbols, operands)
    return Generated(text, value, COMPARE, union_of_names(operands))


def reference_chain(symbols: list[str], operands: list[Generated]) -> object:
    """``a < b < c`` is ``a < b and b < c``; later operands are only reached while all hold."""
    left = operands[0].value
    for symbol, operand in zip(symbols, operands[1:], strict=True):
        if left is FAILS or operand.value is FAILS:
            return FAILS
        outcome = reference_compare(symbol, left, operand.value)
        if outcome is not True:
            return outcome
        left = operand.value
    return True


def draw_operand(draw: st.DrawFn, variables: dict[str, object], depth: int, kind: str) -> Generated:
    """A comparison operand: an atom, or (for true/false) a parenthesised sub-condition."""
    if kind in ("bool", "any") and depth > 0 and draw(st.integers(0, 2)) == 0:
        return draw_group(draw, variables, depth)
    return draw_atom(draw, variables, kind)


def draw_group(draw: st.DrawFn, variables: dict[str, object], depth: int) -> Generated:
    inner = draw_expression(draw, variables, depth - 1)
    return Generated(f"({inner.text})", inner.value, ATOM, inner.names)


def draw_not(draw: st.DrawFn, variables: dict[str, object], depth: int) -> Generated:
    operand = draw_expression(draw, variables, depth - 1)
    truth = reference_truth(operand.value)
    value = FAILS if truth is FAILS else not truth
    return Generated(f"not {wrapped(operand, NOT)}", value, NOT, operand.names)


def draw_junction(
    draw: st.DrawFn, variables: dict[str, object], depth: int, word: str
) -> Generated:
    """``a and b ...`` or ``a or b ...``, evaluated left to right, stopping once decided."""
    count = draw(st.integers(2, 3))
    operands = [draw_expression(draw, variables, depth - 1) for _ in range(count)]
    strength = AND if word == "and" else OR
    decisive = word == "or"
    value: object = not decisive
    for operand in operands:
        truth = reference_truth(operand.value)
        if truth is FAILS or truth is decisive:
            value = truth
            break
    text = f" {word} ".join(wrapped(operand, strength) for operand in operands)
    return Generated(text, value, strength, union_of_names(operands))


def draw_expression(draw: st.DrawFn, variables: dict[str, object], depth: int) -> Generated:
    shapes = ["atom", "compare", "compare"]
    if depth > 0:
        shapes += ["not", "and", "or", "group"]
    shape = draw(st.sampled_from(shapes))
    if shape == "atom":
        return draw_atom(draw, variables, draw(st.sampled_from(["bool", "bool", "any"])))
    if shape == "compare":
        return draw_comparison(draw, variables, depth)
    if shape == "not":
        return draw_not(draw, variables, depth)
    if shape == "group":
        return draw_group(draw, variables, depth)
    return draw_junction(draw, variables, depth, shape)


@st.composite
def valid_conditions(draw: st.DrawFn) -> tuple[Generated, dict[str, object]]:
    variables = draw(variable_sets)
    generated = draw_expression(draw, variables, depth=3)
    assume(len(generated.text) <= MAX_LENGTH)
    return generated, variables


@settings(max_examples=500, deadline=None)
@given(valid_conditions())
def test_valid_conditions_evaluate_like_the_reference(
    case: tuple[Generated, dict[str, object]],
) -> None:
    generated, variables = case
    condition = parse_condition(generated.text)
    assert condition.names == generated.names
    expected = reference_truth(generated.value)
    if expected is FAILS:
        with pytest.raises(ConditionEvalError):
            condition.evaluate(variables)
    else:
        assert condition.evaluate(variables) is expected
