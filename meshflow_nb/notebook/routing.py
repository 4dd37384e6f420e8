"""How a run chooses its way: conditions tried on values, and quality loops read draft by draft.

    explain_condition("not a == 1 or b")          # what it reads, how it groups, or why not
    condition_table(["quality_score < 0.8", "quality_score >= 0.8"],
                    [{"quality_score": s} for s in (0.79, 0.8, 0.81)])
    loop_history(result, workflow)                 # one row per completion of a loop's source

All three read conditions with the toolkit's own parser (docs/conditions.md), never with
``eval``: trying a condition here is exactly what the engine does on an edge, without
building or running a workflow. Pandas only; no Jupyter needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..engine.results import RunResult
from ..errors import ConfigError, shown
from ..events import EventType, MeshEvent, short_text
from ..model.conditions import (
    And,
    Compare,
    Condition,
    ConditionEvalError,
    ConditionSyntaxError,
    Constant,
    Expression,
    Name,
    Not,
    parse_condition,
)
from ..model.graph import Blueprint, Edge, Topology

__all__ = ["ConditionExplanation", "condition_table", "explain_condition", "loop_history"]

CASE_LABEL_CHARS = 60
"""Longest column label `condition_table` writes for one case."""
_USING = re.compile(r" using '[<>=!]{1,2}'$")
"""The operator at the end of an evaluation error: the row's condition shows it."""


@dataclass(frozen=True)
class ConditionExplanation:
    """A condition as the parser reads it: the names it reads and its grouping, or why
    it is refused (``error``, with the column and a caret under the problem)."""

    text: str
    names: tuple[str, ...] = ()
    grouped: str = ""
    error: ConditionSyntaxError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        if self.error is not None:
            return str(self.error).replace("invalid condition:", "refused:", 1)
        reads = ", ".join(self.names) or "no variable"
        return f"{self.text}\n    reads: {reads}\n    means: {self.grouped}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def explain_condition(text: str) -> ConditionExplanation:
    """What ``text`` reads and how its parts group, or why the parser refuses it."""
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError as err:
        return ConditionExplanation(text if isinstance(text, str) else shown(text), error=err)
    return ConditionExplanation(text, tuple(sorted(condition.names)), _grouped(condition.tree))


def _grouped(node: Expression) -> str:
    """The tree written back with a bracket around every part that is not a plain value."""
    if isinstance(node, Constant):
        return _literal(node.value)
    if isinstance(node, Name):
        return node.identifier
    if isinstance(node, Compare):
        parts = [_operand(node.operands[0])]
        for symbol, operand in zip(node.operators, node.operands[1:], strict=True):
            parts += [symbol, _operand(operand)]
        return " ".join(parts)
    if isinstance(node, Not):
        return f"not {_operand(node.operand)}"
    word = " and " if isinstance(node, And) else " or "
    return word.join(_operand(operand) for operand in node.operands)


def _operand(node: Expression) -> str:
    """A part inside a bigger one: bracketed unless it is a name or a value."""
    text = _grouped(node)
    return text if isinstance(node, (Constant, Name)) else f"({text})"


def _literal(value: object) -> str:
    """A constant as the condition language writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def condition_table(conditions: str | Sequence[str],
                    cases: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Each condition (a row) evaluated on each case of variable values (a column):
    True, False, or what stops it: the evaluation error, or the column where the text is
    invalid (`explain_condition` says why)."""
    texts = [conditions] if isinstance(conditions, str) else _condition_list(conditions)
    columns = _cases(cases)
    rows = {_row_label(text, n): [_cell(text, case) for case in columns.values()]
            for n, text in enumerate(texts)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns))
    table.index.name = "condition"
    return table


def _condition_list(conditions: Any) -> list[Any]:
    if isinstance(conditions, Mapping) or not isinstance(conditions, Sequence):
        raise ConfigError(f"conditions must be a condition or a list of them, not "
                          f"{shown(conditions)}", argument="conditions",
                          fix='pass e.g. ["quality_score < 0.8", "quality_score >= 0.8"]')
    return list(conditions)


