"""What a run cost, node by node: a table of its node executions and two charts.

    cost_table(result)                  # one row per node execution, in the order they ended
    cost_table(result, by="node")       # one row per node: a loop's re-runs added up
    plot_costs(result)                  # a bar per node; each execution is a segment of it
    plot_costs({"budget off": off, "budget $0.10": on})    # runs side by side
    plot_spend(result)                  # the running total, the budget, where the run stopped

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

matplotlib is imported only when a chart is drawn. A chart shows itself in a notebook
(PNG) and prints as text: the same numbers, one line per node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import ConfigError, shown
from ..events import EventType, MeshEvent, plural
from .run_events import events_of, labelled_runs, notebook_figure

EXECUTION_COLUMNS = ["node", "iteration", "model", "tokens_in", "tokens_out", "cost_usd",
                     "estimate_usd", "spent_usd", "stop"]
NODE_COLUMNS = ["node", "model", "executions", "tokens_in", "tokens_out", "cost_usd", "share"]

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
    if by not in ("execution", "node"):
        raise ConfigError(f"by should be 'execution' or 'node', not {shown(by)}", argument="by",
                          fix="cost_table(run) for a row per execution, by='node' for one per "
                              "node")
    tables = {label: _by_node(rows) if by == "node" else rows
              for label, rows in _labelled_rows(runs)}
    if len(tables) == 1 and not isinstance(runs, Mapping):
        return next(iter(tables.values()))
    return pd.concat([table.assign(run=label) for label, table in tables.items()],
                     ignore_index=True)[["run", *next(iter(tables.values())).columns]]


def _labelled_rows(runs: Any) -> list[tuple[str, pd.DataFrame]]:
    """(label, execution rows) per run: a dict gives one per entry, anything else one."""
    return [(label, _execution_rows(events_of(run, "a cost table"))) for label, run
            in labelled_runs(runs, "a cost table", "{'budget off': off, 'capped': on}")]


def _execution_rows(events: list[MeshEvent]) -> pd.DataFrame:
    """A row per priced node execution and per refused one, in the order they ended."""
    rows: list[dict[str, Any]] = []
    last_cost: dict[str, float] = {}
    spent = 0.0
    for event in events:
        if event.type is EventType.NODE_COMPLETE and _priced(event):
            cost = float(event.cost_usd or 0.0)
            spent += cost
            rows.append(_row(event, _iteration(event, rows), cost, last_cost.get(event.node_id,
                                                                                   0.0), spent))
            last_cost[event.node_id] = cost
        elif event.type is EventType.BUDGET_EXCEEDED and event.payload.get("budget") == "cost":
            _note_stop(rows, event, spent)
    return pd.DataFrame(rows, columns=EXECUTION_COLUMNS, index=pd.RangeIndex(1, len(rows) + 1))


def _priced(event: MeshEvent) -> bool:
    """A node_complete with something to price: a model, tokens or a cost (not a gate)."""
    return bool(event.payload.get("model") or event.tokens or event.cost_usd)


def _iteration(event: MeshEvent, rows: list[dict[str, Any]]) -> int:
    """Which execution of its node the event ends: its payload says, else count them."""
    given = event.payload.get("iteration")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    return 1 + sum(row["node"] == event.node_id for row in rows)


def _row(event: MeshEvent, iteration: int, cost: float, estimate: float,
         spent: float) -> dict[str, Any]:
    """One execution's row."""
    return {"node": event.node_id, "iteration": iteration, "model": event.payload.get("model"),
            "tokens_in": int(event.tokens_in or 0), "tokens_out": int(event.tokens_out or 0),
            "cost_usd": cost, "estimate_usd": estimate, "spent_usd": spent, "stop": ""}


def _note_stop(rows: list[dict[str, Any]], event: MeshEvent, spent: float) -> None:
    """Mark the execution after which the budget stopped the run, or add the refused one."""
    if event.payload.get("when") == "after":
        done = [row for row in rows if row["node"] == event.node_id]
        if done:
            done[-1]["stop"] = "after"
        return
    estimate = event.payload.get("estimate")
    iteration = 1 + sum(row["node"] == event.node_id for row in rows)
    rows.append({"node": event.node_id, "iteration": iteration, "model": None, "tokens_in": 0,
                 "tokens_out": 0, "cost_usd": 0.0,
                 "estimate_usd": float(estimate) if isinstance(estimate, (int, float)) else 0.0,
                 "spent_usd": spent, "stop": "before"})


