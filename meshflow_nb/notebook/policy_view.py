"""Policies side by side, and a workflow drawn with its pre-flight problems on it.

    compare_policies(Policy(PolicyMode.DEV), Policy(PolicyMode.STANDARD),
                     Policy(PolicyMode.REGULATED))     # one row per layer, one column each
    draw_preflight(workflow)                  # every node pre-flight names, filled dark red

`compare_policies` puts what each policy's ``describe()`` says in a grid: a layer that is
the same in every policy takes one cell across the row, so the differences stand out, and
a layer set explicitly (not by the mode's preset) is marked with ``*``. `draw_preflight`
is the graph drawing of `to_dot`, with each node a problem names in the ``blocked`` fill
and a caption listing every problem where it is. Both show as HTML/SVG in a notebook and
print as plain text where nothing renders.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import graphviz

from ..errors import ConfigError, shown
from ..events import plural
from ..model.graph import Node
from ..model.preflight import PreflightReport, Problem
from ..policy.config import Policy
from ..policy.rules import audit_problems, check_policy
from ..workflow import WorkflowDefinition
from .drawing import STATE_FILLS, STATE_TEXT, NodeView, svg_of, to_dot

__all__ = ["PolicyComparison", "PreflightDrawing", "compare_policies", "draw_preflight"]

LAYER_FIELDS: dict[str, tuple[str, ...]] = {
    "budget": ("budget_usd", "prices"),
    "guardian": ("enable_guardian", "guardian_action"),
    "uncertainty": ("enable_uncertainty", "uncertainty_escalate", "uncertainty_block"),
    "environmental": ("enable_environmental", "carbon_budget_g"),
    "cross-run learning": ("enable_cross_run_learning",),
    "immutable audit": ("immutable_audit", "record_partial_output"),
    "circuit breaker": ("circuit_breaker",),
    "human in the loop": ("human_in_loop",),
}
"""The fields behind each line of ``Policy.describe()``: a layer is marked as set
explicitly when any of its fields was passed to the policy. Every field is in one."""

OFF_MEANINGS: dict[str, str] = {
    "budget": "no cost cap",
    "circuit breaker": "no retries",
    "human in the loop": "the policy approves every human gate itself (channel 'policy')",
}
"""What a switched-off layer means, where it means more than nothing happening."""

ON_COLOR, OFF_COLOR = "#1b5e20", "#616161"
"""The on/off words in the HTML grid (both 4.5:1 or better on white)."""

PROBLEM_STATE = "blocked"
"""The drawing's fill for a node pre-flight names: "stopped by the policy"."""

_NODE_WHERE = re.compile(r"node '(.*)'\Z", re.DOTALL)


@dataclass(frozen=True)
class LayerCell:
    """One layer of one policy: whether it is on, what it will do (nothing when off),
    what pre-flight demands of it, and whether a field of it was set explicitly."""

    on: bool
    what: str = ""
    demand: str = ""
    explicit: bool = False

    def text(self) -> str:
        """``on   what`` or ``off``, then the demand (``*`` when set explicitly)."""
        said = f"{'on ' if self.on else 'off'}  {self.what}".rstrip()
        return said + (f"; {self.demand}" if self.demand else "") + (" *" if self.explicit
                                                                   else "")


