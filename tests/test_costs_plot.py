"""Cost per node (meshflow_nb.notebook.costs): the table of a run's node executions, what
the budget layer saw before and after each one, and the two charts, from real mock runs
of the capstone (and from their ledger)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from meshflow_nb import (
    AgentResult,
    ConfigError,
    EventType,
    Node,
    Policy,
    Role,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import cost_table, plot_costs, plot_spend
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

APPROVE = fixed_approver(True, "tester", "approved in a test")
BUDGETS = [0.03, 0.0398, 0.04, 0.05, 0.061, 0.062, 0.065, 0.07, 0.077, 0.078, 0.2]
"""Budgets on both sides of every step of the capstone's spend (past the parallel
analysts, where one stop lets the other branch finish)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The capstone in mock mode: no budget, and under each of BUDGETS, on one ledger."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.01")
        ledger = ReplayLedger(str(tmp_path_factory.mktemp("costs") / "costs.duckdb"))
        pipeline = ledger.attach(build_capstone_pipeline())
        found = SimpleNamespace(ledger=ledger, pipeline=pipeline)
        found.free = pipeline.run(CAPSTONE_TASK, approver=APPROVE, policy=Policy(budget_usd=None))
        found.capped = {b: pipeline.run(CAPSTONE_TASK, approver=APPROVE,
                                        policy=Policy(budget_usd=b)) for b in BUDGETS}
        found.tiny = pipeline.run(CAPSTONE_TASK, approver=APPROVE, policy=Policy(budget_usd=0.01))
        yield found


# --- the table -------------------------------------------------------------------------


def test_a_row_per_priced_execution_in_the_order_they_ended(runs: SimpleNamespace) -> None:
    table = cost_table(runs.free)
    ended = [e.node_id for e in runs.free.events
             if e.type is EventType.NODE_COMPLETE and e.node_id != "hitl_gate"]
    assert list(table.node) == ended  # the gate costs nothing and has no row
    assert list(table.index) == list(range(1, len(ended) + 1))
    assert list(table.iteration) == [1, 1, 1, 1, 1, 2, 2, 1]
    assert set(table.model) == {"claude-sonnet-4-5"} and set(table.stop) == {""}
    assert math.isclose(table.cost_usd.sum(), runs.free.totals.cost_usd)
    assert table.tokens_in.sum() + table.tokens_out.sum() == runs.free.totals.tokens


def test_spent_is_the_running_total_and_estimate_the_nodes_last_cost(runs: SimpleNamespace) -> None:
    table = cost_table(runs.free)
    assert list(table.spent_usd) == pytest.approx(list(table.cost_usd.cumsum()))
    firsts, reruns = table[table.iteration == 1], table[table.iteration > 1]
    assert (firsts.estimate_usd == 0).all()
    for row in reruns.itertuples():
        before = table[(table.node == row.node) & (table.iteration == row.iteration - 1)]
        assert row.estimate_usd == before.cost_usd.iloc[0]


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_table_says_what_the_budget_layer_saw(runs: SimpleNamespace, budget: float) -> None:
    """Each budget_exceeded payload is the table's row: the estimate and spend that made
    the layer refuse (before) or stop (after)."""
    run = runs.capped[budget]
    table = cost_table(run)
    stops = [e for e in run.events if e.type is EventType.BUDGET_EXCEEDED]
    marked = table[table.stop != ""]
    assert len(marked) == len(stops)
    for stop, row in zip(stops, marked.itertuples(), strict=True):
        assert (row.node, row.stop) == (stop.node_id, stop.payload["when"])
        assert row.spent_usd == pytest.approx(stop.payload["spent"], abs=1e-6)
        if row.stop == "before":
            assert row.estimate_usd == pytest.approx(stop.payload["estimate"], abs=1e-6)
            assert row.cost_usd == 0 and row.spent_usd + row.estimate_usd > budget
        else:
            assert row.spent_usd > budget


def predicted_executions(table: Any, budget: float) -> int:
    """How many executions the budget layer lets run, read off an unbudgeted run's table:
    refused before one when spent + estimate > budget, stopped after one when spent > it."""
    spent = 0.0
    for n, row in enumerate(table.itertuples()):
        if spent + row.estimate_usd > budget:
            return n
        spent = row.spent_usd
        if spent > budget:
            return n + 1
    return len(table)


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_unbudgeted_table_predicts_where_each_budget_stops(runs: SimpleNamespace,
                                                               budget: float) -> None:
    ran = len(cost_table(runs.capped[budget]).query("stop != 'before'"))
    assert ran == predicted_executions(cost_table(runs.free), budget)