def _by_node(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per node, in the order the nodes first ended: executions added up."""
    done = rows[rows.stop != "before"]
    total = done.cost_usd.sum()
    grouped = done.groupby("node", sort=False).agg(
        model=("model", lambda models: ", ".join(dict.fromkeys(m for m in models if m))),
        executions=("node", "size"), tokens_in=("tokens_in", "sum"),
        tokens_out=("tokens_out", "sum"), cost_usd=("cost_usd", "sum")).reset_index()
    grouped["share"] = grouped.cost_usd / total if total else 0.0
    return grouped[NODE_COLUMNS]


# --- reading runs ---------------------------------------------------------------------


def _budget_of(events: list[MeshEvent]) -> float | None:
    """The cost budget the run's policy set (run_start records the policy), or None."""
    start = next((e for e in events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    budget = policy.get("budget_usd") if isinstance(policy, Mapping) else None
    return float(budget) if isinstance(budget, (int, float)) else None


class _Run:
    """One run as a chart draws it: its label, rows, budget and headline."""

    def __init__(self, label: str, events: list[MeshEvent]) -> None:
        self.label = label
        self.rows = _execution_rows(events)
        self.nodes = _by_node(self.rows)
        self.budget = _budget_of(events)
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
        name = self.label or repr(self.workflow)
        cap = f", budget {_money(self.budget)}" if self.budget is not None else ", no budget"
        return (f"{name}: ${self.done.cost_usd.sum():.4f} over "
                f"{plural(len(self.done), 'agent execution')}{cap}, {self.status}")

    def text(self) -> str:
        """The run's costs per node as text: what a chart prints outside a notebook."""
        lines = [self.headline()]
        width = max([len(str(node)) for node in self.nodes.node] + [4])
        for row in self.nodes.itertuples():
            lines.append(f"  {row.node:<{width}}  ${row.cost_usd:.4f}  {row.share:4.0%}  "
                         f"{plural(row.executions, 'execution')}")
        for row in self.rows[self.rows.stop == "before"].itertuples():
            lines.append(f"  {row.node:<{width}}  refused before execution {row.iteration} "
                         f"(estimate ${row.estimate_usd:.4f})")
        return "\n".join(lines)


def _runs(runs: Any) -> list[_Run]:
    """The runs a chart draws: a dict gives one per entry, anything else one."""
    if isinstance(runs, Mapping) and not {"run_id", "seq", "type"} <= set(runs):
        _labelled_rows(runs)  # the same refusals as cost_table
        return [_Run(label, events_of(run, "a cost table")) for label, run in runs.items()]
    return [_Run("", events_of(runs, "a cost table"))]


# --- the charts -----------------------------------------------------------------------


def plot_costs(runs: Any, *, title: str | None = None) -> Any:
    """A bar per node: what it cost over the whole run, each of its executions a segment
    (a loop's re-runs stacked after the first, labelled #2, #3, ...), the total beside
    it. An execution the budget refused is an empty hatched segment as long as the
    estimate that refused it. Pass ``{"label": run, ...}`` to compare runs, a bar each."""
    drawn = _runs(runs)
    nodes = list(dict.fromkeys(n for run in drawn for n in run.rows.node))
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 1.6 + 0.42 * len(nodes) * (
        1 + 0.45 * (len(drawn) - 1))), layout="constrained")
    figure.printed = "\n".join(run.text() for run in drawn)
    ax = figure.subplots()
    right = max([_bar_length(run, node) for run in drawn for node in nodes] + [1e-9])
    for n, run in enumerate(drawn):
        _draw_bars(ax, run, nodes, n, len(drawn), right)
    ax.set_yticks(range(len(nodes)), nodes)
    if not nodes:
        ax.text(0.5, 0.5, "no node execution cost anything", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_ylim(len(nodes) - 0.5 if nodes else 0.5, -0.5)
    ax.set_xlim(0, right * X_ROOM)
    ax.set_xlabel("USD: each bar is the node's total over the run; a loop's re-runs are "
                  "its segments #2, #3, ...", fontsize=9)
    ax.xaxis.set_major_formatter(_usd_formatter())
    _tidy(ax)
    ax.set_title(_plain(title or _title(drawn, "Cost per node")), loc="left", fontsize=11)
    if len(drawn) > 1:
        _run_legend(ax, drawn)
    return figure


def plot_spend(runs: Any, *, title: str | None = None) -> Any:
    """The run's total after each node execution (the number the budget layer compares
    with its cap), the budget as a dashed line, and where the layer stopped the run: a
    dot after the execution that passed the budget, a cross where it refused one (at
    what the estimate said the spend would reach). ``{"label": run, ...}`` compares runs."""
    drawn = _runs(runs)
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
        ax.text(0.5, 0.5, "no node execution cost anything", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_ylim(0, top * 1.18 or 1e-6)
    ax.yaxis.set_major_formatter(_usd_formatter())
    ax.set_ylabel("USD spent so far")
    ax.set_xlabel("node executions, in the order they ended" if same_order
                  else "node execution", fontsize=9)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(_plain(title or _title(drawn, "What the run had spent")), loc="left",
                 fontsize=11)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return figure


def _title(drawn: list[_Run], what: str) -> str:
    """The chart's title: the run's headline, or one line per run when comparing."""
    if len(drawn) == 1:
        return f"{what}: {drawn[0].headline()}"
    return what + "\n" + "\n".join(run.headline() for run in drawn)


def _bar_length(run: _Run, node: str) -> float:
    """How far the node's bar reaches: what it cost, plus any refused estimate."""
    rows = run.rows[run.rows.node == node]
    return float(rows.cost_usd.sum() + rows[rows.stop == "before"].estimate_usd.sum())


def _draw_bars(ax: Any, run: _Run, nodes: list[str], n: int, count: int, right: float) -> None:
    """The run's bar on each node's row (offset when several runs share the rows)."""
    height = 0.7 / count
    color = RUN_COLORS[n % len(RUN_COLORS)]
    for y, node in enumerate(nodes):
        middle = y - 0.35 + height * (n + 0.5)
        left = 0.0
        for row in run.rows[run.rows.node == node].itertuples():
            refused = row.stop == "before"
            width = row.estimate_usd if refused else row.cost_usd
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
    rows = run.rows[run.rows.node == node]
    done, refused = rows[rows.stop != "before"], rows[rows.stop == "before"]
    if rows.empty:
        return
    parts = [f"${done.cost_usd.sum():.4f}"] if not done.empty else []
    if len(done) > 1:
        parts.append(f"({len(done)} executions)")
    if "after" in set(done.stop):
        parts.append("then the budget stopped the run")
    if not refused.empty:
        parts.append(f"refused #{refused.iteration.iloc[-1]}: estimate "
                     f"${refused.estimate_usd.iloc[-1]:.4f}")
    ax.text(end + right * 0.01, y, _plain("  ".join(parts)), va="center", ha="left", fontsize=9,
            color=STOP_COLOR if not refused.empty or "after" in set(done.stop) else "black")


def _draw_spend(ax: Any, run: _Run, color: str, several: bool) -> float:
    """One run's running total, its budget and its stops; returns the highest value drawn."""
    done = run.rows
    xs = list(range(1, len(done) + 1))
    spent = list(done.spent_usd)
    label = run.label or "spent so far"
    ax.step([0.5, *xs], [0.0, *spent], where="post", color=color, linewidth=2,
            label=_plain(label) if several else "spent so far")
    ax.plot([x for x, r in zip(xs, done.itertuples(), strict=True) if r.stop != "before"],
            [s for s, r in zip(spent, done.itertuples(), strict=True) if r.stop != "before"],
            "o", color=color, markersize=4)
    top = max(spent, default=0.0)
    if run.budget is not None:
        budget = f"budget {_money(run.budget)}"
        ax.axhline(run.budget, color=color if several else STOP_COLOR, linestyle="--",
                   linewidth=1.2, label=_plain(budget) if budget not in label else "_nolegend_")
        top = max(top, run.budget)
    for x, row in zip(xs, done.itertuples(), strict=True):
        top = max(top, _mark_stop(ax, x, row))
    return top


def _mark_stop(ax: Any, x: int, row: Any) -> float:
    """A stop of the budget layer at execution ``x``; returns how high its mark goes."""
    if row.stop == "after":
        ax.plot(x, row.spent_usd, "o", color=STOP_COLOR, markersize=9, fillstyle="none",
                markeredgewidth=2)
        ax.annotate("stopped after this one", (x, row.spent_usd), xytext=(-10, 6),
                    textcoords="offset points", ha="right", fontsize=8, color=STOP_COLOR)
        return float(row.spent_usd)
    if row.stop == "before":
        reach = row.spent_usd + row.estimate_usd
        ax.plot([x, x], [row.spent_usd, reach], ":", color=STOP_COLOR, linewidth=1.5)
        ax.plot(x, reach, "x", color=STOP_COLOR, markersize=9, markeredgewidth=2)
        ax.annotate(_plain(f"refused: the estimate would reach ${reach:.4f}"), (x, reach),
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


def _usd_formatter() -> Any:
    """Tick labels in dollars: $0.02."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: _plain(f"${value:.3g}" if value else "$0"))


def _money(amount: float) -> str:
    """A budget as people write it: $0.10, $5.00, $0.065."""
    return f"${amount:.2f}" if round(amount, 2) == amount else f"${amount:g}"


def _plain(text: str) -> str:
    """Text as matplotlib should print it: a dollar sign is a dollar, not mathematics."""
    return str(text).replace("$", r"\$")
