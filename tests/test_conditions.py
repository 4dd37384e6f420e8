"""Behaviour of the condition language: parsing, evaluation, and the errors learners see."""

from __future__ import annotations

import enum
import inspect
import pickle
import sys

import pytest

from meshflow_nb.model.conditions import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Compare,
    Condition,
    ConditionError,
    ConditionEvalError,
    ConditionSyntaxError,
    Constant,
    Name,
    Not,
    Or,
    parse_condition,
)

VARIABLES = {
    "quality_score": 0.7,
    "score": 0.7,
    "count": 3,
    "status": "draft",
    "approved": True,
    "rejected": False,
    "reviewer": None,
    "nan": float("nan"),
}

EVALUATIONS = [
    ("quality_score < 0.8", True),
    ("quality_score >= 0.8", False),
    ("count == 3", True),
    ("count == 3.0", True),
    ("count != 3", False),
    ("count > 2.5", True),
    ("count <= 3", True),
    ("score > .5", True),
    ("score < 1e3", True),
    ("score > 7E-1", False),
    ("score > -1", True),
    ("-0.5 < score", True),
    ("0.5 <= score < 0.8", True),
    ("0.5 <= score < 0.6", False),
    ("1 < 2 < 3 < 4", True),
    ("3 > 2 < 1", False),
    ("1 < 2 == 2", True),
    ("status == 'draft'", True),
    ('status == "draft"', True),
    ("status != 'final'", True),
    ("status < 'e'", True),
    ("'it\\'s' == \"it's\"", True),
    ("'a\\\\b' == \"a\\\\b\"", True),
    ("'' == ''", True),
    ("approved", True),
    ("not approved", False),
    ("not not approved", True),
    ("approved == true", True),
    ("approved == True", True),
    ("rejected == false", True),
    ("rejected == False", True),
    ("approved != false", True),
    ("reviewer == null", True),
    ("reviewer == None", True),
    ("reviewer != null", False),
    ("true", True),
    ("False", False),
    ("approved == 1", False),
    ("rejected == 0", False),
    ("approved != 1", True),
    ("status == 3", False),
    ("reviewer == 0", False),
    ("count == '3'", False),
    ("nan == nan", False),
    ("nan != nan", True),
    ("nan < 1", False),
    ("nan >= 1", False),
    ("rejected and count == 3 or approved", True),
    ("approved or rejected and false", True),
    ("(approved or rejected) and false", False),
    ("not rejected and approved", True),
    ("not count == 3", False),
    ("not (count == 3 and rejected)", True),
    ("(score < 0.8) == approved", True),
    ("((((count))) == 3)", True),
    ("false and missing_variable", False),
    ("true or missing_variable", True),
    ("count\n  <\t4", True),
]


@pytest.mark.parametrize(("text", "expected"), EVALUATIONS)
def test_evaluates_to_a_python_bool(text: str, expected: bool) -> None:
    result = parse_condition(text).evaluate(VARIABLES)
    assert result is expected


PARSE_TREES = [
    ("a", Name("a")),
    ("0.8", Constant(0.8)),
    ("'x'", Constant("x")),
    ("null", Constant(None)),
    ("a < 0.8", Compare((Name("a"), Constant(0.8)), ("<",))),
    ("0 <= a < 1", Compare((Constant(0), Name("a"), Constant(1)), ("<=", "<"))),
    ("not a", Not(Name("a"))),
    ("a and b and c", And((Name("a"), Name("b"), Name("c")))),
    ("a or b and c", Or((Name("a"), And((Name("b"), Name("c")))))),
    ("(a or b) and c", And((Or((Name("a"), Name("b"))), Name("c")))),
    ("not a == 1", Not(Compare((Name("a"), Constant(1)), ("==",)))),
    ("not a and b", And((Not(Name("a")), Name("b")))),
]


@pytest.mark.parametrize(("text", "tree"), PARSE_TREES)
def test_precedence_is_not_then_and_then_or(text: str, tree: object) -> None:
    assert parse_condition(text).tree == tree


def test_numbers_keep_their_type() -> None:
    assert type(parse_condition("3").tree.value) is int
    assert type(parse_condition("3.0").tree.value) is float
    assert type(parse_condition("1e3").tree.value) is float
    assert parse_condition("-2").tree == Constant(-2)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("quality_score < 0.8", {"quality_score"}),
        ("a < b and not c or a == 'b'", {"a", "b", "c"}),
        ("1 < 2", set()),
        ("'name' == true", set()),
        ("_private == x9", {"_private", "x9"}),
    ],
)
def test_names_lists_every_variable_read(text: str, names: set[str]) -> None:
    assert parse_condition(text).names == frozenset(names)