@dataclass(frozen=True)
class PolicyComparison:
    """Policies side by side: ``cells[layer][i]`` is what policy ``names[i]`` does there."""

    names: tuple[str, ...]
    cells: dict[str, tuple[LayerCell, ...]]

    @property
    def layers(self) -> list[str]:
        """The layers, in the order ``describe()`` lists them."""
        return list(self.cells)

    def differing(self) -> list[str]:
        """The layers on which the policies do not all do the same thing."""
        return [layer for layer, row in self.cells.items() if not _same(row)]

    def frame(self) -> Any:
        """A pandas DataFrame: one row per layer, one column per policy, cells as text."""
        import pandas as pd

        return pd.DataFrame({name: [row[i].text() for row in self.cells.values()]
                             for i, name in enumerate(self.names)}, index=self.layers)

    def __str__(self) -> str:
        width = max(len(name) for name in (*self.names, "all"))
        lines = [f"{' | '.join(self.names)}   (* set explicitly)"]
        for layer, row in self.cells.items():
            lines.append(layer)
            if _same(row):
                lines.append(f"  {'all':<{width}}  {row[0].text()}")
                continue
            lines += [f"  {name:<{width}}  {cell.text()}" for name, cell in zip(
                self.names, row, strict=True)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='{_TH}'>{html.escape(name)}</th>" for name in self.names)
        rows = "".join(self._html_row(layer, row) for layer, row in self.cells.items())
        return (f"<table class='meshflow-policies' style='border-collapse:collapse;"
                f"font-size:12px;line-height:1.35;width:100%;table-layout:fixed'>"
                f"<thead><tr><th style='{_TH};width:10.5em'>layer</th>{head}</tr></thead>"
                f"<tbody>{rows}</tbody></table><div style='font-size:11px;color:#424242;"
                "margin-top:2px'>* set explicitly; a row that is the same in every policy "
                "is one cell</div>")

    def _html_row(self, layer: str, row: tuple[LayerCell, ...]) -> str:
        label = f"<th style='{_TH}'>{html.escape(layer)}</th>"
        if _same(row):
            span = f"<td colspan='{len(row)}' style='{_TD}'>{_html_cell(row[0])}</td>"
            return f"<tr>{label}{span}</tr>"
        cells = "".join(f"<td style='{_TD};background:#fffde7'>{_html_cell(c)}</td>" for c in row)
        return f"<tr>{label}{cells}</tr>"


_TH = "text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #bdbdbd"
_TD = "text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #e0e0e0"


def _html_cell(cell: LayerCell) -> str:
    """On/off in its colour, then what the layer does; explicit settings in bold."""
    word = f"<b style='color:{ON_COLOR if cell.on else OFF_COLOR}'>{'on' if cell.on else 'off'}</b>"
    what = html.escape(cell.what)
    demand = f" <i style='color:#8b1a1a'>{html.escape(cell.demand)}</i>" if cell.demand else ""
    return f"{word} {what}{demand}" + (" <b>*</b>" if cell.explicit else "")


def _same(row: tuple[LayerCell, ...]) -> bool:
    """Every policy does the same on this layer, set the same way."""
    return len(set(row)) == 1


def compare_policies(*policies: Policy, names: Sequence[str] | None = None) -> PolicyComparison:
    """What each policy does, layer by layer, side by side (names default to the modes,
    with the fields set explicitly: ``STANDARD + budget_usd``)."""
    if not policies:
        raise ConfigError("compare_policies() needs at least one Policy", argument="policies",
                          fix="pass Policy(PolicyMode.DEV), Policy(PolicyMode.STANDARD), ...")
    for position, policy in enumerate(policies, 1):
        if not isinstance(policy, Policy):
            raise ConfigError(f"compare_policies() argument {position} must be a Policy, not "
                              f"{shown(policy)}", argument="policies",
                              fix="pass Policy(...) objects, e.g. Policy(PolicyMode.DEV)")
    labels = _names(policies, names)
    columns = [_cells(policy) for policy in policies]
    layers = list(columns[0])
    return PolicyComparison(labels, {layer: tuple(c[layer] for c in columns) for layer in layers})


def _cells(policy: Policy) -> dict[str, LayerCell]:
    """Each line of the policy's ``describe()``, as a cell, with what pre-flight demands."""
    demands = _demands(policy)
    return {name: LayerCell(on, what if on else OFF_MEANINGS.get(name, ""),
                            "; ".join(demands.get(name, [])),
                            bool(policy.explicit & set(LAYER_FIELDS.get(name, ()))))
            for name, on, what in policy._layers()}


def _demands(policy: Policy) -> dict[str, list[str]]:
    """What the policy's pre-flight rules demand, by layer: the rules run on a workflow of
    one node with no role at the approval threshold, so every rule a policy can make a
    workflow break shows."""
    tier = policy.human_in_loop.tier_threshold
    probe = WorkflowDefinition("probe").add_node(Node("probe", _nothing, risk_tier=tier))
    found: dict[str, list[str]] = {}
    problems = check_policy(policy, probe)
    if policy.immutable_audit:
        problems += audit_problems(None, None)
    for problem in problems:
        layer, demand = _demand(problem, tier.name)
        found.setdefault(layer, []).append(demand)
    return found


def _demand(problem: Problem, tier: str) -> tuple[str, str]:
    """The layer a policy rule belongs to, and what it demands, in a few words."""
    if problem.rule == "P001":
        return "human in the loop", f"pre-flight needs a human gate before every node at " \
                                    f"{tier} or above ({problem.rule})"
    if problem.rule == "P007":
        return "immutable audit", f"pre-flight needs a ledger attached ({problem.rule})"
    if problem.rule == "P006":
        return "immutable audit", f"pre-flight needs a role on every node ({problem.rule})"
    layer = next((name for name, fields in LAYER_FIELDS.items() if problem.field in fields),
                 "human in the loop")
    if problem.rule == "P003":
        return layer, f"pre-flight needs {problem.field} ({problem.rule})"
    return layer, f"pre-flight refuses this setting ({problem.rule})"


def _nothing(ctx: Any) -> None:
    """The probe node's agent: never called (the rules only read the graph)."""


def _names(policies: Sequence[Policy], names: Sequence[str] | None) -> tuple[str, ...]:
    """The column names: given (one per policy, distinct), or made from mode and overrides."""
    if names is None:
        made = [p.mode.name + (f" + {', '.join(sorted(p.explicit))}" if p.explicit else "")
                for p in policies]
        return tuple(f"{name} ({made[:i].count(name) + 1})" if made.count(name) > 1 else name
                     for i, name in enumerate(made))
    if isinstance(names, str) or not isinstance(names, Sequence) or len(names) != len(policies) \
            or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"names must be {len(policies)} non-empty strings, one per policy, "
                          f"not {shown(names)}", argument="names",
                          fix="e.g. names=['sandbox', 'default', 'audited']")
    if len(set(names)) != len(names):
        raise ConfigError(f"names {shown(list(names))} repeat a name", argument="names",
                          fix="give every policy a name of its own")
    return tuple(n.strip() for n in names)


