"""What a run cost, node by node: a table of its node executions and two charts.

    cost_table(result)                  # one row per node execution, in the order they ended
    cost_table(result, by="node")       # one row per node: a loop's re-runs added up
    plot_costs(result)                  # a bar per node; each execution is a segment of it
    plot_costs({"budget off": off, "budget $0.10": on})    # runs side by side
    plot_spend(result)                  # the running total, the budget, where the run stopped
    carbon_table(result), plot_carbon(result), plot_emissions(result)   # the same, in grams

A run is a `RunResult`, a `RunHandle` or `LiveRun`, or one run's events
(``result.events``, ``ledger.events(run_id)``, or their ``to_dict()``): the ledger keeps
the same costs the run reported, so a chart drawn from it is the audited one.

Each row of `cost_table` is one ``node_complete`` that was priced (it has a model,
tokens or a cost: a human gate has none), plus one row for each execution the budget
layer refused before it started (``budget_exceeded`` with ``when`` "before"). Its
columns say what the budget layer (docs/policy.md) saw: ``estimate_usd`` is what it
added to the spend before the execution started (this node's cost the last time it ran
in this run, 0 the first time) and ``spent_usd`` is the run's total once the execution
ended, which the layer compares with the cap. ``stop`` is "after" for an execution after
which the layer stopped the run, "before" for one it refused.

The carbon twins read ``carbon_g`` (the environmental layer's estimate, grams CO2e;
docs/environmental.md) and the ``carbon`` budget instead: their columns are ``carbon_g``,
``estimate_g`` and ``spent_g``. A run with the layer off has no estimate: its grams are 0.

matplotlib is imported only when a chart is drawn. A chart shows itself in a notebook
(PNG) and prints as text: the same numbers, one line per node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import ConfigError, shown
from ..events import EventType, MeshEvent, plural
from .run_events import events_of, labelled_runs, notebook_figure


@dataclass(frozen=True)
class Measure:
    """What a table or chart adds up: the run's dollars, or its estimated grams CO2e."""

    budget: str
    """The ``budget`` of its budget_exceeded events, and its name in titles: cost, carbon."""
    column: str
    """The node_complete field it reads, and its column: cost_usd, carbon_g."""
    unit: str
    """The suffix of the estimate and spent columns: usd, g."""
    cap: str
    """The policy field that caps it: budget_usd, carbon_budget_g."""
    axis: str
    """What the amount axis counts: USD, g CO2e (estimated)."""
    so_far: str
    """The running total's name: spent so far, emitted so far."""
    nothing: str
    """What a chart says when no execution counted anything."""

    @property
    def budget_name(self) -> str:
        """How a chart names its budget: budget, carbon budget."""
        return "budget" if self.budget == "cost" else f"{self.budget} budget"

    @property
    def estimate(self) -> str:
        """The estimate column: estimate_usd, estimate_g."""
        return f"estimate_{self.unit}"

    @property
    def spent(self) -> str:
        """The running-total column: spent_usd, spent_g."""
        return f"spent_{self.unit}"

    def amount(self, value: float) -> str:
        """An amount as the charts print it: $0.0123, 0.123 g."""
        return f"${value:.4f}" if self.unit == "usd" else f"{value:.3f} g"

    def capped(self, value: float) -> str:
        """A budget as people write it: $0.10, $0.065, 1.5 g."""
        if self.unit == "g":
            return f"{value:g} g"
        return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"

    def tick(self, value: float) -> str:
        """An axis tick: $0.02, 0.2 g."""
        if self.unit == "g":
            return f"{value:.3g} g" if value else "0"
        return f"${value:.3g}" if value else "$0"

    def execution_columns(self) -> list[str]:
        """The columns of a row per execution."""
        return ["node", "iteration", "model", "tokens_in", "tokens_out", self.column,
                self.estimate, self.spent, "stop"]

    def node_columns(self) -> list[str]:
        """The columns of a row per node."""
        return ["node", "model", "executions", "tokens_in", "tokens_out", self.column, "share"]


