"""The timeline of a run: one bar per node execution, from its node_start to its end event.

    timeline = Timeline.of(result)          # or result.events, ledger.events(run_id)
    timeline.speedup(["analyst_a", "analyst_b"])    # their work / the time they took
    plot_timeline({"fan-out": fan_run, "chain": chain_run})   # a figure, shared time axis

A bar ends at the node's first end event after its start: ``node_complete`` (done),
``node_failed`` (failed), ``gate_reject`` (rejected), ``node_blocked`` or
``budget_exceeded`` (blocked). A node still going when the run was cancelled ends with
the run (cancelled); one still going in a run that has not ended ends at its last
event (running). A loop's re-run is a bar of its own, in the same row. The time a gate
waited for a person (``gate_pause`` to its decision) is hatched inside its bar.

matplotlib is imported only when a figure is drawn. The figure shows itself in a
notebook (PNG) and has a plain-text form, the same one `Timeline.text` gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ConfigError, shown
from ..events import EventType, MeshEvent, plural
from ..model.graph import Edge
from .drawing import STATE_FILLS
from .run_events import RUN_FIX, events_of, labelled_runs, notebook_figure, what

END_OUTCOMES: dict[EventType, str] = {
    EventType.NODE_COMPLETE: "done",
    EventType.NODE_FAILED: "failed",
    EventType.GATE_REJECT: "rejected",
    EventType.NODE_BLOCKED: "blocked",
    EventType.BUDGET_EXCEEDED: "blocked",
}
"""The events that end a node's execution, and the outcome each gives its bar."""

OUTCOME_FILLS: dict[str, str] = {
    "done": STATE_FILLS["done"], "failed": STATE_FILLS["failed"],
    "rejected": STATE_FILLS["rejected"], "blocked": STATE_FILLS["blocked"],
    "cancelled": "#bdbdbd", "running": STATE_FILLS["running"]}
"""Bar colours: the graph drawing's state colours, so a bar and its node agree."""

WAIT_FILL = STATE_FILLS["paused"]
HIGHLIGHT_COLOR = "#000000"
HIGHLIGHT_WIDTH = 2.4
EDGE_COLOR = "#37474f"
TEXT_WIDTH = 40
"""Characters of the text form's time axis."""

CLOCK_SLACK_S = 0.001
"""A node starts at the moment its last input ended; timestamps may differ by this much."""

FIGURE_WIDTH_IN = 9.0
ROW_HEIGHT_IN = 0.42
AXES_WIDTH_IN = 7.6
"""About how wide the bars' axis is in a figure (the rest is node names and margins)."""
CHAR_WIDTH_IN = 0.062
"""About how wide one character of a 9-point bar label is."""
X_MARGIN = 1.02
"""The time axis runs a little past the end of the longest run."""


@dataclass(frozen=True)
class TimelineBar:
    """One execution of one node: when it started and ended (seconds since the run
    started), how it ended, and when a gate inside it waited for a decision."""

    node_id: str
    execution: int
    start_s: float
    end_s: float
    outcome: str
    role: str | None = None
    waits: tuple[tuple[float, float], ...] = ()

    @property
    def duration_s(self) -> float:
        """How long the execution took, in seconds."""
        return self.end_s - self.start_s

    def overlaps(self, other: TimelineBar) -> bool:
        """The two executions ran at the same time for a moment."""
        return self.start_s < other.end_s and other.start_s < self.end_s