def test_parallel_work_finishes_after_a_stop(runs: SimpleNamespace) -> None:
    table = cost_table(runs.tiny)
    assert list(table.node) == ["researcher", "analyst_a", "analyst_b"]
    assert list(table.stop) == ["", "after", "after"]


def test_by_node_adds_up_the_executions(runs: SimpleNamespace) -> None:
    nodes = cost_table(runs.free, by="node")
    assert list(nodes.node) == ["researcher", "analyst_a", "analyst_b", "writer",
                                "quality_gate", "publisher"]
    writer = nodes.set_index("node").loc["writer"]
    rows = cost_table(runs.free).query("node == 'writer'")
    assert writer.executions == 2 and writer.cost_usd == pytest.approx(rows.cost_usd.sum())
    assert nodes.share.sum() == pytest.approx(1.0)


def test_by_node_leaves_refused_executions_out(runs: SimpleNamespace) -> None:
    nodes = cost_table(runs.capped[0.05], by="node").set_index("node")
    assert nodes.loc["writer"].executions == 1


def test_the_ledger_gives_the_same_table_as_the_result(runs: SimpleNamespace) -> None:
    for run in (runs.free, runs.capped[0.05], runs.capped[0.04]):
        recorded = cost_table(runs.ledger.events(run.run_id))
        assert recorded.equals(cost_table(run))


def test_json_lines_read_back_give_the_same_table(runs: SimpleNamespace) -> None:
    lines = [json.loads(e.to_json()) for e in runs.capped[0.05].events]
    assert cost_table(lines).equals(cost_table(runs.capped[0.05]))


def test_a_dict_of_runs_labels_each_runs_rows(runs: SimpleNamespace) -> None:
    both = cost_table({"off": runs.free, "capped": runs.capped[0.05]}, by="node")
    assert both.columns[0] == "run"
    assert both.groupby("run", sort=False).size().to_dict() == {"off": 6, "capped": 5}


def test_agents_without_model_tokens_or_cost_have_no_row() -> None:
    plain = WorkflowDefinition("plain").add_node(Node("a", lambda ctx: "text", Role.EXECUTOR))
    result = plain.run("t", policy=Policy(budget_usd=1.0))
    assert cost_table(result).empty
    assert cost_table(result, by="node").empty
    for draw in (plot_costs, plot_spend):
        assert draw(result).text() == "'plain': $0.0000 over 0 agent executions, budget $1.00, "\
                                      "completed"
        assert draw(result)._repr_png_()[:4] == b"\x89PNG"


JUNK = [(None, "not NoneType"), ("a run", "not str"), (42, "not int"), ([], "is empty"),
        ([object()], "item 0 is object"), ([{"seq": 1}], "not an event's dict"), ({}, "is empty"),
        ({1: []}, "should be text")]


@pytest.mark.parametrize(("junk", "says"), JUNK)
def test_junk_is_a_clear_config_error(junk: Any, says: str) -> None:
    for draw in (cost_table, plot_costs, plot_spend):
        with pytest.raises(ConfigError, match=r"pass a run's result|pass \{") as err:
            draw(junk)
        assert says in str(err.value)


def test_events_of_two_runs_one_event_and_a_bad_by_are_refused(runs: SimpleNamespace) -> None:
    mixed = runs.free.events[:3] + runs.tiny.events[:3]
    with pytest.raises(ConfigError, match="come from 2 runs"):
        cost_table(mixed)
    with pytest.raises(ConfigError, match="that is one event"):
        cost_table(runs.free.events[0].to_dict())
    with pytest.raises(ConfigError, match="by should be"):
        cost_table(runs.free, by="model")


# --- the charts ------------------------------------------------------------------------