def _cases(cases: Any) -> dict[str, Mapping[str, Any]]:
    """The cases by column label (a label that repeats gets a number)."""
    if isinstance(cases, (str, Mapping)) or not isinstance(cases, Iterable):
        raise ConfigError(f"cases must be a list of dicts of variable values, not "
                          f"{shown(cases)}", argument="cases",
                          fix='pass e.g. [{"quality_score": 0.7}, {"quality_score": 0.9}]')
    labelled: dict[str, Mapping[str, Any]] = {}
    for n, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise ConfigError(f"case {n} must be a dict of variable values, not {shown(case)}",
                              argument="cases", fix='write it as {"quality_score": 0.7}')
        label = _case_label(case)
        labelled[label if label not in labelled else f"{label} (#{n + 1})"] = case
    return labelled


def _case_label(case: Mapping[str, Any]) -> str:
    """``quality_score=0.7, tone='formal'``: one case of variable values, cut short."""
    text = ", ".join(f"{name}={_value_text(value)}" for name, value in case.items()) or "(none)"
    return short_text(text, CASE_LABEL_CHARS)


def _value_text(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return _literal(value) if value is None or isinstance(value, bool) else repr(value)


def _row_label(text: Any, n: int) -> str:
    return text if isinstance(text, str) else f"#{n + 1}: {shown(text)}"


def _cell(text: Any, case: Mapping[str, Any]) -> bool | str:
    """True/False, or a short phrase saying why the condition has no answer here."""
    try:
        return parse_condition(text).evaluate(case)
    except ConditionSyntaxError as err:
        return f"invalid at column {err.position + 1}"
    except ConditionEvalError as err:
        return _USING.sub("", str(err).split(";")[0])


# --- quality loops ---------------------------------------------------------------


def loop_history(run: RunResult | Iterable[MeshEvent], workflow: Blueprint) -> pd.DataFrame:
    """One row per completion of a loop edge's source: which execution it was, the values
    its condition read, whether it held, and what the loop did (back, guard spent, on)."""
    events = list(run.events if isinstance(run, RunResult) else run)
    topology = Topology.of((n.id for n in workflow.nodes), workflow.edges)
    exports = {n.id: tuple(n.exports) for n in workflow.nodes}
    loops = {edge: _parsed(edge) for edge in topology.loop_edges}
    rows = [row for edge, condition in loops.items() if condition is not None
            for row in _loop_rows(edge, condition, events, exports)]
    names = sorted({name for condition in loops.values() if condition is not None
                    for name in condition.names})
    return pd.DataFrame(rows, columns=["edge", "execution", *names, "holds", "outcome"])


def _parsed(edge: Edge) -> Condition | None:
    """The edge's condition, or None when it does not parse (pre-flight rejected the run,
    so no node ran: the loop has no history)."""
    try:
        return parse_condition(edge.condition or "")
    except ConditionSyntaxError:
        return None


def _loop_rows(edge: Edge, condition: Condition, events: list[MeshEvent],
               exports: Mapping[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """The rows of one loop edge, read from the events in order."""
    rows: list[dict[str, Any]] = []
    variables: dict[str, Any] = {}
    for event in events:
        if event.type is EventType.NODE_COMPLETE and event.node_id in exports:
            variables.update({k: event.payload[k] for k in exports[event.node_id]
                              if k in event.payload})
            if event.node_id == edge.source:
                rows.append(_completion(edge, condition, variables, len(rows) + 1))
        elif rows and event.payload.get("edge") == edge.label:
            _loop_event(rows[-1], edge, event)
    return rows


def _completion(edge: Edge, condition: Condition, variables: Mapping[str, Any],
                execution: int) -> dict[str, Any]:
    """A row for one completion of the source, before the loop's event (if any) fills it."""
    try:
        holds: bool | None = condition.evaluate(variables)
        outcome = "the run had stopped" if holds else "on: the loop's condition is false"
    except ConditionEvalError:
        holds, outcome = None, "the condition could not be evaluated"
    values = {name: variables.get(name) for name in sorted(condition.names)}
    return {"edge": edge.label, "execution": execution, **values, "holds": holds,
            "outcome": outcome}


def _loop_event(row: dict[str, Any], edge: Edge, event: MeshEvent) -> None:
    """A loop_iteration or loop_exhausted event says what the loop did after ``row``."""
    if event.type is EventType.LOOP_ITERATION:
        row["outcome"] = (f"back to {edge.target} (revision {event.payload.get('iteration')} "
                          f"of {event.payload.get('max_iterations')})")
    elif event.type is EventType.LOOP_EXHAUSTED:
        row["outcome"] = "guard spent: on, whatever the conditions say"
