"""How sure each agent of a run was, and what the uncertainty layer did about it.

    uncertainty_table(result)                    # one row per agent execution
    plot_uncertainty(result)                     # a bar each, on the policy's zones
    plot_uncertainty(result, escalate=0.2)       # the same run against other thresholds

A run is a `RunResult`, a `RunHandle` or `LiveRun`, or one run's events (``result.events``
or ``ledger.events(run_id)``): the thresholds come from the policy its ``run_start``
recorded, so a table drawn from the ledger shows what the auditor sees.

Each row is one agent execution the run judged or could have judged: a ``node_complete``
(human gates left out), or a ``node_blocked`` / ``uncertainty_escalated`` whose output was
never used. ``verdict`` says what the layer did: ``passed``, ``escalated`` (with the
decision: ``approved by …`` or ``rejected by …``), ``blocked``, ``not reported`` (the agent
gave no uncertainty, so nothing was judged) or ``layer off``.

matplotlib is imported only when a chart is drawn; a chart prints as text elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import ConfigError, shown
from ..events import EventType, MeshEvent
from ..validation import fraction
from .run_events import events_of, notebook_figure

COLUMNS = ["seq", "node", "iteration", "role", "uncertainty", "confidence", "verdict"]
ZONE_COLORS = {"passes": "#9ecae1", "escalates": "#fdae6b", "blocks": "#de2d26"}
"""The bar (and zone) colour of a value that passes, asks a human, is blocked."""
UNREPORTED_COLOR = "#bdbdbd"
FIGURE_WIDTH_IN = 9.5


@dataclass(frozen=True)
class Thresholds:
    """The layer's settings as a run's policy recorded them: on or off, and its two
    thresholds (a value strictly above ``escalate`` asks a human, above ``block`` stops)."""

    enabled: bool
    escalate: float
    block: float

    def zone(self, value: float) -> str:
        """Where ``value`` falls: "passes", "escalates" or "blocks"."""
        if value > self.block:
            return "blocks"
        return "escalates" if value > self.escalate else "passes"


def thresholds_of(events: list[MeshEvent]) -> Thresholds:
    """The uncertainty settings the run's policy recorded (run_start); off, at the STANDARD
    thresholds, for a run that had no policy."""
    start = next((e for e in events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    if not isinstance(policy, Mapping):
        return Thresholds(False, 0.7, 0.9)
    return Thresholds(bool(policy.get("enable_uncertainty")),
                      float(policy.get("uncertainty_escalate", 0.7)),
                      float(policy.get("uncertainty_block", 0.9)))


# --- the table --------------------------------------------------------------------------


def uncertainty_table(run: Any) -> pd.DataFrame:
    """One row per agent execution of ``run``: its uncertainty, the confidence that is its
    complement, and what the uncertainty layer did (``verdict``)."""
    events = events_of(run, "an uncertainty table")
    return pd.DataFrame(_rows(events, thresholds_of(events)), columns=COLUMNS)


def _rows(events: list[MeshEvent], limits: Thresholds) -> list[dict[str, Any]]:
    """The rows, in the order the executions ended (or were stopped)."""
    rows: list[dict[str, Any]] = []
    gates: set[str] = set()
    iterations: dict[str, int] = {}
    escalated: dict[str, MeshEvent] = {}
    approved: dict[str, str] = {}
    for event in events:
        node = event.node_id
        if event.type is EventType.NODE_START:
            iterations[node] = int(event.payload.get("iteration") or 1)
        elif event.type is EventType.GATE_PAUSE and event.payload.get("reason") == "gate":
            gates.add(node)
        elif event.type is EventType.UNCERTAINTY_ESCALATED:
            escalated[node] = event
        elif event.type is EventType.GATE_RESUME and node in escalated:
            approved[node] = _decided(event)
        elif event.type is EventType.GATE_REJECT and node in escalated:
            rows.append(_row(escalated.pop(node), iterations, f"escalated, {_decided(event)}"))
        elif event.type is EventType.NODE_BLOCKED and event.payload.get("layer") == "uncertainty":
            rows.append(_row(event, iterations, "blocked"))
        elif event.type is EventType.NODE_COMPLETE and node not in gates:
            asked = escalated.pop(node, None) and approved.pop(node, "approved")
            rows.append(_row(event, iterations, _verdict(event, asked, limits)))
    return rows


def _verdict(event: MeshEvent, asked: str | None, limits: Thresholds) -> str:
    """What the layer did with a completed execution (``asked``: the decision on its
    escalation, if it was escalated)."""
    if event.uncertainty is None:
        return "not reported"
    if not limits.enabled:
        return "layer off"
    return f"escalated, {asked}" if asked else "passed"


def _decided(event: MeshEvent) -> str:
    """``approved by ada`` or ``rejected by ada``, from a gate_resume or gate_reject."""
    verdict = "approved" if event.type is EventType.GATE_RESUME else "rejected"
    reviewer = event.payload.get("reviewer")
    return f"{verdict} by {reviewer}" if reviewer else verdict


def _row(event: MeshEvent, iterations: Mapping[str, int], verdict: str) -> dict[str, Any]:
    """One execution's row."""
    value = event.uncertainty
    return {"seq": event.seq, "node": event.node_id,
            "iteration": iterations.get(event.node_id, 1), "role": event.role,
            "uncertainty": value, "confidence": None if value is None else round(1 - value, 6),
            "verdict": verdict}