class Timeline:
    """The node executions of one run, as bars on a time axis (see `Timeline.of`)."""

    def __init__(self, source: Any) -> None:
        self.events: list[MeshEvent] = _events_of(source)
        self.run_id = self.events[0].run_id
        start = next((e for e in self.events if e.type is EventType.RUN_START), None)
        end = next((e for e in self.events if e.type is EventType.RUN_COMPLETE), None)
        self.workflow: str = (start.payload.get("workflow") if start else None) or "workflow"
        self.status: str | None = end.payload.get("status") if end else None
        self._t0 = min(_time(e) for e in self.events)
        self.length_s = max(_time(e) for e in self.events) - self._t0
        """From the first event to the last: the run's wall-clock time so far."""
        self.bars = _bars(self.events, self._t0, ended=end is not None)

    @classmethod
    def of(cls, source: Any) -> Timeline:
        """The timeline of a run: a `RunResult`, a `RunHandle` or `LiveRun`, or one run's
        events (``result.events``, ``ledger.events(run_id)``, or their ``to_dict()``)."""
        return source if isinstance(source, Timeline) else cls(source)

    # --- what the bars say ------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """Node ids in the order they first started (one row each in the figure)."""
        return list(dict.fromkeys(bar.node_id for bar in self.bars))

    def bars_of(self, node_id: str) -> list[TimelineBar]:
        """Every execution of ``node_id``, in order (a loop re-runs a node)."""
        return [bar for bar in self.bars if bar.node_id == node_id]

    def work_s(self, nodes: Iterable[str] | None = None) -> float:
        """Seconds of work: the bars' lengths added up (what a chain of them would take)."""
        return sum(bar.duration_s for bar in self._chosen(nodes))

    def wall_s(self, nodes: Iterable[str] | None = None) -> float:
        """Seconds from the first of the bars' starts to the last of their ends."""
        bars = self._chosen(nodes)
        return max(b.end_s for b in bars) - min(b.start_s for b in bars) if bars else 0.0

    def speedup(self, nodes: Iterable[str] | None = None) -> float:
        """How many times faster the bars ran than one after another: work / wall time
        (1.0 for a chain; about 3 for three equal branches of a fan-out)."""
        wall = self.wall_s(nodes)
        return self.work_s(nodes) / wall if wall > 0 else 1.0

    def critical_path(self, workflow: Any) -> list[TimelineBar]:
        """The executions that held the run up, first to last: from the bar that ended
        last, back through the input of each that ended last before it started (a join
        waits for its slowest branch, so that branch is on the path)."""
        feeders: dict[str, set[str]] = {}
        for edge in _edges_of(workflow):
            feeders.setdefault(edge.target, set()).add(edge.source)
        if not self.bars:
            return []
        path = [max(self.bars, key=lambda b: b.end_s)]
        while True:
            held_by = [b for b in self.bars if b.node_id in feeders.get(path[-1].node_id, ())
                       and b.end_s <= path[-1].start_s + CLOCK_SLACK_S]
            if not held_by:
                return path[::-1]
            path.append(max(held_by, key=lambda b: b.end_s))

    def _chosen(self, nodes: Iterable[str] | None) -> list[TimelineBar]:
        """The bars of ``nodes`` (every bar when None); an unknown node id is a ConfigError."""
        if nodes is None:
            return self.bars
        wanted = [nodes] if isinstance(nodes, str) else list(nodes)
        unknown = [n for n in wanted if n not in self.nodes]
        if unknown:
            raise ConfigError(f"no bar of {', '.join(map(shown, unknown))} in this timeline",
                              argument="nodes", fix=f"use node ids that ran: {self.nodes}")
        return [bar for bar in self.bars if bar.node_id in wanted]

    # --- showing it -------------------------------------------------------------

    def title(self) -> str:
        """What the run was and how long it took: "'fan' completed: 5 node executions in 0.52 s"."""
        status = f" {self.status}" if self.status else " (still running)"
        return (f"{self.workflow!r}{status}: {plural(len(self.bars), 'node execution')} in "
                f"{self.length_s:.2f} s")

    def text(self) -> str:
        """The timeline as text, one line per bar: the form papermill output and nbval read."""
        width = max([len(_bar_name(b)) for b in self.bars] + [4])
        lines = [self.title()]
        for bar in self.bars:
            lines.append(f"  {_bar_name(bar):<{width}}  {bar.start_s:5.2f}-{bar.end_s:5.2f} s  "
                         f"{bar.outcome:<9} |{self._track(bar)}|")
        if not self.bars:
            lines.append("  (no node ran)")
        return "\n".join(lines)

    def _track(self, bar: TimelineBar) -> str:
        """The bar drawn in characters: a block per slice of the run it covers, lighter
        where a gate waited."""
        scale = TEXT_WIDTH / self.length_s if self.length_s > 0 else 0.0

        def cell(i: int) -> str:
            middle = (i + 0.5) / scale if scale else 0.0
            if not bar.start_s <= middle <= bar.end_s:
                return " "
            return "░" if any(a <= middle <= b for a, b in bar.waits) else "█"
        first = min(int(bar.start_s * scale), TEXT_WIDTH - 1)
        return "".join("█" if i == first and cell(i) == " " else cell(i)
                       for i in range(TEXT_WIDTH))

    def figure(self, *, title: str | None = None, until: float | None = None) -> Any:
        """The timeline as a matplotlib figure (see `plot_timeline`)."""
        return plot_timeline(self, title=title, until=until)

    def _repr_png_(self) -> bytes:
        return self.figure()._repr_png_()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def __repr__(self) -> str:
        return f"<Timeline {self.title()}>"


