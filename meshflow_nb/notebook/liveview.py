"""The live run view: the workflow drawing recoloured as events arrive, the event table
beside it and the running totals above it.

    view = LiveView(wf)
    view                                   # show it (last expression of a cell)
    handle = wf.start(task, on_event=view) # the cell returns; the view keeps updating
    LiveView(wf).replay(ledger.events(run_id), pace_s=0.3)   # watch a past run again

Events are applied to a `RunView` at once (O(1) each); drawing is throttled: at most
one redraw per ``throttle_s``, stretched to four times the last redraw's cost, so a
200-node run never floods the browser. The run's end always redraws at once.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets

from ..events import EventType, MeshEvent
from .drawing import STATE_FILLS, STATE_TEXT, GraphvizNotInstalled, legend_html
from .fallback import FallbackDisplay
from .runview import RunView

TABLE_COLUMNS = {"seq": "3em", "t": "4em", "type": "9.6em", "node": "8.6em", "detail": "auto",
                 "cost_usd": "5.4em", "tokens": "4.6em"}
"""Columns of the event table, in order, with their widths: ``detail`` takes what is left,
so the table is as wide as its box and no wider (each node's role is in the drawing)."""

TEXT_COLUMNS = ("seq", "t", "type", "node", "detail")
"""Columns of the plain-text event table (narrower, for papermill output)."""

TABLE_HEIGHT = "360px"
"""Height of the event table's scroll area; its header row stays on top while it scrolls."""

_AT_ONCE = frozenset({EventType.GATE_PAUSE, EventType.GATE_RESUME, EventType.GATE_REJECT})
"""Events redrawn at once, not throttled: a person is waiting for the view to say so."""


class Throttle:
    """Run ``action`` at most once per interval, from a timer thread; `flush` runs it now.

    The interval is ``min_interval_s`` or four times the action's last duration,
    whichever is longer: slow redraws make themselves rarer.
    """

    def __init__(self, action: Callable[[], None], min_interval_s: float) -> None:
        self._action = action
        self._min_interval_s = min_interval_s
        self._last_cost_s = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """Ask for a run of the action; several pokes within the interval give one."""
        with self._lock:
            if self._timer is not None:
                return
            interval = max(self._min_interval_s, 4 * self._last_cost_s)
            self._timer = threading.Timer(interval, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        """Run the action now, cancelling a pending run."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._run()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self._run()

    def _run(self) -> None:
        started = time.perf_counter()
        self._action()
        self._last_cost_s = time.perf_counter() - started


class LiveView(FallbackDisplay):
    """Graph, event table and totals of one run, updated as its events arrive.

    A `LiveView` is an event subscriber: pass it as ``on_event=`` or to
    ``handle.subscribe``. ``max_rows`` bounds the rows drawn in the widget's table
    (the newest are kept; `model.rows` keeps them all).
    """

    def __init__(self, definition: Any, *, throttle_s: float = 0.25, max_rows: int = 300) -> None:
        self.model = RunView(definition)
        self.max_rows = max_rows
        self.redraws = 0
        """How many times the widget was redrawn (for measuring the throttle)."""
        self._lock = threading.Lock()
        self._totals = widgets.HTML()
        self._streaming = widgets.HTML()
        self._graph = widgets.HTML()
        self._legend = widgets.HTML(legend_html(), layout=widgets.Layout(width="100%"))
        # the table takes the width the drawing leaves, and goes below it in a narrow cell
        self._table = widgets.HTML(layout=widgets.Layout(flex="1 1 420px", min_width="0",
                                                         max_width="100%"))
        super().__init__(widgets.VBox([
            self._totals,
            self._streaming,
            widgets.HBox([widgets.VBox([self._graph, self._legend],
                                       layout=widgets.Layout(width="38%", min_width="280px")),
                          self._table], layout=widgets.Layout(flex_flow="row wrap")),
        ]))
        self._throttle = Throttle(self._redraw, throttle_s)
        self._redraw()

    def __call__(self, event: MeshEvent) -> None:
        """Take one event: the model now, the drawing soon (at once when the run ends)."""
        with self._lock:
            self.model.apply(event)
        if event.type is EventType.RUN_COMPLETE:
            self._throttle.flush()
            self.refresh_fallback()
        elif event.type in _AT_ONCE:
            self._throttle.flush()
        else:
            self._throttle.poke()

    def watch(self, handle: Any) -> LiveView:
        """Follow a started run (a `RunHandle`): its past events first, then live ones."""
        handle.subscribe(self)
        return self

    def replay(self, events: Iterable[MeshEvent], *, pace_s: float = 0.0) -> LiveView:
        """Feed recorded events (``result.events``, ``ledger.events(run_id)``).

        With ``pace_s`` they are fed one every ``pace_s`` seconds from a background
        thread, so the drawing lights up as it did live; the call returns at once.
        """
        events = list(events)
        if pace_s <= 0:
            for event in events:
                self(event)
            return self

        def feed() -> None:
            for event in events:
                self(event)
                time.sleep(pace_s)

        threading.Thread(target=feed, name="meshflow-replay", daemon=True).start()
        return self

    # --- rendering -----------------------------------------------------------------

    def _redraw(self) -> None:
        with self._lock:
            svg = self._svg()
            totals = totals_html(self.model)
            streaming = streaming_html(self.model.streaming)
            table = table_html(self.model.rows, self.max_rows)
            self.redraws += 1
        self._graph.value = svg
        self._totals.value = totals
        self._streaming.value = streaming
        self._table.value = table

    def _svg(self) -> str:
        try:
            return self.model.svg()
        except GraphvizNotInstalled as err:
            return f"<pre>(no drawing: {html.escape(str(err))})</pre>"

    def text(self) -> str:
        """Node states and totals, then every event as a line."""
        with self._lock:
            return self.model.text() + "\n\n" + table_text(self.model.rows)

    def html(self) -> str:
        """Totals, the drawing and the whole event table as static HTML."""
        with self._lock:
            return (totals_html(self.model) + self._svg()
                    + legend_html() + table_html(self.model.rows, len(self.model.rows)))

    def __repr__(self) -> str:
        return f"<LiveView of {self.model!r}>"


def totals_html(view: RunView) -> str:
    """The running totals as one line of HTML, led by the status: "waiting for a
    decision on <gate>" while a gate waits for a person, else the run's status."""
    t = view.totals
    parts = [status_html(view.status_text(), waiting=bool(view.waiting)),
             f"cost ${t['cost_usd']:.4f}", f"tokens {t['tokens']}",
             f"carbon {t['carbon_g']:.3f} g", f"time {t['elapsed_s']:.2f} s",
             f"node runs {t['node_executions']}", f"loop iterations {t['loop_iterations']}"]
    return "<div class='meshflow-totals'>" + " &middot; ".join(parts) + "</div>"


STREAM_TAIL_CHARS = 160
"""How much of a streaming node's latest text the live view shows."""


def streaming_html(streaming: dict[str, str]) -> str:
    """One line per node whose agent is writing now: its latest words, as they arrive."""
    lines = []
    for node_id, text in streaming.items():
        tail = " ".join(text.split())[-STREAM_TAIL_CHARS:]
        lines.append(f"<div style='font-size:12px;color:#333;overflow-wrap:anywhere'>"
                     f"<b>{html.escape(node_id)}</b> is writing: …{html.escape(tail)}</div>")
    return "".join(lines)


def status_html(status: str, *, waiting: bool = False) -> str:
    """The header's status in bold; while a gate waits, in the paused colours."""
    style = (f" style='background:{STATE_FILLS['paused']};color:{STATE_TEXT['paused']};"
             "padding:0 6px;border-radius:3px'") if waiting else ""
    return f"<b class='meshflow-status'{style}>{html.escape(status)}</b>"


def table_html(rows: list[dict[str, Any]], max_rows: int) -> str:
    """The newest ``max_rows`` event rows as an HTML table that scrolls inside a box of
    `TABLE_HEIGHT`, its header row sticky, kept scrolled to the newest row."""
    shown = rows[-max_rows:] if max_rows else []
    cols = "".join(f"<col style='width:{w}'>" for w in TABLE_COLUMNS.values())
    head = "".join(f"<th style='{_TH_STYLE}'>{c}</th>" for c in TABLE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(_td(c, _cell(row.get(c))) for c in TABLE_COLUMNS)
        + "</tr>" for row in shown)
    note = (f"<div>showing the newest {len(shown)} of {len(rows)} events</div>"
            if len(shown) < len(rows) else "")
    # column-reverse keeps the box scrolled to its end (the newest row) as rows arrive
    return (f"{note}<div class='meshflow-events-scroll' style='max-height:{TABLE_HEIGHT};"
            "overflow-y:auto;overflow-x:auto;display:flex;flex-direction:column-reverse'>"
            "<div><table class='meshflow-events' style='font-size:12px;width:100%;"
            "table-layout:fixed;border-collapse:separate;border-spacing:0'>"
            f"<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>")


_TH_STYLE = ("position:sticky;top:0;z-index:1;text-align:left;padding:2px 6px;"
             "background:var(--jp-layout-color1, #ffffff);"
             "border-bottom:1px solid var(--jp-border-color1, #bdbdbd)")
"""A header cell: it stays at the top of the scroll area, opaque over the rows below."""
_TD_STYLE = "padding:1px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_DETAIL_STYLE = "padding:1px 6px;overflow-wrap:anywhere"


def _td(column: str, text: str) -> str:
    """A cell: the detail wraps; the others stay on one line, cut with an ellipsis when
    too long, the whole value in the tooltip."""
    shown = html.escape(text)
    if column == "detail":
        return f"<td style='{_DETAIL_STYLE}'>{shown}</td>"
    return f"<td style='{_TD_STYLE}' title='{shown}'>{shown}</td>"


def table_text(rows: list[dict[str, Any]]) -> str:
    """The event rows as aligned plain text."""
    cells = [[str(c) for c in TEXT_COLUMNS]] + [
        [_cell(row.get(c)) for c in TEXT_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TEXT_COLUMNS) - 1)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in cells).rstrip()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") or "0"
    return str(value)