COST = Measure("cost", "cost_usd", "usd", "budget_usd", "USD", "spent so far",
               "no node execution cost anything")
CARBON = Measure("carbon", "carbon_g", "g", "carbon_budget_g", "g CO2e (estimated)",
                 "emitted so far", "no node execution has a carbon estimate "
                 "(is enable_environmental off?)")

EXECUTION_COLUMNS = COST.execution_columns()
NODE_COLUMNS = COST.node_columns()
CARBON_EXECUTION_COLUMNS = CARBON.execution_columns()
CARBON_NODE_COLUMNS = CARBON.node_columns()

RUN_COLORS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
"""One colour per run in a chart (the first run is blue)."""
STOP_COLOR = "#b2182b"
EDGE_COLOR = "#37474f"
FIGURE_WIDTH_IN = 9.5
CHAR_WIDTH_FRACTION = 0.0075
"""About how much of the axis' width one character of a 9-point label takes."""
X_ROOM = 1.45
"""The cost axis runs this far past the dearest bar: room for the labels beside it."""


# --- the table ------------------------------------------------------------------------


def cost_table(runs: Any, *, by: str = "execution") -> pd.DataFrame:
    """What a run cost: one row per node execution (``by="execution"``, the order they
    ended) or per node (``by="node"``, a loop's re-runs added up, with each node's share
    of the run's cost). A dict ``{"label": run, ...}`` gives every run's rows, labelled
    in a first column ``run``."""
    return _table(runs, by, COST)


def carbon_table(runs: Any, *, by: str = "execution") -> pd.DataFrame:
    """`cost_table` in grams CO2e: each execution's estimate (``carbon_g``), the carbon
    budget's estimate before it (``estimate_g``) and the run's grams after it (``spent_g``),
    or one row per node with its share of the run's grams (``by="node"``)."""
    return _table(runs, by, CARBON)


def _table(runs: Any, by: str, measure: Measure) -> pd.DataFrame:
    """The table of `cost_table` or `carbon_table`, for ``measure``."""
    if by not in ("execution", "node"):
        name = "carbon_table" if measure is CARBON else "cost_table"
        raise ConfigError(f"by should be 'execution' or 'node', not {shown(by)}", argument="by",
                          fix=f"{name}(run) for a row per execution, by='node' for one per "
                              "node")
    tables = {label: _by_node(rows, measure) if by == "node" else rows
              for label, rows in _labelled_rows(runs, measure)}
    if len(tables) == 1 and not isinstance(runs, Mapping):
        return next(iter(tables.values()))
    return pd.concat([table.assign(run=label) for label, table in tables.items()],
                     ignore_index=True)[["run", *next(iter(tables.values())).columns]]


def _labelled_rows(runs: Any, measure: Measure) -> list[tuple[str, pd.DataFrame]]:
    """(label, execution rows) per run: a dict gives one per entry, anything else one."""
    shows = f"a {measure.budget} table"
    return [(label, _execution_rows(events_of(run, shows), measure)) for label, run
            in labelled_runs(runs, shows, "{'budget off': off, 'capped': on}")]


def _execution_rows(events: list[MeshEvent], measure: Measure = COST) -> pd.DataFrame:
    """A row per priced node execution and per refused one, in the order they ended."""
    rows: list[dict[str, Any]] = []
    last: dict[str, float] = {}
    spent = 0.0
    for event in events:
        if event.type is EventType.NODE_COMPLETE and _priced(event):
            amount = float(getattr(event, measure.column) or 0.0)
            spent += amount
            rows.append(_row(event, _iteration(event, rows), {
                measure.column: amount, measure.estimate: last.get(event.node_id, 0.0),
                measure.spent: spent}))
            last[event.node_id] = amount
        elif event.type is EventType.BUDGET_EXCEEDED and \
                event.payload.get("budget") == measure.budget:
            _note_stop(rows, event, spent, measure)
    return pd.DataFrame(rows, columns=measure.execution_columns(),
                        index=pd.RangeIndex(1, len(rows) + 1))


