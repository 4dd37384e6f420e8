"""Timelines of real runs: one bar per node execution from its node_start to its end
event, read from result.events, from the ledger and from JSON lines alike; a loop's
re-runs are bars of their own; the figure draws every bar; junk is a clear ConfigError."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from meshflow_nb import ConfigError, Node, RunResult, WorkflowDefinition, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import Timeline, TimelineBar, plot_timeline
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

ROOT = Path(__file__).resolve().parents[1]


def sleeper(seconds: float) -> Any:
    def agent(ctx: Any) -> str:
        time.sleep(seconds)
        return "ok"
    return agent


def boom(ctx: Any) -> str:
    time.sleep(0.02)
    raise RuntimeError("no answer")


def diamond(name: str = "diamond", slow: float = 0.05, fail: bool = False) -> WorkflowDefinition:
    """a -> b, c -> d, with c ``slow`` (or failing)."""
    return (WorkflowDefinition(name).add_node(Node("a", sleeper(0.02)))
            .add_node(Node("b", sleeper(0.02))).add_node(Node("c", boom if fail else sleeper(slow)))
            .add_node(Node("d", sleeper(0.02))).add_edge("a", "b").add_edge("a", "c")
            .add_edge("b", "d").add_edge("c", "d"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A diamond, a failing one, the capstone approved (on a ledger) and rejected, and a
    capstone cancelled half-way."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.01")
        found = SimpleNamespace()
        found.diamond = diamond()
        found.run = found.diamond.run("t")
        found.failed = diamond("failing", fail=True).run("t")
        found.ledger = ReplayLedger(str(tmp_path_factory.mktemp("timeline") / "l.duckdb"))
        capstone = found.ledger.attach(build_capstone_pipeline())
        found.capstone = capstone
        found.approved = capstone.run(CAPSTONE_TASK, approver=fixed_approver(True, "t", "ok"))
        found.rejected = build_capstone_pipeline().run(
            CAPSTONE_TASK, approver=fixed_approver(False, "t", "no"))
        found.cancelled = []
        for event in build_capstone_pipeline().stream(CAPSTONE_TASK):
            found.cancelled.append(event)
            if event.type.value == "node_start" and event.node_id == "writer":
                break  # leaves the stream: the run is cancelled with the writer running
        found.rejected_preflight = WorkflowDefinition("empty").run("t")
        yield found


def seconds(event: Any, first: Any) -> float:
    return (datetime.fromisoformat(event.ts) - datetime.fromisoformat(first.ts)).total_seconds()


def test_each_bar_runs_from_node_start_to_node_complete(runs: SimpleNamespace) -> None:
    timeline = Timeline.of(runs.run)
    events = runs.run.events
    starts = [e for e in events if e.type.value == "node_start"]
    assert [(b.node_id, b.execution) for b in timeline.bars] == \
        [(e.node_id, 1) for e in starts]  # one bar per node_start, in start order
    for bar in timeline.bars:
        start = next(e for e in starts if e.node_id == bar.node_id)
        end = next(e for e in events if e.type.value == "node_complete"
                   and e.node_id == bar.node_id)
        assert bar.start_s == pytest.approx(seconds(start, events[0]), abs=1e-6)
        assert bar.end_s == pytest.approx(seconds(end, events[0]), abs=1e-6)
        assert bar.outcome == "done" and bar.role is None and not bar.waits
    assert timeline.length_s == pytest.approx(seconds(events[-1], events[0]), abs=1e-6)
    assert timeline.status == "completed" and timeline.workflow == "diamond"
    assert timeline.nodes == ["a", "b", "c", "d"]


def test_overlap_work_wall_and_speedup(runs: SimpleNamespace) -> None:
    timeline = Timeline.of(runs.run)
    (b,), (c,) = timeline.bars_of("b"), timeline.bars_of("c")
    assert b.overlaps(c) and c.overlaps(b)
    assert not timeline.bars_of("a")[0].overlaps(timeline.bars_of("d")[0])
    assert timeline.work_s(["b", "c"]) == pytest.approx(b.duration_s + c.duration_s)
    assert timeline.wall_s(["b", "c"]) == pytest.approx(max(b.end_s, c.end_s) - b.start_s,
                                                         abs=1e-3)
    assert 1.2 < timeline.speedup(["b", "c"]) <= 2.0
    assert timeline.speedup("a") == pytest.approx(1.0)
    with pytest.raises(ConfigError, match=r"no bar of 'zz' in this timeline.*\['a', 'b'"):
        timeline.speedup(["b", "zz"])


def test_a_loop_shows_one_bar_per_execution(runs: SimpleNamespace) -> None:
    timeline = Timeline.of(runs.approved)
    assert len(timeline.bars) == runs.approved.totals.node_executions == 9
    writer = timeline.bars_of("writer")
    assert [b.execution for b in writer] == [1, 2]
    assert writer[0].end_s <= writer[1].start_s
    assert [b.execution for b in timeline.bars_of("quality_gate")] == [1, 2]
    assert "writer #2" in timeline.text() and "quality_gate #2" in timeline.text()
    assert timeline.nodes.count("writer") == 1  # one row, two bars


def test_the_ledger_gives_the_same_bars_as_the_result(runs: SimpleNamespace) -> None:
    from_ledger = Timeline.of(runs.ledger.events(runs.approved.run_id))
    assert from_ledger.bars == Timeline.of(runs.approved).bars


def test_json_lines_read_back_give_the_same_bars(runs: SimpleNamespace) -> None:
    lines = [json.loads(e.to_json()) for e in runs.approved.events]
    assert Timeline.of(lines).bars == Timeline.of(runs.approved).bars
    shuffled = list(reversed(runs.approved.events))  # put back in seq order
    assert Timeline.of(shuffled).bars == Timeline.of(runs.approved).bars


def test_a_gate_bar_holds_its_wait_and_says_how_it_ended(runs: SimpleNamespace) -> None:
    (approved,) = Timeline.of(runs.approved).bars_of("hitl_gate")
    assert approved.outcome == "done" and len(approved.waits) == 1
    begin, end = approved.waits[0]
    assert approved.start_s <= begin <= end <= approved.end_s
    (rejected,) = Timeline.of(runs.rejected).bars_of("hitl_gate")
    assert rejected.outcome == "rejected" and rejected.waits
    assert not Timeline.of(runs.rejected).bars_of("publisher")
    assert "rejected" in Timeline.of(runs.rejected).text()


def test_failed_cancelled_and_running_bars(runs: SimpleNamespace) -> None:
    (failed,) = Timeline.of(runs.failed).bars_of("c")
    assert failed.outcome == "failed" and not Timeline.of(runs.failed).bars_of("d")
    assert Timeline.of(runs.failed).status == "failed"
    cancelled = Timeline.of(runs.cancelled)  # the stream was left: run_complete came after
    assert [b.outcome for b in cancelled.bars_of("writer")] in (["running"], ["cancelled"])
    events = runs.approved.events
    writer_starts = next(n for n, e in enumerate(events)
                         if e.type.value == "node_start" and e.node_id == "writer")
    half = events[:writer_starts + 1]  # as a live view sees it, the writer just started
    running = Timeline.of(half)
    assert running.bars_of("writer")[0].outcome == "running" and running.status is None
    assert "still running" in running.title()


def test_a_run_that_ran_no_node_has_an_empty_timeline(runs: SimpleNamespace) -> None:
    timeline = Timeline.of(runs.rejected_preflight)
    assert timeline.bars == [] and "(no node ran)" in timeline.text()
    assert timeline.critical_path(WorkflowDefinition("empty")) == []
    figure = plot_timeline(timeline)
    assert "no node ran" in [t.get_text() for t in figure.axes[0].texts]


def test_the_critical_path_goes_through_the_slow_branch() -> None:
    wf = diamond("uneven", slow=0.15)
    timeline = Timeline.of(wf.run("t"))
    assert [b.node_id for b in timeline.critical_path(wf)] == ["a", "c", "d"]
    with pytest.raises(ConfigError, match="critical_path reads a workflow's edges"):
        timeline.critical_path("uneven")


def test_the_figure_draws_a_bar_per_execution_and_a_row_per_node(runs: SimpleNamespace) -> None:
    figure = plot_timeline(runs.approved)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    timeline = Timeline.of(runs.approved)
    assert len(bars) == len(timeline.bars) + sum(len(b.waits) for b in timeline.bars)
    assert [t.get_text() for t in ax.get_yticklabels()] == timeline.nodes
    labels = [t.get_text() for t in ax.texts]
    assert any(label.startswith("#2  ") for label in labels)  # a re-run says which one
    assert ax.get_title(loc="left") == timeline.title()
    png = figure._repr_png_()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    width, height = _png_size(png)
    assert width >= 800 and height >= 250


def test_the_figure_prints_as_the_timelines_text(runs: SimpleNamespace) -> None:
    from IPython.lib.pretty import pretty
    figure = plot_timeline({"fan-out": runs.run, "failing": runs.failed})
    assert pretty(figure) == Timeline.of(runs.run).text() + "\n" + Timeline.of(runs.failed).text()
    assert pretty(Timeline.of(runs.run)) == Timeline.of(runs.run).text()
    assert Timeline.of(runs.run)._repr_png_().startswith(b"\x89PNG")


def test_several_runs_share_one_time_axis(runs: SimpleNamespace) -> None:
    figure = plot_timeline({"fan-out": runs.run, "capstone": runs.approved})
    top, bottom = figure.axes
    assert top.get_title(loc="left").startswith("fan-out: 'diamond' completed")
    assert bottom.get_title(loc="left").startswith("capstone: 'production_pipeline'")
    assert top.get_xlim() == bottom.get_xlim()
    assert top.get_xlim()[1] >= Timeline.of(runs.approved).length_s


def test_until_zooms_and_highlight_outlines(runs: SimpleNamespace) -> None:
    timeline = Timeline.of(runs.approved)
    figure = plot_timeline(runs.approved, until=0.05, title="zoom")
    assert figure.axes[0].get_xlim()[1] == pytest.approx(0.05 * 1.02)
    assert figure.axes[0].get_title(loc="left").startswith("zoom: ")
    path = timeline.critical_path(runs.capstone)
    assert [b.node_id for b in path][-1] == "publisher"
    outlined = plot_timeline(runs.approved, highlight=path)
    widths = [p.get_linewidth() for p in outlined.axes[0].patches]
    assert sum(w > 2 for w in widths) == len(path)
    legend = [t.get_text() for t in outlined.legends[0].get_texts()]
    assert "highlighted" in legend and "waiting for a decision" in legend


JUNK = [
    (None, "a timeline is drawn from a run, not NoneType None"),
    ("runs.duckdb", "not str 'runs.duckdb'"),
    (42, "not int 42"),
    ([], "this list is empty"),
    ([1, 2], "item 0 is int 1, not an event"),
    ([{"run_id": "x"}], "item 0 is not an event's dict"),
    ({}, "the dict of runs to compare is empty"),
    ({1: "run"}, "the labels of the runs should be text, not int 1"),
    ({"label": 3}, "a timeline is drawn from a run, not int 3"),
    ([{"run_id": "r", "seq": 1, "ts": "yesterday", "type": "run_start"}],
     "item 0 has no readable timestamp: 'yesterday'"),
]


@pytest.mark.parametrize(("junk", "says"), JUNK)
def test_junk_is_a_clear_config_error(junk: Any, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plot_timeline(junk)
    assert says in str(caught.value)
    assert "pass a run's result" in str(caught.value) or "pass {" in str(caught.value)
    with pytest.raises(ConfigError):
        Timeline.of(junk if not isinstance(junk, dict) else [junk])


def test_events_of_two_runs_and_one_lone_event_are_refused(runs: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match="these events come from 2 runs"):
        Timeline.of(runs.run.events + runs.failed.events)
    with pytest.raises(ConfigError, match="that is one event"):
        plot_timeline(runs.run.events[0].to_dict())


@pytest.mark.parametrize("until", [0, -1, "1", True, float("nan"), float("inf"), [1]])
def test_a_bad_until_is_refused(runs: SimpleNamespace, until: Any) -> None:
    with pytest.raises(ConfigError, match="until should be a number of seconds above 0"):
        plot_timeline(runs.run, until=until)


@pytest.mark.parametrize("highlight", ["a", 3, [1], {"a": 1}])
def test_a_bad_highlight_is_refused(runs: SimpleNamespace, highlight: Any) -> None:
    with pytest.raises(ConfigError, match="highlight should"):
        plot_timeline(runs.run, highlight=highlight)


def test_a_result_handle_and_bars_are_accepted(runs: SimpleNamespace) -> None:
    assert isinstance(runs.run, RunResult)
    handle = diamond().start("t")
    handle.result(timeout=10)
    assert [b.node_id for b in Timeline.of(handle).bars] == ["a", "b", "c", "d"]
    assert Timeline.of(Timeline.of(runs.run)) is not None
    assert isinstance(Timeline.of(runs.run).bars[0], TimelineBar)
    assert repr(Timeline.of(runs.run)).startswith("<Timeline 'diamond' completed: 4 node")


def test_importing_the_notebook_layer_does_not_load_matplotlib() -> None:
    probe = "import sys, meshflow_nb.notebook; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    stream = io.BytesIO(png[16:24])
    return int.from_bytes(stream.read(4), "big"), int.from_bytes(stream.read(4), "big")
