"""The condition language of workflow edges, e.g. ``quality_score < 0.8``.

A small hand-written tokenizer and parser (never ``eval``) turn the text into a tree of
frozen dataclasses, so a condition can only compare values; it can never run code.
"""

from __future__ import annotations

import functools
import keyword
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import MeshflowError

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Compare",
    "Condition",
    "ConditionError",
    "ConditionEvalError",
    "ConditionSyntaxError",
    "Constant",
    "Name",
    "Not",
    "Or",
    "parse_condition",
]

MAX_LENGTH = 500
"""Longest condition text accepted, in characters."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and ``not`` accepted; keeps the parser's recursion shallow."""

_EXCERPT_WIDTH = 100
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGITS = frozenset("0123456789")
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_LITERAL_WORDS = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
}
_BOOLEAN_WORDS = ("and", "or", "not")
_CASE_FIXES = {word.lower(): word for word in ("and", "or", "not", "true", "false", "null", "None")}
_IF_ELSE = "'if ... else' expressions are not allowed; combine checks with 'and' / 'or'"
_WORD_PROBLEMS = {
    "lambda": "lambda expressions are not allowed in conditions",
    "if": _IF_ELSE,
    "else": _IF_ELSE,
    "for": "comprehensions ('for ... in ...') are not allowed in conditions",
    "in": "'in' is not supported; compare with '==' and join the checks with 'or', "
    "e.g. x == 'a' or x == 'b'",
    "is": "'is' is not supported; use '==' or '!=' instead",
    "import": "imports are not allowed in conditions",
    "from": "imports are not allowed in conditions",
}
_ARITHMETIC = "arithmetic operator '{}' is not allowed; conditions only compare values"
_BITWISE = "bitwise operator '{}' is not allowed; conditions only compare values"
_SYMBOL_PROBLEMS = {
    "**": _ARITHMETIC.format("**"),
    "//": _ARITHMETIC.format("//"),
    "+": _ARITHMETIC.format("+"),
    "*": _ARITHMETIC.format("*"),
    "/": _ARITHMETIC.format("/"),
    "%": _ARITHMETIC.format("%"),
    "@": _ARITHMETIC.format("@"),
    "<<": _BITWISE.format("<<"),
    ">>": _BITWISE.format(">>"),
    "^": _BITWISE.format("^"),
    "~": _BITWISE.format("~"),
    "&&": "use 'and' instead of '&&'",
    "&": "use 'and' instead of '&'",
    "||": "use 'or' instead of '||'",
    "|": "use 'or' instead of '|'",
    "!": "use 'not' instead of '!'",
    "<>": "'<>' is not a comparison; use '!=' for 'not equal'",
    "=>": "'=>' is not a comparison; did you mean '>='?",
    "=<": "'=<' is not a comparison; did you mean '<='?",
    ":=": "the walrus operator ':=' is not allowed; conditions cannot assign values",
    "=": "'=' assigns a value; to compare, use '=='",
    "]": "square brackets are not allowed in conditions",
    "{": "curly braces are not allowed; conditions have no sets or dictionaries",
    "}": "curly braces are not allowed; conditions have no sets or dictionaries",
    ",": "commas are not allowed; conditions have no tuples, lists or function arguments",
    ":": "':' is not allowed; conditions have no slices, lambdas or dictionaries",
    ";": "';' is not allowed; a condition is a single expression",
    "#": "comments ('#') are not allowed in conditions",
    "\\": "a backslash may only appear inside quoted text",
}


class ConditionError(MeshflowError, ValueError):
    """Base class of every problem with a condition, found while parsing or evaluating it."""


class ConditionSyntaxError(ConditionError):
    """The condition text breaks the grammar; says what is wrong and at which character.

    ``position`` is the 0-based offset of the problem in ``text``, ``width`` how many
    characters the caret underlines, and ``reason`` the plain-words explanation.
    """

    def __init__(self, reason: str, text: str, position: int, width: int = 1) -> None:
        super().__init__(reason, text, position, width)
        self.reason = reason
        self.text = text
        self.position = position
        self.width = width

    def __str__(self) -> str:
        excerpt, offset = _excerpt(self.text, self.position)
        carets = "^" * max(1, min(self.width, len(excerpt) - offset))
        column = self.position + 1
        marker = f"{' ' * offset}{carets} {self.reason} (column {column})"
        return f"invalid condition:\n    {excerpt}\n    {marker}"