# (text, exact 0-based position, width, words the reason must contain)
SYNTAX_ERRORS = [
    ("", 0, 1, "empty condition"),
    ("   \n ", 0, 1, "empty condition"),
    ("quality_score < 0.8 and len(x) > 2", 24, 3, "function calls are not allowed"),
    ("(a)(b)", 3, 1, "function calls are not allowed"),
    ("a.b", 1, 1, "attribute access ('.') is not allowed"),
    ("x[0] > 1", 1, 1, "subscripts"),
    ("[x for x in y]", 0, 1, "lists"),
    ("score ** 2 > 1", 6, 2, "arithmetic operator '**' is not allowed"),
    ("score + 1 > 1", 6, 1, "arithmetic operator '+' is not allowed"),
    ("score - 1 > 1", 6, 1, "arithmetic operator '-' is not allowed"),
    ("a > 1 << 2", 6, 2, "bitwise operator '<<'"),
    ("x if y else z", 2, 2, "'if ... else' expressions are not allowed"),
    ("lambda: 1", 0, 6, "lambda expressions are not allowed"),
    ("(x := 1)", 3, 2, "walrus operator ':='"),
    ("status = 'done'", 7, 1, "use '=='"),
    ("a < 1 && b", 6, 2, "use 'and' instead of '&&'"),
    ("a < 1 || b", 6, 2, "use 'or' instead of '||'"),
    ("!approved", 0, 1, "use 'not' instead of '!'"),
    ("a <> b", 2, 2, "use '!='"),
    ("a => 1", 2, 2, "did you mean '>='"),
    ("a in b", 2, 2, "'in' is not supported"),
    ("a is None", 2, 2, "'is' is not supported"),
    ("status == 'draft", 10, 1, "no closing '"),
    ('status == "draft', 10, 1, 'no closing "'),
    ("name == 'a\\nb'", 10, 2, "unknown escape"),
    ("name == 'a\\", 8, 1, "no closing '"),
    ("a < 1 b", 6, 1, "put 'and', 'or' or a comparison operator between them"),
    ("a b", 2, 1, "'b' cannot come straight after 'a'"),
    ("a not b", 2, 3, "'not' cannot follow a value"),
    ("(a < 1", 0, 1, "this '(' is never closed"),
    ("a < (1", 4, 1, "this '(' is never closed"),
    ("a < 1)", 5, 1, "this ')' has no matching '('"),
    (")", 0, 1, "this ')' has no matching '('"),
    ("()", 0, 2, "empty parentheses"),
    ("a <", 3, 1, "a value is missing after '<'"),
    ("a < 1 and", 9, 1, "a value is missing after 'and'"),
    ("< 1", 0, 1, "a value is missing before '<'"),
    ("a and or b", 6, 2, "a value is missing before 'or'"),
    ("(a < )", 5, 1, "a value is missing before ')'"),
    ("__import__('os')", 0, 10, "names starting with '__' are not allowed"),
    ("a.__class__", 1, 1, "attribute access"),
    ("AND", 0, 3, "write 'and'"),
    ("NULL == a", 0, 4, "write 'null'"),
    ("while", 0, 5, "Python keyword"),
    ("1.2.3 < a", 0, 5, "'1.2.3' is not a valid number"),
    ("a < 0x1F", 4, 4, "'0x1F' is not a valid number"),
    ("a < 1.", 4, 2, "'1.' is not a valid number"),
    ("a < 1e999", 4, 5, "too large"),
    ("a < . 5", 4, 1, "a '.' may only appear inside a number"),
    ("scoré > 1", 4, 1, "names use only A-Z"),
    ("a > 1; b", 5, 1, "';' is not allowed"),
    ("a == 1, 2", 6, 1, "commas are not allowed"),
    ("{a}", 0, 1, "curly braces"),
    ("a > 1 # note", 6, 1, "comments"),
    ("a > $b", 4, 1, "'$' is not allowed"),
    ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH, 1, "nested too deeply"),
    ("not " * (MAX_DEPTH + 1) + "a", 4 * MAX_DEPTH, 3, "nested too deeply"),
    ("a" * (MAX_LENGTH + 1), MAX_LENGTH, 1, "too long"),
    ("a < 1" + " " * MAX_LENGTH, MAX_LENGTH, 1, "too long"),
]


@pytest.mark.parametrize(("text", "position", "width", "words"), SYNTAX_ERRORS)
def test_syntax_errors_name_the_problem_and_its_position(
    text: str, position: int, width: int, words: str
) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    error = caught.value
    assert words in error.reason
    assert (error.position, error.width) == (position, width)
    assert error.text == text
    assert f"(column {position + 1})" in str(error)


def test_message_shows_the_text_and_a_caret_under_the_problem() -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition("quality_score < 0.8 and len(x) > 2")
    assert str(caught.value) == (
        "invalid condition:\n"
        "    quality_score < 0.8 and len(x) > 2\n"
        "                            ^^^ function calls are not allowed in conditions (column 25)"
    )


def test_caret_stays_aligned_when_the_text_has_tabs_and_newlines() -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition("a <\n\t1 b")
    _, shown, caret = str(caught.value).splitlines()
    assert shown[caret.index("^")] == "b"