def plot_timeline(runs: Any, *, title: str | None = None, until: float | None = None,
                  highlight: Iterable[TimelineBar] = ()) -> Any:
    """Draw one run's timeline, or several on one time axis: ``{"label": run, ...}``.

    A run is anything `Timeline.of` takes. ``until`` stops the time axis at that many
    seconds (zoom in on the agents when a gate waited long for a person); ``highlight``
    outlines some bars, such as a `Timeline.critical_path`. Returns a matplotlib figure
    that shows itself in a notebook and prints as text.
    """
    panels = _panels(runs, title)
    limit = _until(until)
    marked = _highlighted(highlight)
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, _height(panels)), layout="constrained")
    figure.printed = "\n".join(timeline.text() for _, timeline in panels)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False,
                           height_ratios=[max(len(t.nodes), 1) + 1.2 for _, t in panels])
    right = limit or max(t.length_s for _, t in panels) or 1.0
    for ax, (label, timeline) in zip(axes[:, 0], panels, strict=True):
        _draw(ax, timeline, label, right, marked)
    axes[-1, 0].set_xlabel("seconds since the run started")
    axes[-1, 0].set_xlim(0, right * X_MARGIN)
    _legend(figure, [t for _, t in panels], marked)
    return figure


# --- reading events ----------------------------------------------------------------


def _events_of(source: Any) -> list[MeshEvent]:
    """One run's events, each with a readable timestamp (refused here, not while drawing)."""
    events = events_of(source, "a timeline")
    for position, event in enumerate(events):
        _time(event, position)
    return events


def _time(event: MeshEvent, position: int | None = None) -> float:
    """The event's timestamp in seconds (POSIX)."""
    try:
        return datetime.fromisoformat(str(event.ts)).timestamp()
    except ValueError:
        where = f"item {position}" if position is not None else f"event {event.seq}"
        raise ConfigError(f"{where} has no readable timestamp: {shown(event.ts)}",
                          argument="run", fix=RUN_FIX) from None


def _edges_of(workflow: Any) -> list[Edge]:
    """The edges of a workflow definition; a ConfigError for anything else."""
    edges = getattr(workflow, "edges", None)
    if not isinstance(edges, list) or not all(isinstance(e, Edge) for e in edges):
        raise ConfigError(f"critical_path reads a workflow's edges, not {what(workflow)}",
                          argument="workflow", fix="pass the WorkflowDefinition that ran")
    return edges


def _bars(events: list[MeshEvent], t0: float, *, ended: bool) -> list[TimelineBar]:
    """Pair each node_start with the end event of the same execution."""
    open_bars: dict[str, dict[str, Any]] = {}
    bars: list[TimelineBar] = []
    for event in events:
        node, at = event.node_id, _time(event) - t0
        if node is None:
            continue
        if event.type is EventType.NODE_START:
            open_bars[node] = {"start": at, "role": event.role, "waits": [],
                               "execution": event.payload.get("iteration")}
        elif node in open_bars:
            _advance(open_bars, bars, event, at)
    last = max(_time(e) for e in events) - t0
    for node, bar in open_bars.items():
        _close(bars, node, bar, last, "cancelled" if ended else "running")
    return sorted(bars, key=lambda b: (b.start_s, b.node_id))


def _advance(open_bars: dict[str, dict[str, Any]], bars: list[TimelineBar], event: MeshEvent,
             at: float) -> None:
    """Note a gate's wait, or end the node's open bar."""
    bar = open_bars[event.node_id]
    if event.type is EventType.GATE_PAUSE:
        bar["paused"] = at
        return
    if event.type in (EventType.GATE_RESUME, EventType.GATE_REJECT) and "paused" in bar:
        bar["waits"].append((bar.pop("paused"), at))
    outcome = END_OUTCOMES.get(event.type)
    if outcome is not None:
        _close(bars, event.node_id, open_bars.pop(event.node_id), at, outcome)


def _close(bars: list[TimelineBar], node: str, bar: dict[str, Any], end: float,
           outcome: str) -> None:
    """Add the finished bar; a wait still open ends with it."""
    waits = list(bar["waits"]) + ([(bar["paused"], end)] if "paused" in bar else [])
    execution = bar["execution"] if isinstance(bar["execution"], int) else \
        1 + sum(b.node_id == node for b in bars)
    bars.append(TimelineBar(node, execution, bar["start"], max(end, bar["start"]), outcome,
                            bar["role"], tuple(waits)))


def _bar_name(bar: TimelineBar) -> str:
    """``writer`` for a first execution, ``writer #2`` for a loop's re-run."""
    return bar.node_id if bar.execution == 1 else f"{bar.node_id} #{bar.execution}"


# --- drawing -------------------------------------------------------------------------


def _panels(runs: Any, title: str | None) -> list[tuple[str, Timeline]]:
    """(label, timeline) per panel: a mapping gives one per entry, anything else one."""
    return [(label or title or "", Timeline.of(run)) for label, run
            in labelled_runs(runs, "a timeline", "{'fan-out': fan_run, 'chain': chain_run}")]