class ConditionEvalError(ConditionError):
    """A parsed condition could not be evaluated: a variable is missing or values do not compare."""


@dataclass(frozen=True)
class Constant:
    """A literal in the condition: a number, a text, true/false or null."""

    value: bool | int | float | str | None


@dataclass(frozen=True)
class Name:
    """A variable exported by an upstream node, looked up when the condition is evaluated."""

    identifier: str


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Expression


@dataclass(frozen=True)
class And:
    """``a and b and ...``: true when every operand is; stops at the first false one."""

    operands: tuple[Expression, ...]


@dataclass(frozen=True)
class Or:
    """``a or b or ...``: true when any operand is; stops at the first true one."""

    operands: tuple[Expression, ...]


@dataclass(frozen=True)
class Compare:
    """A comparison chain: ``0.5 <= score < 0.8`` means ``0.5 <= score and score < 0.8``."""

    operands: tuple[Expression, ...]
    operators: tuple[str, ...]


Expression = Constant | Name | Not | And | Or | Compare


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text, the variable names it reads, and its syntax tree."""

    text: str
    names: frozenset[str]
    tree: Expression = field(repr=False)

    def evaluate(self, variables: Mapping[str, object]) -> bool:
        """Whether the condition holds for these variable values.

        Raises ConditionEvalError when a needed variable is missing or values cannot be compared.
        """
        return _truth(self.tree, variables)


def parse_condition(text: str) -> Condition:
    """Parse ``text`` into a Condition; raises ConditionSyntaxError saying what is wrong, where."""
    return _parse_text(text) if isinstance(text, str) else _parse_non_text(text)


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> Condition:
    """Conditions are immutable, so each distinct text is parsed once per process."""
    parser = _Parser(text)
    tree = parser.parse()
    return Condition(text, frozenset(parser.names), tree)


def _parse_non_text(text: object) -> Condition:
    reason = (
        f'a condition must be text in quotes, e.g. "quality_score < 0.8", '
        f"not a {type(text).__name__}"
    )
    raise ConditionSyntaxError(reason, "", 0)


def _excerpt(text: str, position: int) -> tuple[str, int]:
    """At most _EXCERPT_WIDTH characters of ``text`` around ``position`` on one display line,
    and the offset of ``position`` in that line."""
    start = max(0, min(position - _EXCERPT_WIDTH // 2, len(text) - _EXCERPT_WIDTH))
    end = start + _EXCERPT_WIDTH
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    visible = "".join(_displayable(char) for char in text[start:end])
    return prefix + visible + suffix, len(prefix) + position - start


def _displayable(char: str) -> str:
    """One character as shown above the caret: whitespace as a space, unprintables as '?'."""
    if char.isspace():
        return " "
    return char if char.isprintable() else "?"


@dataclass(frozen=True)
class _Token:
    """A piece of condition text; ``kind`` is name, literal, compare, and, or, not, (, ) or end."""

    kind: str
    text: str
    position: int
    value: object = None

    @property
    def end(self) -> int:
        return self.position + len(self.text)


class _Tokenizer:
    """Cuts condition text into tokens one at a time, rejecting anything outside the grammar.

    It reads at most MAX_LENGTH + 1 characters, so even huge input is rejected quickly.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._source = text[: MAX_LENGTH + 1]
        self._position = 0
        self._previous: _Token | None = None

    def next_token(self) -> _Token:
        while self._position < len(self._source) and self._source[self._position].isspace():
            self._position += 1
        token = self._scan()
        self._check_length(token.end)
        self._position = token.end
        self._previous = token
        return token

    def _check_length(self, end: int) -> None:
        if end > MAX_LENGTH:
            reason = (
                f"the condition is too long ({len(self._text)} characters; the limit is "
                f"{MAX_LENGTH}); let a node compute part of the decision and export it"
            )
            raise self._error(reason, MAX_LENGTH)

    def _scan(self) -> _Token:
        position = self._position
        if position >= len(self._source):
            return _Token("end", "", position)
        char = self._source[position]
        if char in "'\"":
            return self._scan_string()
        if char in _DIGITS or self._starts_signed_or_dotted_number():
            return self._scan_number()
        if char in _NAME_START:
            return self._scan_word()
        if char in "()":
            return _Token(char, char, position)
        return self._scan_operator()

    def _after_operand(self) -> bool:
        return self._previous is not None and self._previous.kind in ("name", "literal", ")")

    def _starts_signed_or_dotted_number(self) -> bool:
        char = self._source[self._position]
        return (
            char in "-."
            and not self._after_operand()
            and _NUMBER.match(self._source, self._position) is not None
        )

    def _scan_number(self) -> _Token:
        position = self._position
        number = _NUMBER.match(self._source, position)
        tail_end = _NUMBER_TAIL.match(self._source, number.end()).end()
        if tail_end > number.end():
            bad = self._source[position:tail_end]
            reason = f"'{bad}' is not a valid number; write numbers like 3, 0.8, -2 or 1e3"
            raise self._error(reason, position, len(bad))
        text = number.group()
        value = float(text) if any(mark in text for mark in ".eE") else int(text)
        if math.isinf(value):
            raise self._error(f"the number '{text}' is too large", position, len(text))
        return _Token("literal", text, position, value)

    def _scan_string(self) -> _Token:
        position = self._position
        quote = self._source[position]
        chars: list[str] = []
        index = position + 1
        while index < len(self._source):
            char = self._source[index]
            if char == quote:
                return _Token(
                    "literal", self._source[position : index + 1], position, "".join(chars)
                )
            if char == "\\":
                if index + 1 == len(self._source):
                    break
                chars.append(self._escaped(index))
                index += 2
            else:
                chars.append(char)
                index += 1
        self._check_length(len(self._source))
        raise self._error(f"this text has no closing {quote}; add {quote} at its end", position)

    def _escaped(self, backslash: int) -> str:
        escaped = self._source[backslash + 1 : backslash + 2]
        if escaped in ("'", '"', "\\"):
            return escaped
        self._check_length(backslash + 2)
        reason = (
            f"unknown escape '\\{escaped}' in quoted text; a backslash may only come "
            "before ', \" or another backslash"
        )
        raise self._error(reason, backslash, 2)

    def _scan_word(self) -> _Token:
        position = self._position
        word = _NAME.match(self._source, position).group()
        if word in _LITERAL_WORDS:
            return _Token("literal", word, position, _LITERAL_WORDS[word])
        if word in _BOOLEAN_WORDS:
            return _Token(word, word, position)
        problem = _word_problem(word)
        if problem:
            raise self._error(problem, position, len(word))
        return _Token("name", word, position)

    def _scan_operator(self) -> _Token:
        position = self._position
        pair = self._source[position : position + 2]
        char = pair[:1]
        if pair in _COMPARISONS:
            return _Token("compare", pair, position)
        if pair in _SYMBOL_PROBLEMS:
            raise self._error(_SYMBOL_PROBLEMS[pair], position, 2)
        if char in _COMPARISONS:
            return _Token("compare", char, position)
        raise self._error(self._symbol_problem(char), position)

    def _symbol_problem(self, char: str) -> str:
        if char in _SYMBOL_PROBLEMS:
            return _SYMBOL_PROBLEMS[char]
        if char == ".":
            if self._after_operand():
                return "attribute access ('.') is not allowed in conditions"
            return "a '.' may only appear inside a number such as 0.5"
        if char == "[":
            if self._after_operand():
                return "subscripts ('x[...]') are not allowed in conditions"
            return "lists ('[...]') are not allowed in conditions"
        if char == "-":
            return (
                "arithmetic operator '-' is not allowed; to write a negative number, "
                "put '-' right before its digits, e.g. -0.5"
            )
        if char.isalpha():
            return f"the character {char!r} is not allowed; names use only A-Z, a-z, 0-9 and '_'"
        return f"the character {char!r} is not allowed in conditions"

    def _error(self, reason: str, position: int, width: int = 1) -> ConditionSyntaxError:
        return ConditionSyntaxError(reason, self._text, position, width)