@dataclass(frozen=True)
class PreflightDrawing:
    """A workflow drawn with its pre-flight problems: ``marked`` nodes in the ``blocked``
    fill, every problem in the caption (``dot`` is the graphviz graph)."""

    report: PreflightReport
    marked: dict[str, tuple[str, ...]]
    dot: graphviz.Digraph

    def svg(self) -> str:
        """The drawing as SVG text (needs the Graphviz ``dot`` program)."""
        return svg_of(self.dot)

    def _repr_svg_(self) -> str:
        return self.svg()

    def __str__(self) -> str:
        return "\n".join(caption_lines(self.report))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def draw_preflight(workflow: WorkflowDefinition, policy: Policy | None = None
                   ) -> PreflightDrawing:
    """The workflow drawn with every problem its pre-flight finds (under ``policy``, or
    its own): each node a problem names is filled dark red, the caption lists them all."""
    if not isinstance(workflow, WorkflowDefinition):
        raise ConfigError(f"draw_preflight() needs a WorkflowDefinition, not {shown(workflow)}",
                          argument="workflow", fix="pass the workflow you built")
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigError(f"draw_preflight() policy must be a Policy or None, not {shown(policy)}",
                          argument="policy", fix="pass Policy(PolicyMode.REGULATED, ...)")
    report = workflow.preflight(policy)
    marked = problems_by_node(report.problems)
    dot = to_dot(workflow, {node_id: NodeView(state=PROBLEM_STATE) for node_id in marked})
    caption = "".join(graphviz.escape(line) + "\\l" for line in caption_lines(report))
    dot.attr(label=graphviz.nohtml(caption), labelloc="b", labeljust="l", fontsize="10",
             fontcolor=STATE_FILLS[PROBLEM_STATE] if not report.ok else STATE_TEXT["pending"])
    return PreflightDrawing(report, marked, dot)


def problems_by_node(problems: Sequence[Problem]) -> dict[str, tuple[str, ...]]:
    """The rule ids of the problems at each node (``where`` is ``node '<id>'``)."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        match = _NODE_WHERE.match(problem.where)
        if match:
            found.setdefault(match.group(1), []).append(problem.rule)
    return {node_id: tuple(rules) for node_id, rules in found.items()}


def caption_lines(report: PreflightReport) -> list[str]:
    """One line per problem, ``where: rule name``, under a line with the verdict."""
    if report.ok:
        return [f"pre-flight passed for '{report.workflow}': no problems"]
    lines = [f"pre-flight rejects '{report.workflow}': {plural(len(report.problems), 'problem')}"]
    lines += [f"{p.where}{f' ({p.field})' if p.field else ''}: {p.rule} {p.name}"
              for p in report.problems]
    return lines
