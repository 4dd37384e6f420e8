"""A run's OpenTelemetry trace as a table and as a timeline of spans per node.

    spans = trace_of(receiver.spans, result.run_id)   # the spans of one run's trace
    trace_table(spans)                                # pandas: one row per span, gen_ai.* columns
    plot_trace(spans)                                 # a figure: one row per node, a bar per span

A span is anything with the fields of an OTLP span as `meshflow_nb.telemetry` decodes
it: ``name``, ``trace_id``, ``span_id``, ``parent_span_id``, ``start_ns``, ``end_ns``
and ``attributes``. A run's trace has one root, ``invoke_workflow {name}``, and an
``invoke_agent {node_id}`` span per node execution; its row in the figure is the
node's name (``gen_ai.agent.name``). matplotlib and pandas are imported only when used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..events import plural
from .run_events import notebook_figure, what

RUN_ATTRIBUTE = "meshflow.run_id"
AGENT_ATTRIBUTE = "gen_ai.agent.name"
AGENT_PREFIX = "invoke_agent "
GEN_AI = "gen_ai."
SPANS_FIX = ("pass the spans a receiver got (receiver.spans), or trace_of(receiver.spans, "
             "run_id) for one run's")
FIGURE_WIDTH_IN = 9.0
ROW_HEIGHT_IN = 0.4
ROOT_FILL, AGENT_FILL, OTHER_FILL = "#90a4ae", "#66bb6a", "#ffca28"
EDGE_COLOR = "#37474f"


@dataclass(frozen=True)
class SpanBar:
    """One span on the trace's time axis: seconds since the trace started."""

    name: str
    row: str
    start_s: float
    end_s: float
    depth: int
    events: tuple[tuple[str, float], ...] = ()
    """The span's events (a gate's pause and decision, a loop's turn): name, seconds."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def is_agent_span(span: Any) -> bool:
    """An ``invoke_agent {node_id}`` span: one node execution."""
    return str(span.name).startswith(AGENT_PREFIX)


def trace_of(spans: Iterable[Any], run_id: str | None = None) -> list[Any]:
    """The spans of one trace, oldest first: the trace of run ``run_id`` (a span of it
    carries ``meshflow.run_id``), or the only trace in ``spans``."""
    every = _spans(spans)
    if run_id is not None:
        traces = {s.trace_id for s in every if s.attributes.get(RUN_ATTRIBUTE) == run_id}
        if not traces:
            raise ConfigError(f"no span of run {run_id} is among these {len(every)} spans",
                              argument="run_id", fix="run it with OTEL_EXPORTER_OTLP_ENDPOINT "
                              "set to the receiver's endpoint, then wait for its spans "
                              "(receiver.wait_for(...))")
    else:
        traces = {s.trace_id for s in every}
        if len(traces) > 1:
            raise ConfigError(f"these spans come from {len(traces)} traces; one is drawn",
                              argument="run_id", fix="pass the run: trace_of(spans, run_id)")
    return sorted((s for s in every if s.trace_id in traces), key=lambda s: s.start_ns)


def span_bars(spans: Iterable[Any]) -> list[SpanBar]:
    """Each span of one trace as a bar, in the order they started."""
    chosen = trace_of(spans)
    t0 = min(s.start_ns for s in chosen)
    parents = {s.span_id: s.parent_span_id for s in chosen}
    return [SpanBar(str(s.name), _row(s), (s.start_ns - t0) / 1e9, (s.end_ns - t0) / 1e9,
                    _depth(s.span_id, parents),
                    tuple((str(e.name), (e.time_ns - t0) / 1e9) for e in getattr(s, "events", ())))
            for s in chosen]


def trace_table(spans: Iterable[Any]) -> Any:
    """One row per span of one trace: name, start and duration in seconds, and every
    ``gen_ai.*`` attribute as a column (a pandas DataFrame)."""
    import pandas as pd

    chosen = trace_of(spans)
    bars = span_bars(chosen)
    rows = [{"span": bar.name, "start_s": round(bar.start_s, 4),
             "duration_s": round(bar.duration_s, 4),
             **{k: v for k, v in span.attributes.items() if k.startswith(GEN_AI)}}
            for span, bar in zip(chosen, bars, strict=True)]
    return pd.DataFrame(rows)


def trace_text(spans: Iterable[Any]) -> str:
    """The trace as text, one line per span, indented under its parent."""
    bars = span_bars(spans)
    width = max(len(b.name) + 2 * b.depth for b in bars)
    lines = [f"trace of {plural(len(bars), 'span')}, {max(b.end_s for b in bars):.2f} s"]
    lines += [f"  {'  ' * b.depth + b.name:<{width}}  {b.start_s:6.3f}-{b.end_s:6.3f} s"
              for b in bars]
    return "\n".join(lines)


def plot_trace(spans: Iterable[Any], *, title: str | None = None) -> Any:
    """The trace as a timeline: one row per node (the root span on top), a bar per span
    from its start to its end. Returns a figure that shows itself in a notebook and
    prints as `trace_text`."""
    bars = span_bars(spans)
    rows = list(dict.fromkeys(b.row for b in bars))
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 1.3 + ROW_HEIGHT_IN * len(rows)),
                               layout="constrained")
    figure.printed = trace_text(spans)
    ax = figure.subplots()
    for bar in bars:
        y = rows.index(bar.row)
        ax.barh(y, max(bar.duration_s, 1e-4), left=bar.start_s,
                height=0.6 if bar.depth <= 1 else 0.3, color=_fill(bar), edgecolor=EDGE_COLOR,
                linewidth=0.8)
        for _, at in bar.events:
            ax.plot([at, at], [y - 0.3, y + 0.3], color=EDGE_COLOR, linewidth=1.6)
    _legend(figure, bars)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlabel("seconds since the trace started")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title or f"{bars[0].name}: {plural(len(bars), 'span')}", loc="left",
                 fontsize=11)
    return figure


def _fill(bar: SpanBar) -> str:
    """The root grey, agents green, anything else (a human gate, a model call) amber."""
    if bar.depth == 0:
        return ROOT_FILL
    return AGENT_FILL if bar.name.startswith(AGENT_PREFIX) else OTHER_FILL


def _legend(figure: Any, bars: list[SpanBar]) -> None:
    """What the colours and the ticks mean, for what this trace has."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = {ROOT_FILL: "the run", AGENT_FILL: "an agent", OTHER_FILL: "a gate or other span"}
    present = list(dict.fromkeys(_fill(bar) for bar in bars))
    handles = [Patch(facecolor=fill, edgecolor=EDGE_COLOR, label=kinds[fill]) for fill in present]
    if any(bar.events for bar in bars):
        handles.append(Line2D([], [], color=EDGE_COLOR, linewidth=1.6,
                              label="a span event (gate, loop)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                  frameon=False, fontsize=9)


def _spans(spans: Any) -> list[Any]:
    """The spans as a list; a ConfigError for anything that is not spans."""
    if isinstance(spans, (str, bytes, dict)) or not isinstance(spans, Iterable):
        raise ConfigError(f"a trace is drawn from spans, not {what(spans)}", argument="spans",
                          fix=SPANS_FIX)
    every = list(spans)
    fields = ("name", "trace_id", "span_id", "parent_span_id", "start_ns", "end_ns",
              "attributes")
    odd = next((s for s in every if not all(hasattr(s, f) for f in fields)), None)
    if odd is not None:
        raise ConfigError(f"{what(odd)} is not a span", argument="spans", fix=SPANS_FIX)
    if not every:
        raise ConfigError("there are no spans to draw", argument="spans",
                          fix="wait for the run's spans first: receiver.wait_for(...)")
    return every


def _row(span: Any) -> str:
    """The row a span is drawn in: its node's name, else its own name."""
    agent = span.attributes.get(AGENT_ATTRIBUTE)
    return str(agent) if agent and is_agent_span(span) else str(span.name)


def _depth(span_id: Any, parents: dict[Any, Any]) -> int:
    """How many ancestors of the span are in the trace (0 for the root)."""
    depth, seen = 0, {span_id}
    while (parent := parents.get(span_id)) in parents and parent not in seen:
        depth, span_id = depth + 1, parent
        seen.add(parent)
    return depth