def _word_problem(word: str) -> str | None:
    """Why ``word`` cannot be a variable name, or None when it can."""
    if word.startswith("__"):
        return (
            f"names starting with '__' are not allowed ('{word}'); "
            "double-underscore names belong to Python's internals"
        )
    if word in _WORD_PROBLEMS:
        return _WORD_PROBLEMS[word]
    if word.lower() in _CASE_FIXES:
        spelling = _CASE_FIXES[word.lower()]
        return f"'{word}' is not understood; write '{spelling}' (conditions are case-sensitive)"
    if keyword.iskeyword(word):
        return f"'{word}' is a Python keyword and cannot be used in a condition"
    return None


class _Parser:
    """Recursive-descent parser: or > and > not > comparison > operand, loosest first.

    Each parenthesis and ``not`` counts one level of depth; beyond MAX_DEPTH parsing stops,
    so the recursion can never go deeper than a few frames per allowed level.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _Tokenizer(text)
        self._previous = _Token("end", "", 0)
        self._current = self._tokens.next_token()
        self._depth = 0
        self.names: set[str] = set()

    def parse(self) -> Expression:
        if self._current.kind == "end":
            raise self._error("empty condition; write a comparison such as quality_score < 0.8", 0)
        tree = self._parse_or()
        if self._current.kind != "end":
            raise self._unexpected()
        return tree

    def _advance(self) -> None:
        self._previous = self._current
        self._current = self._tokens.next_token()

    def _enter(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            reason = (
                f"the condition is nested too deeply (more than {MAX_DEPTH} levels of "
                "parentheses and 'not'); simplify it"
            )
            raise self._error(reason, token.position, len(token.text))

    def _parse_or(self) -> Expression:
        return self._parse_joined("or", self._parse_and, Or)

    def _parse_and(self) -> Expression:
        return self._parse_joined("and", self._parse_not, And)

    def _parse_joined(
        self, word: str, parse_operand: Callable[[], Expression], node: type[And] | type[Or]
    ) -> Expression:
        """``operand (word operand)*``: one operand alone, or an And/Or of them all."""
        operands = [parse_operand()]
        while self._current.kind == word:
            self._advance()
            operands.append(parse_operand())
        return operands[0] if len(operands) == 1 else node(tuple(operands))

    def _parse_not(self) -> Expression:
        negations = 0
        while self._current.kind == "not":
            self._enter(self._current)
            negations += 1
            self._advance()
        tree = self._parse_comparison()
        for _ in range(negations):
            tree = Not(tree)
        self._depth -= negations
        return tree

    def _parse_comparison(self) -> Expression:
        operands = [self._parse_operand()]
        operators: list[str] = []
        while self._current.kind == "compare":
            operators.append(self._current.text)
            self._advance()
            operands.append(self._parse_operand())
        return operands[0] if not operators else Compare(tuple(operands), tuple(operators))

    def _parse_operand(self) -> Expression:
        token = self._current
        if token.kind == "(":
            return self._parse_group()
        if token.kind not in ("name", "literal"):
            raise self._missing_value()
        self._advance()
        if token.kind == "literal":
            return Constant(token.value)
        self.names.add(token.text)
        return Name(token.text)

    def _parse_group(self) -> Expression:
        opening = self._current
        self._enter(opening)
        self._advance()
        if self._current.kind == ")":
            reason = "empty parentheses '()'; put a condition inside them, or remove them"
            raise self._error(reason, opening.position, self._current.end - opening.position)
        inner = self._parse_or()
        if self._current.kind == "end":
            raise self._error("this '(' is never closed; add a matching ')'", opening.position)
        if self._current.kind != ")":
            raise self._unexpected()
        self._advance()
        self._depth -= 1
        return inner

    def _missing_value(self) -> ConditionSyntaxError:
        token = self._current
        if token.kind == "end":
            reason = (
                f"the condition ends too soon; a value is missing after {_quoted(self._previous)}"
            )
            return self._error(reason, self._previous.end)
        if token.kind == ")" and self._depth == 0:
            return self._unmatched_closing()
        reason = (
            f"a value is missing before {_quoted(token)}; expected a name, a number, "
            "quoted text, true/false or null"
        )
        return self._error(reason, token.position, len(token.text))

    def _unexpected(self) -> ConditionSyntaxError:
        """The error for a token that cannot follow the complete value just parsed."""
        token = self._current
        if token.kind == "(":
            callee = self._previous if self._previous.kind == "name" else token
            reason = "function calls are not allowed in conditions"
            return self._error(reason, callee.position, len(callee.text))
        if token.kind == ")":
            return self._unmatched_closing()
        if token.kind == "not":
            reason = "'not' cannot follow a value; put it before the comparison, e.g. not (a == b)"
            return self._error(reason, token.position, len(token.text))
        reason = (
            f"{_quoted(token)} cannot come straight after {_quoted(self._previous)}; "
            "put 'and', 'or' or a comparison operator between them"
        )
        return self._error(reason, token.position, len(token.text))

    def _unmatched_closing(self) -> ConditionSyntaxError:
        reason = "this ')' has no matching '('; remove it or add a '(' before it"
        return self._error(reason, self._current.position)

    def _error(self, reason: str, position: int, width: int = 1) -> ConditionSyntaxError:
        return ConditionSyntaxError(reason, self._text, position, width)


def _quoted(token: _Token) -> str:
    """A token's text in quotes for a message, shortened if it is a long quoted text."""
    text = token.text if len(token.text) <= 20 else token.text[:17] + "..."
    already_quoted = token.text[:1] in ("'", '"')
    return text if already_quoted else f"'{text}'"


_ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_PLAIN_TYPES = (bool, int, float, str, type(None))
_CONVERSIONS = ((int, int.__int__), (float, float.__float__), (str, str.__str__))
_COMPARE_EXAMPLES = {"number": "> 0.5", "text": "== 'done'", "null": "!= null"}


def _truth(node: Expression, variables: Mapping[str, object]) -> bool:
    """Evaluate ``node`` where true/false is required: the whole condition, and/or/not operands."""
    if isinstance(node, Compare):
        return _compare_chain(node, variables)
    if isinstance(node, Not):
        return not _truth(node.operand, variables)
    if isinstance(node, And):
        return all(_truth(operand, variables) for operand in node.operands)
    if isinstance(node, Or):
        return any(_truth(operand, variables) for operand in node.operands)
    return _require_bool(node, _value(node, variables))


def _value(node: Expression, variables: Mapping[str, object]) -> object:
    """Evaluate ``node`` as a comparison operand."""
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, Name):
        return _lookup(node.identifier, variables)
    return _truth(node, variables)


def _compare_chain(node: Compare, variables: Mapping[str, object]) -> bool:
    left = _value(node.operands[0], variables)
    for symbol, right_node in zip(node.operators, node.operands[1:], strict=True):
        right = _value(right_node, variables)
        if not _compare(symbol, left, right):
            return False
        left = right
    return True