def _priced(event: MeshEvent) -> bool:
    """A node_complete with something to price: a model, tokens or a cost (not a gate)."""
    return bool(event.payload.get("model") or event.tokens or event.cost_usd)


def _iteration(event: MeshEvent, rows: list[dict[str, Any]]) -> int:
    """Which execution of its node the event ends: its payload says, else count them."""
    given = event.payload.get("iteration")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    return 1 + sum(row["node"] == event.node_id for row in rows)


def _row(event: MeshEvent, iteration: int, amounts: dict[str, float]) -> dict[str, Any]:
    """One execution's row: ``amounts`` are its measure's amount, estimate and spent."""
    return {"node": event.node_id, "iteration": iteration, "model": event.payload.get("model"),
            "tokens_in": int(event.tokens_in or 0), "tokens_out": int(event.tokens_out or 0),
            **amounts, "stop": ""}


def _note_stop(rows: list[dict[str, Any]], event: MeshEvent, spent: float,
               measure: Measure) -> None:
    """Mark the execution after which the budget stopped the run, or add the refused one."""
    if event.payload.get("when") == "after":
        done = [row for row in rows if row["node"] == event.node_id]
        if done:
            done[-1]["stop"] = "after"
        return
    estimate = event.payload.get("estimate")
    iteration = 1 + sum(row["node"] == event.node_id for row in rows)
    rows.append({"node": event.node_id, "iteration": iteration, "model": None, "tokens_in": 0,
                 "tokens_out": 0, measure.column: 0.0,
                 measure.estimate: float(estimate) if isinstance(estimate, (int, float))
                 else 0.0, measure.spent: spent, "stop": "before"})


def _by_node(rows: pd.DataFrame, measure: Measure = COST) -> pd.DataFrame:
    """One row per node, in the order the nodes first ended: executions added up."""
    done = rows[rows.stop != "before"]
    total = done[measure.column].sum()
    grouped = done.groupby("node", sort=False).agg(
        model=("model", lambda models: ", ".join(dict.fromkeys(m for m in models if m))),
        executions=("node", "size"), tokens_in=("tokens_in", "sum"),
        tokens_out=("tokens_out", "sum"), **{measure.column: (measure.column, "sum")}
    ).reset_index()
    grouped["share"] = grouped[measure.column] / total if total else 0.0
    return grouped[measure.node_columns()]


# --- reading runs ---------------------------------------------------------------------


