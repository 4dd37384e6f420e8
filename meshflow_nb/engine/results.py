"""What a run leaves behind: its status, per-node records, totals and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import EventType, MeshEvent, plural
from ..hitl.requests import Decision
from ..model.preflight import PreflightReport
from ..model.status import RunStatus

_GOVERNANCE = (EventType.GUARDIAN_FINDING, EventType.NODE_BLOCKED, EventType.BUDGET_EXCEEDED,
               EventType.UNCERTAINTY_ESCALATED, EventType.NODE_RETRY, EventType.CIRCUIT_STATE)


@dataclass
class NodeRun:
    """The latest execution of one node, plus how often it ran."""

    node_id: str
    role: str | None
    status: str = "pending"
    output: Any = None
    text: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    uncertainty: float | None = None
    model: str | None = None
    executions: int = 0
    duration_ms: float = 0.0
    error: str | None = None


@dataclass
class Totals:
    """Sums over every node execution of a run."""

    node_executions: int = 0
    loop_iterations: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    carbon_g: float = 0.0
    duration_ms: float = 0.0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(repr=False)
class RunResult:
    """Everything about one finished run; `str()` is a readable summary."""

    run_id: str
    workflow: str
    task: str
    status: RunStatus
    output: Any
    nodes: dict[str, NodeRun]
    totals: Totals
    events: list[MeshEvent]
    decisions: list[Decision] = field(default_factory=list)
    preflight: PreflightReport | None = None
    error: str | None = None
    unrecorded: int = 0
    """Events the ledger did not record; ``recording_error`` is the first reason."""
    recording_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED

    @property
    def outputs(self) -> dict[str, Any]:
        """Latest output of every node that completed."""
        return {n.node_id: n.output for n in self.nodes.values() if n.status == "completed"}

    @property
    def executed(self) -> list[str]:
        """Node ids in the order they completed, repeats included (loops)."""
        return [e.node_id for e in self.events if e.type is EventType.NODE_COMPLETE]

    def summary(self) -> str:
        t = self.totals
        lines = [
            f"Run {self.run_id} of '{self.workflow}': {self.status.value}",
            f"  node executions: {t.node_executions}   loop iterations: {t.loop_iterations}",
            f"  tokens: {t.tokens} ({t.tokens_in} in / {t.tokens_out} out)   "
            f"cost: ${t.cost_usd:.4f}   carbon: {t.carbon_g:.3f} g CO2e   "
            f"time: {t.duration_ms / 1000:.2f} s",
        ]
        lines += [f"  gate {d.node_id}: {d.describe()}" for d in self.decisions]
        if self.unrecorded:
            lines.append(f"  ledger: {plural(self.unrecorded, 'event')} not recorded "
                         f"({self.recording_error})")
        governance = self._governance_lines()
        if governance:
            lines.append("  governance: " + "; ".join(governance))
        if self.preflight is not None and not self.preflight.ok:
            lines.append(str(self.preflight))  # the error is this report
        elif self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)

    def _governance_lines(self) -> list[str]:
        """One phrase per governance layer that acted, e.g. '2 guardian findings'."""
        lines = []
        for kind in _GOVERNANCE:
            events = [e for e in self.events if e.type is kind]
            if events:
                last = events[-1].payload.get("message", "")
                lines.append(f"{len(events)} {kind.value.replace('_', ' ')}"
                             + (f" ({last})" if len(events) == 1 and last else ""))
        return lines

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RunResult {self.run_id} {self.workflow!r} {self.status.value}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary())
