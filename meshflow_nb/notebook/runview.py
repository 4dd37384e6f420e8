"""A plain-Python model of one run, fed event by event: node states, totals, a table.

The notebook widgets redraw from a `RunView`; it has no Jupyter imports, so it can
be tested headlessly and replayed from ``result.events`` or a ledger:

    view = RunView(definition)
    for event in result.events:
        view.apply(event)
    print(view.text())

`apply` does O(1) work per event (a loop iteration touches only its body) and
never renders; `svg()` draws on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..events import BOOKKEEPING_KEYS, EventType, MeshEvent, headline, short_text
from .drawing import NodeView, render_svg

__all__ = ["NodeView", "RunView", "detail"]

_NODE_STATES: dict[EventType, str] = {
    EventType.NODE_START: "running",
    EventType.NODE_COMPLETE: "done",
    EventType.NODE_FAILED: "failed",
    EventType.GATE_PAUSE: "paused",
    EventType.GATE_RESUME: "running",
    EventType.GATE_REJECT: "rejected",
    EventType.NODE_SKIPPED: "skipped",
    EventType.NODE_BLOCKED: "blocked",
}

_DETAIL_KEYS: dict[EventType, tuple[str, ...]] = {
    EventType.RUN_START: ("workflow", "nodes"),
    EventType.NODE_START: ("iteration",),
    EventType.NODE_FAILED: ("reason", "error"),
    EventType.NODE_SKIPPED: ("reason",),
    EventType.LOOP_ITERATION: ("condition", "iteration", "max_iterations"),
    EventType.LOOP_EXHAUSTED: ("condition", "max_iterations"),
    EventType.GATE_PAUSE: ("prompt",),
    EventType.GATE_RESUME: ("reviewer", "reason"),
    EventType.GATE_REJECT: ("reviewer", "reason"),
    EventType.RUN_COMPLETE: ("status", "error"),
}
"""The payload keys the table shows per event type; other types show their `headline`
(node_complete: the variables the agent set)."""
DETAIL_WIDTH = 100
"""Longest detail cell; the event table stays one line per event."""


class RunView:
    """Node states, running totals and event-table rows of one run of ``definition``."""

    def __init__(self, definition: Any) -> None:
        self.definition = definition
        self.states: dict[str, NodeView] = {str(n.id): NodeView() for n in definition.nodes}
        self.totals: dict[str, Any] = {
            "cost_usd": 0.0, "tokens": 0, "carbon_g": 0.0, "node_executions": 0,
            "loop_iterations": 0, "elapsed_s": 0.0, "status": "pending"}
        self.rows: list[dict[str, Any]] = []
        self.waiting: list[str] = []
        """Ids of the nodes whose gate waits for a decision now (paused, not yet decided)."""
        self.streaming: dict[str, str] = {}
        """Text a streaming agent has written so far, by node, until the node ends."""
        self._t0: datetime | None = None
        self._handlers: dict[EventType, Callable[[MeshEvent], None]] = {
            EventType.RUN_START: self._on_run_start,
            EventType.LOOP_ITERATION: self._on_loop,
            EventType.GATE_PAUSE: self._on_gate_pause,
            EventType.GATE_RESUME: self._on_gate_decided,
            EventType.GATE_REJECT: self._on_gate_decided,
            EventType.RUN_COMPLETE: self._on_run_complete,
        }

    def apply(self, event: MeshEvent) -> None:
        """Take one event into account: node state, totals, one table row (a streamed
        piece of text adds to its node's text instead: a row each would flood the table)."""
        if event.type is EventType.NODE_PARTIAL:
            node_id = str(event.node_id)
            self.streaming[node_id] = self.streaming.get(node_id, "") + str(
                event.payload.get("delta", ""))
            return
        offset = self._offset(event.ts)
        self.totals["elapsed_s"] = max(self.totals["elapsed_s"], offset)
        if event.node_id is not None and event.type in _NODE_STATES:
            self._on_node(event)
        handler = self._handlers.get(event.type)
        if handler:
            handler(event)
        if event.type is not EventType.RUN_COMPLETE:  # it repeats the sums
            self._add_accounting(event)
        self.rows.append(_row(event, offset))

    __call__ = apply
    """A `RunView` is itself an event subscriber: ``wf.run(task, on_event=view)``."""

    def _offset(self, ts: str) -> float:
        """Seconds since the first event seen (0.0 when a timestamp does not parse)."""
        try:
            when = datetime.fromisoformat(ts)
        except (TypeError, ValueError):
            return 0.0
        if self._t0 is None:
            self._t0 = when
        return max(0.0, (when - self._t0).total_seconds())

    def _view(self, node_id: str) -> NodeView:
        view = self.states.get(node_id)
        if view is None:  # an event for a node the definition does not have
            view = self.states[node_id] = NodeView()
        return view

    def _on_node(self, event: MeshEvent) -> None:
        view = self._view(str(event.node_id))
        if event.type is not EventType.NODE_START:
            self.streaming.pop(str(event.node_id), None)
        view.state = _NODE_STATES[event.type]
        view.last_event = event.type.value
        if event.type is EventType.NODE_START:
            view.iterations += 1
        elif event.type is EventType.NODE_COMPLETE:
            self.totals["node_executions"] += 1

    def _on_run_start(self, event: MeshEvent) -> None:
        self.totals["status"] = "running"

    def _on_loop(self, event: MeshEvent) -> None:
        """The body goes back to pending; its iteration counts are kept."""
        self.totals["loop_iterations"] += 1
        for node_id in event.payload.get("rerun") or ():
            view = self._view(str(node_id))
            view.state = "pending"
            view.last_event = event.type.value

    def _on_gate_pause(self, event: MeshEvent) -> None:
        node_id = str(event.node_id)
        if node_id not in self.waiting:
            self.waiting.append(node_id)

    def _on_gate_decided(self, event: MeshEvent) -> None:
        if str(event.node_id) in self.waiting:
            self.waiting.remove(str(event.node_id))

    def _on_run_complete(self, event: MeshEvent) -> None:
        """The run is over: a node still running or paused was stopped with it."""
        self.totals["status"] = str(event.payload.get("status") or "completed")
        self.waiting.clear()
        self.streaming.clear()
        for view in self.states.values():
            if view.state in ("running", "paused"):
                view.state = "cancelled"

    def status_text(self) -> str:
        """What the run is doing, as its header says it: "waiting for a decision on
        hitl_gate" while a gate waits for a person, else the run's status."""
        if self.waiting:
            return f"waiting for a decision on {', '.join(self.waiting)}"
        return str(self.totals["status"])

    def _add_accounting(self, event: MeshEvent) -> None:
        self.totals["cost_usd"] += event.cost_usd or 0.0
        self.totals["tokens"] += event.tokens or 0
        self.totals["carbon_g"] += event.carbon_g or 0.0

    def text(self) -> str:
        """Plain-text view: one line per node (state, runs), then the totals."""
        width = max((len(n) for n in self.states), default=4)
        lines = [f"{node_id:<{width}}  {view.state:<8}  runs {view.iterations}"
                 for node_id, view in self.states.items()]
        t = self.totals
        lines.append(
            f"status {self.status_text()}  executions {t['node_executions']}  "
            f"loops {t['loop_iterations']}  tokens {t['tokens']}  "
            f"cost ${t['cost_usd']:.4f}  carbon {t['carbon_g']:.3f} g  "
            f"elapsed {t['elapsed_s']:.2f} s")
        return "\n".join(lines)

    def svg(self) -> str:
        """The workflow drawn with the current states (runs ``dot``)."""
        return render_svg(self.definition, self.states)

    def __repr__(self) -> str:
        return f"<RunView {getattr(self.definition, 'name', '?')!r}: {self.totals['status']}>"


def _row(event: MeshEvent, offset: float) -> dict[str, Any]:
    """One row of the event table."""
    return {
        "seq": event.seq, "t": round(offset, 3), "type": event.type.value,
        "node": event.node_id, "role": event.role, "detail": detail(event),
        "cost_usd": event.cost_usd, "tokens": event.tokens,
    }


def detail(event: MeshEvent) -> str:
    """A short description of what is special about this event, e.g. 'quality_score=0.6'."""
    text = " ".join(f"{k}={short_text(v)}" for k, v in _detail_items(event))
    return short_text(text, DETAIL_WIDTH)


def _detail_items(event: MeshEvent) -> list[tuple[str, object]]:
    """The payload items of the detail cell: the type's own keys, else its headline."""
    payload = event.payload or {}
    if event.type is EventType.NODE_START and payload.get("iteration") == 1:
        return []  # a first start says nothing its row does not
    keys = _DETAIL_KEYS.get(event.type)
    if keys is None:
        return headline(payload, skip=BOOKKEEPING_KEYS)
    return [(k, payload[k]) for k in keys if payload.get(k) not in (None, "")]