def _compare(symbol: str, left: object, right: object) -> bool:
    """Values of different kinds are never equal; only two numbers or two texts are ordered."""
    if symbol in ("==", "!="):
        equal = _kind(left) == _kind(right) and left == right
        return equal if symbol == "==" else not equal
    if _kind(left) != _kind(right) or _kind(left) not in ("number", "text"):
        raise ConditionEvalError(
            f"cannot compare {_describe(left)} with {_describe(right)} using '{symbol}'; "
            "'<', '<=', '>' and '>=' need two numbers or two texts"
        )
    return _ORDERINGS[symbol](left, right)


def _lookup(name: str, variables: Mapping[str, object]) -> object:
    if name not in variables:
        available = ", ".join(sorted(key for key in variables if isinstance(key, str))) or "none"
        raise ConditionEvalError(
            f"unknown variable '{name}' (available: {available}); check the spelling, "
            "or export it from an earlier node"
        )
    return _plain_value(name, variables[name])


def _plain_value(name: str, value: object) -> object:
    """``value`` as a plain bool, int, float, str or None.

    Subclasses (e.g. an IntEnum) are converted by the built-in type's own method, so no
    method defined on the value itself ever runs.
    """
    value_type = type(value)
    if value_type in _PLAIN_TYPES:
        return value
    for base, convert in _CONVERSIONS:
        if issubclass(value_type, base):
            return convert(value)
    raise ConditionEvalError(
        f"'{name}' holds a {value_type.__name__} value; conditions can only use numbers, "
        "text, true/false and null, so export one of those"
    )


def _require_bool(node: Expression, value: object) -> bool:
    if type(value) is bool:
        return value
    example = _COMPARE_EXAMPLES[_kind(value)]
    if isinstance(node, Name):
        raise ConditionEvalError(
            f"'{node.identifier}' is {_describe(value)}, not true/false; "
            f"compare it, e.g. {node.identifier} {example}"
        )
    raise ConditionEvalError(
        f"{_describe(value)} is not true/false; a condition needs a comparison here, "
        f"e.g. score {example}"
    )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "true/false"
    return "text" if type(value) is str else "number"


def _describe(value: object) -> str:
    """A value for a learner-facing message, e.g. ``'abc' (text)`` or ``0.8 (number)``."""
    if value is None:
        return "null"
    return f"{_render(value)} ({_kind(value)})"


def _render(value: object) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if type(value) is int and value.bit_length() > 128:
        return "a very large number"
    return repr(value)
