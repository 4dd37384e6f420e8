"""The ledger explorer widget: pick a run, verify it, see damaged rows, replay it.

    LedgerExplorer(ledger, workflow=pipeline)     # all runs; or run_id=..., node_id=...,
                                                  # event_type=... (the three lists)

Built on `explorer.explore` (the pandas model: chain status per row, the verifier's
sentence). "Verify again" re-reads the ledger, so a tamper made in a SQL cell shows up
without re-running anything; "Replay" feeds the run's recorded events into a
`LiveView` under the table. Without ``workflow`` the replay draws the nodes the
ledger names (the ledger keeps events, not the graph's edges).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import ipywidgets as widgets

from ..errors import ConfigError
from ..events import EventType, MeshEvent
from ..ledger.replay import ReplayLedger
from ..model.graph import HumanGate, Node
from .explorer import LedgerView, event_type_filter, explore, resolve_run, text_filter
from .fallback import FallbackDisplay
from .liveview import LiveView

ALL_RUNS = "(all runs)"
ALL_NODES = "(all nodes)"
ALL_EVENTS = "(all events)"


class LedgerExplorer(FallbackDisplay):
    """The ledger as a verified table, with run choice, re-verification and replay."""

    def __init__(self, ledger: ReplayLedger, *, run_id: str | None = None,
                 node_id: str | None = None, event_type: str | EventType | None = None,
                 workflow: Any = None, anchor: Any = None, replay_pace_s: float = 0.15) -> None:
        self.ledger = ledger
        self.workflow = workflow
        self.anchor = anchor
        self.replay_pace_s = replay_pace_s
        self.replayed: LiveView | None = None
        self._choosing = False
        ledger.flush()
        chosen = resolve_run(ledger, run_id)
        self.runs = _dropdown("Run", [ALL_RUNS, *_run_ids(ledger)], chosen or ALL_RUNS)
        self.nodes = _dropdown("Node", [ALL_NODES], text_filter(node_id, "node_id") or ALL_NODES)
        self.event_types = _dropdown("Event", [ALL_EVENTS],
                                     event_type_filter(event_type) or ALL_EVENTS)
        self.verify_button = widgets.Button(description="Verify again", icon="refresh")
        self.replay_button = widgets.Button(description="Replay run", icon="play")
        self.summary = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.table = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.replay_box = widgets.VBox()
        self.verify_button.on_click(lambda _: self.refresh())
        self.replay_button.on_click(lambda _: self._replay_clicked())
        for choice in (self.runs, self.nodes, self.event_types):
            choice.observe(lambda _: self._choosing or self.refresh(), names="value")
        super().__init__(widgets.VBox([
            widgets.HBox([self.runs, self.nodes, self.event_types],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.verify_button, self.replay_button]),
            self.summary, self.table, self.replay_box], layout=widgets.Layout(width="100%")))
        self.view: LedgerView = self._explore()
        self._update_filter_choices()
        self._show()

    @property
    def run_id(self) -> str | None:
        """The run chosen in the dropdown, or None for all runs."""
        return None if self.runs.value == ALL_RUNS else self.runs.value

    @property
    def node_id(self) -> str | None:
        """The node chosen in the dropdown, or None for all nodes."""
        return None if self.nodes.value == ALL_NODES else self.nodes.value

    @property
    def event_type(self) -> str | None:
        """The event type chosen in the dropdown, or None for all of them."""
        return None if self.event_types.value == ALL_EVENTS else self.event_types.value

    def refresh(self) -> LedgerView:
        """Read and verify the ledger again (after a tamper, after a new run)."""
        self.ledger.flush()
        self._update_run_choices()
        self.view = self._explore()
        self._update_filter_choices()
        self._show()
        self.refresh_fallback()
        return self.view

    def replay(self, run_id: str | None = None) -> LiveView:
        """Replay a run's recorded events into a new `LiveView` below the table."""
        chosen = run_id or self.run_id
        if chosen is None:
            raise ConfigError("choose a run to replay: pass run_id=... or pick it in the list")
        events = self.ledger.events(chosen)
        view = LiveView(self.workflow or recorded_workflow(events))
        self.replay_box.children = [widgets.HTML(f"<b>Replay of run {html.escape(chosen)}</b>"),
                                    view.widget]
        self.replayed = view.replay(events, pace_s=self.replay_pace_s)
        return view

    def _replay_clicked(self) -> None:
        if self.run_id is None:
            self.summary.value = ("<b>Choose one run in the Run list to replay it.</b>"
                                  + _summary_html(self.view))
        else:
            self.replay()

    def _update_run_choices(self) -> None:
        """New runs appear in the list; the chosen one stays chosen."""
        self._set_choices(self.runs, [ALL_RUNS, *_run_ids(self.ledger)])

    def _update_filter_choices(self) -> None:
        """The node and event lists offer what the chosen run has; a choice stays chosen
        even where nothing matches it (the table then says so)."""
        scope = self.view.scope
        for choice, every, column in ((self.nodes, ALL_NODES, "node_id"),
                                      (self.event_types, ALL_EVENTS, "event_type")):
            options = [every, *_distinct(scope, column)]
            self._set_choices(choice, options + [choice.value] * (choice.value not in options))

    def _set_choices(self, choice: widgets.Dropdown, options: list[str]) -> None:
        """New options for a list without refreshing; the chosen value stays if offered,
        else the first option (all) is chosen."""
        current = choice.value
        if list(choice.options) == options:
            return
        self._choosing = True
        try:
            choice.options = options
            choice.value = current if current in options else options[0]
        finally:
            self._choosing = False

    def _explore(self) -> LedgerView:
        return explore(self.ledger, self.run_id, self.anchor, node_id=self.node_id,
                       event_type=self.event_type)

    def _show(self) -> None:
        self.summary.value = _summary_html(self.view)
        self.table.value = self.view.table_html()

    def text(self) -> str:
        return self.view.text()

    def html(self) -> str:
        return self.view._repr_html_()


def recorded_workflow(events: Iterable[MeshEvent]) -> SimpleNamespace:
    """A drawable stand-in for a run's workflow: its nodes as the events name them."""
    nodes: dict[str, Node] = {}
    gates = set()
    name = "recorded run"
    for event in events:
        if event.type is EventType.RUN_START:
            name = str(event.payload.get("workflow") or name)
        if event.type is EventType.GATE_PAUSE and event.node_id:
            gates.add(event.node_id)
        if event.node_id and event.node_id not in nodes:
            nodes[event.node_id] = Node(event.node_id, role=event.role or None)
    drawn = [HumanGate(n) if n in gates else node for n, node in nodes.items()]
    return SimpleNamespace(name=name, nodes=drawn, edges=[])


def _run_ids(ledger: ReplayLedger) -> list[str]:
    runs = ledger.runs()
    return [] if runs.empty else [str(r) for r in runs["run_id"]]


def _distinct(frame: Any, column: str) -> list[str]:
    """The distinct values of a column, in the order they first appear."""
    return list(dict.fromkeys(str(v) for v in frame[column] if isinstance(v, str)))


def _dropdown(description: str, options: list[str], value: str) -> widgets.Dropdown:
    """A list whose value is always one of its options (a given value is added)."""
    return widgets.Dropdown(options=options if value in options else [*options, value],
                            value=value, description=description)


def _summary_html(view: LedgerView) -> str:
    return view.banner_html()