def rendered(figure: Any) -> Any:
    """The figure drawn on an Agg canvas (as its PNG is), and that canvas' renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def texts(figure: Any) -> list[str]:
    """Every piece of text drawn in the figure (labels, titles, ticks, legend), as read:
    a dollar sign is escaped for matplotlib, not for the reader."""
    rendered(figure)
    return [t.get_text().replace("\\$", "$")
            for t in figure.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def test_plot_costs_draws_a_segment_per_execution(runs: SimpleNamespace) -> None:
    figure = plot_costs(runs.free)
    ax = figure.axes[0]
    assert len(ax.patches) == len(cost_table(runs.free))
    assert [t.get_text() for t in ax.get_yticklabels()] == list(
        cost_table(runs.free, by="node").node)
    drawn = texts(figure)
    assert any("$0.0308" in t and "2 executions" in t for t in drawn)
    assert "#2" in drawn and any("each bar is the node's total" in t for t in drawn)


def test_a_refused_execution_is_a_hatched_segment_of_its_estimate(runs: SimpleNamespace) -> None:
    figure = plot_costs(runs.capped[0.05])
    hatched = [p for p in figure.axes[0].patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_width() == pytest.approx(0.012273)
    assert any("refused #2: estimate $0.0123" in t for t in texts(figure))


def test_several_runs_get_a_bar_each_and_a_legend(runs: SimpleNamespace) -> None:
    figure = plot_costs({"budget off": runs.free, "budget $0.05": runs.capped[0.05]})
    assert figure.axes[0].get_legend() is not None
    drawn = texts(figure)
    assert "budget off" in drawn and "budget $0.05" in drawn
    assert "\nbudget off: $0.0804 over 8 agent executions" in "\n".join(drawn)


def test_plot_spend_marks_the_budget_and_both_kinds_of_stop(runs: SimpleNamespace) -> None:
    figure = plot_spend({"before": runs.capped[0.05], "after": runs.capped[0.04]})
    drawn = texts(figure)
    assert "budget $0.05" in drawn and "budget $0.04" in drawn
    assert "refused: the estimate would reach $0.0614" in drawn
    assert "stopped after this one" in drawn
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks[:5] == ["researcher", "analyst_a", "analyst_b", "writer", "quality_gate"]
    assert ticks[5] == "writer #2"


def test_runs_in_another_order_get_numbered_ticks(runs: SimpleNamespace) -> None:
    priced = AgentResult(text="x", tokens_in=5, tokens_out=5, cost_usd=0.01,
                         model="claude-haiku-4-5")
    other = WorkflowDefinition("other").add_node(Node("critic", lambda ctx: priced, Role.CRITIC))
    figure = plot_spend({"capstone": runs.free, "other": other.run("t")})
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()][:2] == ["1", "2"]


@pytest.mark.parametrize("draw", [plot_costs, plot_spend])
def test_every_label_stays_inside_the_figure(runs: SimpleNamespace, draw: Any) -> None:
    for source in (runs.free, runs.capped[0.05], runs.tiny,
                   {"off": runs.free, "$0.04": runs.capped[0.04]}):
        figure = draw(source)
        renderer = rendered(figure)
        box = figure.bbox
        for text in drawn_texts(figure):
            extent = text.get_window_extent(renderer)
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
            assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()


def drawn_texts(figure: Any) -> list[Any]:
    """The text a reader sees: labels, titles, the legend, and the tick labels of the ticks
    inside the axes' limits (matplotlib keeps, but does not draw, the others)."""
    found = []
    for ax in figure.axes:
        found += [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]
        legend = ax.get_legend()
        found += legend.get_texts() if legend is not None else []
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, sorted(ax.get_ylim()))):
            found += [tick.label1 for tick in axis.get_major_ticks()
                      if low - 1e-9 <= tick.get_loc() <= high + 1e-9]
    return [t for t in found if t.get_visible() and t.get_text()]


def test_a_chart_shows_as_png_and_prints_as_text(runs: SimpleNamespace) -> None:
    figure = plot_costs({"off": runs.free, "capped": runs.capped[0.05]})
    assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = figure.text()
    assert printed.splitlines()[0] == "off: $0.0804 over 8 agent executions, no budget, completed"
    assert "  writer        refused before execution 2 (estimate $0.0123)" in printed
    assert plot_spend(runs.capped[0.05])._repr_png_()[:4] == b"\x89PNG"


def test_importing_the_costs_module_does_not_load_matplotlib() -> None:
    code = ("import sys; import meshflow_nb.notebook.costs; "
            "print('matplotlib' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == "False"