# --- the chart --------------------------------------------------------------------------


def plot_uncertainty(run: Any, *, escalate: float | None = None, block: float | None = None,
                     title: str | None = None) -> Any:
    """A bar per agent execution: its uncertainty on a 0 to 1 axis, over the zones where
    the layer passes it, asks a human and blocks it. The thresholds are the run's policy's,
    unless ``escalate`` or ``block`` try others on the same values."""
    events = events_of(run, "an uncertainty chart")
    limits = _tried(thresholds_of(events), escalate, block)
    rows = uncertainty_table(events)
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 1.6 + 0.36 * max(len(rows), 1)),
                               layout="constrained")
    labels = [_label(row) for row in rows.itertuples()]
    figure.printed = _printed(rows, labels, limits)
    ax = figure.subplots()
    _zones(ax, limits)
    for y, row in enumerate(rows.itertuples()):
        _bar(ax, y, row, limits)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.set_ylim(max(len(labels), 1) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("uncertainty the agent reported (0 = sure, 1 = no idea; confidence is "
                  "1 - uncertainty)", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title or _title(events, limits), loc="left", fontsize=11)
    return figure


def _tried(recorded: Thresholds, escalate: float | None, block: float | None) -> Thresholds:
    """The run's thresholds, with any given ones in their place (checked as a Policy
    checks them)."""
    low = recorded.escalate if escalate is None else fraction(escalate, "escalate")
    high = recorded.block if block is None else fraction(block, "block")
    if low > high:
        raise ConfigError(f"escalate ({low:g}) is above block ({high:g})", argument="escalate",
                          fix="keep escalate <= block, as a Policy does")
    if escalate is None and block is None:
        return recorded
    return Thresholds(True, low, high)


def _zones(ax: Any, limits: Thresholds) -> None:
    """The escalate and block zones, shaded, with their thresholds as dashed lines."""
    for start, end, zone in ((limits.escalate, limits.block, "escalates"),
                             (limits.block, 1.0, "blocks")):
        ax.axvspan(start, end, color=ZONE_COLORS[zone], alpha=0.18, linewidth=0)
    for value, name in ((limits.escalate, "escalate"), (limits.block, "block")):
        ax.axvline(value, color="black", linestyle="--", linewidth=1)
        ax.text(value, 0.005, f" {name} {value:g}", fontsize=8, va="bottom",
                transform=ax.get_xaxis_transform())


def _bar(ax: Any, y: int, row: Any, limits: Thresholds) -> None:
    """One execution's bar, coloured by its zone, with its value and verdict beside it."""
    if pd.isna(row.uncertainty):
        ax.text(0.005, y, "reported no uncertainty: never judged", va="center", fontsize=8,
                color="#636363")
        return
    value = float(row.uncertainty)
    ax.barh(y, value, height=0.65, color=ZONE_COLORS[limits.zone(value)])
    ax.text(value + 0.008, y, f"{value:.3f}  {row.verdict}", va="center", fontsize=8)


def _label(row: Any) -> str:
    """``writer`` or ``writer #2``."""
    return row.node if row.iteration == 1 else f"{row.node} #{row.iteration}"


def _printed(rows: pd.DataFrame, labels: list[str], limits: Thresholds) -> str:
    """The chart as text: the thresholds, then one line per execution."""
    head = (f"escalate above {limits.escalate:g}, block above {limits.block:g}"
            + ("" if limits.enabled else " (the layer was off in this run)"))
    width = max([len(label) for label in labels] + [4])
    lines = [head]
    for label, row in zip(labels, rows.itertuples(), strict=True):
        value = "   none" if pd.isna(row.uncertainty) else f"{row.uncertainty:7.3f}"
        zone = "" if pd.isna(row.uncertainty) else f"  ({limits.zone(row.uncertainty)})"
        lines.append(f"  {label:<{width}} {value}  {row.verdict}{zone}")
    return "\n".join(lines)


def _title(events: list[MeshEvent], limits: Thresholds) -> str:
    """The chart's title: the workflow, and whether the layer was on."""
    start = next((e for e in events if e.type is EventType.RUN_START), None)
    workflow = start.payload.get("workflow") if start is not None else None
    state = "" if limits.enabled else " (layer off in this run)"
    return f"Uncertainty per agent execution: {shown(workflow or 'workflow')}{state}"


__all__ = ["Thresholds", "plot_uncertainty", "thresholds_of", "uncertainty_table"]