def _highlighted(bars: Any) -> frozenset[TimelineBar]:
    """The bars to outline; a ConfigError for anything that is not bars."""
    if isinstance(bars, (str, bytes, Mapping)) or not isinstance(bars, Iterable):
        raise ConfigError(f"highlight should be timeline bars, not {what(bars)}",
                          argument="highlight", fix="pass e.g. timeline.critical_path(workflow)")
    chosen = list(bars)
    odd = next((b for b in chosen if not isinstance(b, TimelineBar)), None)
    if odd is not None:
        raise ConfigError(f"highlight should hold timeline bars, not {what(odd)}",
                          argument="highlight", fix="pass e.g. timeline.critical_path(workflow)")
    return frozenset(chosen)


def _until(until: Any) -> float | None:
    """The end of the time axis in seconds, or None for the whole run."""
    if until is None:
        return None
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not until > 0 \
            or until == float("inf"):
        raise ConfigError(f"until should be a number of seconds above 0, not {what(until)}",
                          argument="until", fix="pass e.g. until=1.0, or leave it out")
    return float(until)


def _height(panels: list[tuple[str, Timeline]]) -> float:
    """Figure height in inches: a row per node in each panel, room for titles and axis."""
    rows = sum(max(len(t.nodes), 1) + 1.2 for _, t in panels)
    return 1.0 + ROW_HEIGHT_IN * rows


def _draw(ax: Any, timeline: Timeline, label: str, right: float,
          marked: frozenset[TimelineBar]) -> None:
    """One panel: a row per node, a bar per execution, its length written beside it."""
    rows = {node: n for n, node in enumerate(timeline.nodes)}
    for bar in timeline.bars:
        y = rows[bar.node_id]
        ax.barh(y, bar.duration_s, left=bar.start_s, height=0.6,
                color=OUTCOME_FILLS.get(bar.outcome, "#dddddd"),
                edgecolor=HIGHLIGHT_COLOR if bar in marked else EDGE_COLOR,
                linewidth=HIGHLIGHT_WIDTH if bar in marked else 0.8)
        for begin, end in bar.waits:  # a thinner bar inside: the outcome shows around it
            ax.barh(y, end - begin, left=begin, height=0.3, color=WAIT_FILL, hatch="//",
                    edgecolor=EDGE_COLOR, linewidth=0.6)
        _label_bar(ax, bar, y, right)
    if timeline.bars and timeline.length_s <= right:
        ax.axvline(timeline.length_s, color=EDGE_COLOR, linestyle=":", linewidth=1)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylim(len(rows) - 0.4 if rows else 0.6, -0.6)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0, labelsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(f"{label}: {timeline.title()}" if label else timeline.title(), loc="left",
                 fontsize=11)
    if not timeline.bars:
        ax.text(0.5, 0.5, "no node ran", transform=ax.transAxes, ha="center", va="center")


def _label_bar(ax: Any, bar: TimelineBar, y: int, right: float) -> None:
    """The bar's length in seconds (its execution number on a re-run, its outcome when
    not done): inside a wide bar, else beside it, on whichever side has room."""
    if bar.start_s > right:
        return
    text = (f"#{bar.execution}  " if bar.execution > 1 else "") + f"{bar.duration_s:.2f} s"
    if bar.outcome not in ("done", "running"):
        text += f"  {bar.outcome}"
    width = len(text) * CHAR_WIDTH_IN / AXES_WIDTH_IN * right  # in seconds of the axis
    gap = right * 0.008
    if bar.duration_s > width * 1.15 and not bar.waits:
        x, align = bar.start_s + bar.duration_s / 2, "center"
    elif min(bar.end_s, right) + gap + width <= right * X_MARGIN:
        x, align = min(bar.end_s, right) + gap, "left"
    else:
        x, align = bar.start_s - gap, "right"
    dark = align == "center" and bar.outcome in ("rejected", "blocked")
    ax.text(x, y, text, va="center", ha=align, fontsize=9, color="white" if dark else "black")


def _legend(figure: Any, timelines: list[Timeline], marked: frozenset[TimelineBar]) -> None:
    """What the colours mean, for the outcomes these timelines have."""
    from matplotlib.patches import Patch

    outcomes = list(dict.fromkeys(b.outcome for t in timelines for b in t.bars))
    handles = [Patch(facecolor=OUTCOME_FILLS.get(o, "#dddddd"), edgecolor=EDGE_COLOR, label=o)
               for o in outcomes]
    if any(b.waits for t in timelines for b in t.bars):
        handles.append(Patch(facecolor=WAIT_FILL, hatch="//", edgecolor=EDGE_COLOR,
                             label="waiting for a decision"))
    if marked & {b for t in timelines for b in t.bars}:
        handles.append(Patch(facecolor="white", edgecolor=HIGHLIGHT_COLOR,
                             linewidth=HIGHLIGHT_WIDTH, label="highlighted"))
    if len(handles) > 1:
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                      frameon=False, fontsize=9)