def test_long_text_is_shown_as_an_excerpt_around_the_problem() -> None:
    text = "a < 1 and " * 30 + "f(x)"
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    _, shown, caret = str(caught.value).splitlines()
    assert shown.strip().startswith("...")
    assert shown[caret.index("^")] == "f"


def test_deepest_allowed_nesting_parses() -> None:
    deepest = "(" * (MAX_DEPTH - 1) + "not a" + ")" * (MAX_DEPTH - 1)
    assert parse_condition(deepest).evaluate({"a": False}) is True
    assert parse_condition("a" * MAX_LENGTH).names == {"a" * MAX_LENGTH}


def test_recursion_stays_shallow_even_at_the_depth_limit() -> None:
    deepest = "(" * (MAX_DEPTH - 1) + "not a" + ")" * (MAX_DEPTH - 1)
    previous_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 8 * MAX_DEPTH + 50)
    try:
        assert parse_condition(deepest).evaluate({"a": False}) is True
        with pytest.raises(ConditionSyntaxError, match="nested too deeply"):
            parse_condition("(" * 10_000 + "a" + ")" * 10_000)
    finally:
        sys.setrecursionlimit(previous_limit)


def test_hostile_sizes_are_rejected_by_the_specific_limit() -> None:
    with pytest.raises(ConditionSyntaxError, match="nested too deeply"):
        parse_condition("(" * 10_000 + "x" + ")" * 10_000)
    with pytest.raises(ConditionSyntaxError, match="too long"):
        parse_condition("x" * 100_000)


def test_non_text_condition_is_a_syntax_error() -> None:
    with pytest.raises(ConditionSyntaxError, match="must be text in quotes"):
        parse_condition(0.8)  # type: ignore[arg-type]


def test_syntax_error_survives_pickling() -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition("a = 1")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.reason, copy.text, copy.position) == (
        "'=' assigns a value; to compare, use '=='",
        "a = 1",
        2,
    )


EVAL_ERRORS = [
    ("missing > 1", {"a": 1, "b": 2}, "unknown variable 'missing' (available: a, b)"),
    ("missing > 1", {}, "(available: none)"),
    ("name < 0.8", {"name": "abc"}, "cannot compare 'abc' (text) with 0.8 (number) using '<'"),
    ("x < 1", {"x": None}, "cannot compare null with 1 (number) using '<'"),
    ("flag < 1", {"flag": True}, "cannot compare true (true/false) with 1 (number)"),
    ("flag >= false", {"flag": True}, "using '>='"),
    (
        "score",
        {"score": 0.7},
        "'score' is 0.7 (number), not true/false; compare it, e.g. score > 0.5",
    ),
    ("name or true", {"name": "x"}, "'name' is 'x' (text), not true/false"),
    ("not x", {"x": None}, "'x' is null, not true/false; compare it, e.g. x != null"),
    ("1 and true", {}, "1 (number) is not true/false"),
    ("items == 1", {"items": [1]}, "'items' holds a list value"),
    ("n > 'a'", {"n": 10**5000}, "a very large number (number)"),
]


@pytest.mark.parametrize(("text", "variables", "words"), EVAL_ERRORS)
def test_evaluation_errors_explain_what_went_wrong(
    text: str, variables: dict[str, object], words: str
) -> None:
    condition = parse_condition(text)
    with pytest.raises(ConditionEvalError) as caught:
        condition.evaluate(variables)
    assert words in str(caught.value)


def test_both_error_kinds_share_the_base_class() -> None:
    assert issubclass(ConditionSyntaxError, ConditionError)
    assert issubclass(ConditionEvalError, ConditionError)
    assert issubclass(ConditionError, ValueError)


class Level(enum.IntEnum):
    LOW = 1


class NoisyFloat(float):
    """A float subclass whose own methods must never be called by the evaluator."""

    def __lt__(self, other: object) -> bool:
        raise AssertionError("the value's own __lt__ ran")

    def __eq__(self, other: object) -> bool:
        raise AssertionError("the value's own __eq__ ran")

    __hash__ = float.__hash__


def test_subclass_values_are_compared_as_plain_values() -> None:
    condition = parse_condition("level == 1 and score < 0.8")
    assert condition.evaluate({"level": Level.LOW, "score": NoisyFloat(0.5)}) is True


def test_condition_is_frozen_and_hashable() -> None:
    condition = parse_condition("quality_score < 0.8")
    assert isinstance(condition, Condition)
    assert condition == parse_condition("quality_score < 0.8")
    assert hash(condition) == hash(parse_condition("quality_score < 0.8"))
    with pytest.raises(AttributeError):
        condition.text = "true"  # type: ignore[misc]
    assert (
        repr(condition)
        == "Condition(text='quality_score < 0.8', names=frozenset({'quality_score'}))"
    )