def _budget_of(events: list[MeshEvent], measure: Measure = COST) -> float | None:
    """The measure's budget the run's policy set (run_start records the policy), or None."""
    start = next((e for e in events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    budget = policy.get(measure.cap) if isinstance(policy, Mapping) else None
    return float(budget) if isinstance(budget, (int, float)) else None


class _Run:
    """One run as a chart draws it: its label, rows, budget and headline."""

    def __init__(self, label: str, events: list[MeshEvent], measure: Measure = COST) -> None:
        self.label = label
        self.measure = measure
        self.rows = _execution_rows(events, measure)
        self.nodes = _by_node(self.rows, measure)
        self.budget = _budget_of(events, measure)
        end = next((e for e in events if e.type is EventType.RUN_COMPLETE), None)
        start = next((e for e in events if e.type is EventType.RUN_START), None)
        self.status = end.payload.get("status") if end is not None else "still running"
        self.workflow = (start.payload.get("workflow") if start is not None else None) \
            or "workflow"

    @property
    def done(self) -> pd.DataFrame:
        """The executions that ran (not the refused ones)."""
        return self.rows[self.rows.stop != "before"]

    def headline(self) -> str:
        """"budget off: $0.2616 over 21 node executions, completed"."""
        m = self.measure
        name = self.label or repr(self.workflow)
        kind = m.budget_name
        cap = f", {kind} {m.capped(self.budget)}" if self.budget is not None else f", no {kind}"
        return (f"{name}: {m.amount(self.done[m.column].sum())} over "
                f"{plural(len(self.done), 'agent execution')}{cap}, {self.status}")

    def text(self) -> str:
        """The run's amounts per node as text: what a chart prints outside a notebook."""
        m = self.measure
        lines = [self.headline()]
        width = max([len(str(node)) for node in self.nodes.node] + [4])
        for row in self.nodes.itertuples():
            lines.append(f"  {row.node:<{width}}  {m.amount(getattr(row, m.column))}  "
                         f"{row.share:4.0%}  {plural(row.executions, 'execution')}")
        for row in self.rows[self.rows.stop == "before"].itertuples():
            lines.append(f"  {row.node:<{width}}  refused before execution {row.iteration} "
                         f"(estimate {m.amount(getattr(row, m.estimate))})")
        return "\n".join(lines)


def _runs(runs: Any, measure: Measure = COST) -> list[_Run]:
    """The runs a chart draws: a dict gives one per entry, anything else one."""
    shows = f"a {measure.budget} table"
    if isinstance(runs, Mapping) and not {"run_id", "seq", "type"} <= set(runs):
        _labelled_rows(runs, measure)  # the same refusals as cost_table
        return [_Run(label, events_of(run, shows), measure) for label, run in runs.items()]
    return [_Run("", events_of(runs, shows), measure)]


# --- the charts -----------------------------------------------------------------------


def plot_costs(runs: Any, *, title: str | None = None) -> Any:
    """A bar per node: what it cost over the whole run, each of its executions a segment
    (a loop's re-runs stacked after the first, labelled #2, #3, ...), the total beside
    it. An execution the budget refused is an empty hatched segment as long as the
    estimate that refused it. Pass ``{"label": run, ...}`` to compare runs, a bar each."""
    return _plot_bars(_runs(runs, COST), title, "Cost per node")


def plot_carbon(runs: Any, *, title: str | None = None) -> Any:
    """`plot_costs` in grams CO2e: a bar per node, its estimated grams over the run, each
    execution a segment; one the carbon budget refused is hatched. ``{"label": run, ...}``
    compares runs (two models doing the same work, a budget on and off)."""
    return _plot_bars(_runs(runs, CARBON), title, "Carbon per node")


def _plot_bars(drawn: list[_Run], title: str | None, what: str) -> Any:
    """The bar chart of `plot_costs` and `plot_carbon`: ``title``, or ``what`` and the
    runs' headlines."""
    m = drawn[0].measure
    nodes = list(dict.fromkeys(n for run in drawn for n in run.rows.node))
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 1.6 + 0.42 * len(nodes) * (
        1 + 0.45 * (len(drawn) - 1))), layout="constrained")
    figure.printed = "\n".join(run.text() for run in drawn)
    ax = figure.subplots()
    right = max([_bar_length(run, node) for run in drawn for node in nodes] + [1e-9])
    for n, run in enumerate(drawn):
        _draw_bars(ax, run, nodes, n, len(drawn), right)
    ax.set_yticks(range(len(nodes)), nodes)
    if right <= 1e-9:  # no node, or none that counted anything (the layer off, a free model)
        ax.text(0.5, 0.5, m.nothing, transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(len(nodes) - 0.5 if nodes else 0.5, -0.5)
    ax.set_xlim(0, right * X_ROOM)
    ax.set_xlabel(f"{m.axis}: each bar is the node's total over the run; a loop's re-runs "
                  "are its segments #2, #3, ...", fontsize=9)
    ax.xaxis.set_major_formatter(_formatter(m))
    _tidy(ax)
    ax.set_title(_plain(title or _title(drawn, what)), loc="left", fontsize=11)
    if len(drawn) > 1:
        _run_legend(ax, drawn)
    return figure


def plot_spend(runs: Any, *, title: str | None = None) -> Any:
    """The run's total after each node execution (the number the budget layer compares
    with its cap), the budget as a dashed line, and where the layer stopped the run: a
    dot after the execution that passed the budget, a cross where it refused one (at
    what the estimate said the spend would reach). ``{"label": run, ...}`` compares runs."""
    return _plot_running(_runs(runs, COST), title, "What the run had spent")


def plot_emissions(runs: Any, *, title: str | None = None) -> Any:
    """`plot_spend` in grams CO2e: the run's estimated grams after each node execution,
    the carbon budget as a dashed line, and where the carbon budget stopped the run."""
    return _plot_running(_runs(runs, CARBON), title, "What the run had emitted")


def _plot_running(drawn: list[_Run], title: str | None, what: str) -> Any:
    """The running-total chart of `plot_spend` and `plot_emissions`: ``title``, or
    ``what`` and the runs' headlines."""
    m = drawn[0].measure
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 4.2), layout="constrained")
    figure.printed = "\n".join(run.text() for run in drawn)
    ax = figure.subplots()
    top = 0.0
    for n, run in enumerate(drawn):
        top = max(top, _draw_spend(ax, run, RUN_COLORS[n % len(RUN_COLORS)], len(drawn) > 1))
    longest = max(drawn, key=lambda run: len(run.rows))
    labels = [f"{r.node} #{r.iteration}" if r.iteration > 1 else r.node
              for r in longest.rows.itertuples()]
    same_order = all(labels[:len(run.rows)] == [
        f"{r.node} #{r.iteration}" if r.iteration > 1 else r.node for r in run.rows.itertuples()]
        for run in drawn)
    ax.set_xticks(range(1, len(labels) + 1), labels if same_order else
                  [str(n) for n in range(1, len(labels) + 1)], rotation=35, ha="right",
                  fontsize=9)
    ax.set_xlim(0.5, max(len(labels), 1) + 0.9)
    if not labels:
        ax.text(0.5, 0.5, m.nothing, transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(0, top * 1.18 or 1e-6)
    ax.yaxis.set_major_formatter(_formatter(m))
    ax.set_ylabel(f"{m.axis.split(' (')[0]} {m.so_far}")
    ax.set_xlabel("node executions, in the order they ended" if same_order
                  else "node execution", fontsize=9)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(_plain(title or _title(drawn, what)), loc="left", fontsize=11)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return figure


def _title(drawn: list[_Run], what: str) -> str:
    """The chart's title: the run's headline, or one line per run when comparing."""
    if len(drawn) == 1:
        return f"{what}: {drawn[0].headline()}"
    return what + "\n" + "\n".join(run.headline() for run in drawn)


def _bar_length(run: _Run, node: str) -> float:
    """How far the node's bar reaches: what it cost, plus any refused estimate."""
    m, rows = run.measure, run.rows[run.rows.node == node]
    return float(rows[m.column].sum() + rows[rows.stop == "before"][m.estimate].sum())


def _draw_bars(ax: Any, run: _Run, nodes: list[str], n: int, count: int, right: float) -> None:
    """The run's bar on each node's row (offset when several runs share the rows)."""
    height = 0.7 / count
    color = RUN_COLORS[n % len(RUN_COLORS)]
    for y, node in enumerate(nodes):
        middle = y - 0.35 + height * (n + 0.5)
        left = 0.0
        for row in run.rows[run.rows.node == node].itertuples():
            refused = row.stop == "before"
            width = getattr(row, run.measure.estimate if refused else run.measure.column)
            ax.barh(middle, width, left=left, height=height * 0.9,
                    color="none" if refused else color, hatch="///" if refused else None,
                    edgecolor=STOP_COLOR if refused else "white", linewidth=1.2)
            if row.iteration > 1 and not refused and width > _text_width(3, right):
                ax.text(left + width / 2, middle, f"#{row.iteration}", ha="center",
                        va="center", fontsize=8, color="white")
            left += width
        _label_total(ax, run, node, middle, left, right)


def _label_total(ax: Any, run: _Run, node: str, y: float, end: float, right: float) -> None:
    """The node's total beside its bar, with its executions and any refusal."""
    m, rows = run.measure, run.rows[run.rows.node == node]
    done, refused = rows[rows.stop != "before"], rows[rows.stop == "before"]
    if rows.empty:
        return
    parts = [m.amount(done[m.column].sum())] if not done.empty else []
    if len(done) > 1:
        parts.append(f"({len(done)} executions)")
    if "after" in set(done.stop):
        parts.append(f"then the {m.budget_name} stopped the run")
    if not refused.empty:
        parts.append(f"refused #{refused.iteration.iloc[-1]}: estimate "
                     f"{m.amount(refused[m.estimate].iloc[-1])}")
    ax.text(end + right * 0.01, y, _plain("  ".join(parts)), va="center", ha="left", fontsize=9,
            color=STOP_COLOR if not refused.empty or "after" in set(done.stop) else "black")


def _draw_spend(ax: Any, run: _Run, color: str, several: bool) -> float:
    """One run's running total, its budget and its stops; returns the highest value drawn."""
    m, done = run.measure, run.rows
    xs = list(range(1, len(done) + 1))
    spent = list(done[m.spent])
    label = run.label or m.so_far
    ax.step([0.5, *xs], [0.0, *spent], where="post", color=color, linewidth=2,
            label=_plain(label) if several else m.so_far)
    ax.plot([x for x, r in zip(xs, done.itertuples(), strict=True) if r.stop != "before"],
            [s for s, r in zip(spent, done.itertuples(), strict=True) if r.stop != "before"],
            "o", color=color, markersize=4)
    top = max(spent, default=0.0)
    if run.budget is not None:
        budget = f"{m.budget_name} {m.capped(run.budget)}"
        ax.axhline(run.budget, color=color if several else STOP_COLOR, linestyle="--",
                   linewidth=1.2, label=_plain(budget) if budget not in label else "_nolegend_")
        top = max(top, run.budget)
    for x, row in zip(xs, done.itertuples(), strict=True):
        top = max(top, _mark_stop(ax, x, row, m))
    return top


def _mark_stop(ax: Any, x: int, row: Any, m: Measure) -> float:
    """A stop of the budget layer at execution ``x``; returns how high its mark goes."""
    spent = float(getattr(row, m.spent))
    if row.stop == "after":
        ax.plot(x, spent, "o", color=STOP_COLOR, markersize=9, fillstyle="none",
                markeredgewidth=2)
        ax.annotate("stopped after this one", (x, spent), xytext=(-10, 6),
                    textcoords="offset points", ha="right", fontsize=8, color=STOP_COLOR)
        return spent
    if row.stop == "before":
        reach = spent + getattr(row, m.estimate)
        ax.plot([x, x], [spent, reach], ":", color=STOP_COLOR, linewidth=1.5)
        ax.plot(x, reach, "x", color=STOP_COLOR, markersize=9, markeredgewidth=2)
        ax.annotate(_plain(f"refused: the estimate would reach {m.amount(reach)}"), (x, reach),
                    xytext=(-8, 6), textcoords="offset points", ha="right", fontsize=8,
                    color=STOP_COLOR)
        return float(reach)
    return 0.0


def _text_width(chars: int, right: float) -> float:
    """About how much of the cost axis ``chars`` characters of a label cover."""
    return chars * CHAR_WIDTH_FRACTION * right * X_ROOM


def _run_legend(ax: Any, drawn: list[_Run]) -> None:
    """Which colour is which run."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=RUN_COLORS[n % len(RUN_COLORS)],
                     label=_plain(run.label or run.workflow))
               for n, run in enumerate(drawn)]
    ax.legend(handles=handles, loc="lower right", fontsize=9, frameon=False)


def _tidy(ax: Any) -> None:
    """Grid, ticks and spines of a bar chart."""
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0, labelsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def _formatter(measure: Measure) -> Any:
    """Tick labels in the measure's unit: $0.02, 0.2 g."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: _plain(measure.tick(value)))


def _plain(text: str) -> str:
    """Text as matplotlib should print it: a dollar sign is a dollar, not mathematics."""
    return str(text).replace("$", r"\$")
