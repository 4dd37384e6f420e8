"""Lesson 3's self-checks, judged against real runs of small fan-outs and of the capstone
in mock mode: a right answer passes; wrong answers, values of the wrong type and filler
give a HINT that never raises and never gives the answer away."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from meshflow_nb import Node, Role, WorkflowDefinition
from meshflow_nb.notebook import selfcheck
from meshflow_nb.notebook.selfcheck import Verdict
from meshflow_nb.notebook.selfcheck.fanout import fan_points_of
from meshflow_nb.pipelines import build_capstone_pipeline

TASK = "Assess heat pumps for a cold climate"
BRANCH_S = 0.3
"""Exercise 1's branches: long enough that scheduling noise cannot hide a 3x speed-up."""

WRONG_TYPES = [None, ["my_fanout"], {"a": 1}, 2.5, math.nan, "my_fanout", object(), True,
               "x" * 100_000]
"""Values of every kind a learner might type where a workflow or a choice belongs."""


def slow_agent(name: str, seconds: float) -> Callable[[Any], str]:
    """The lesson's agent: sleeps, then names itself."""
    def agent(ctx: Any) -> str:
        time.sleep(seconds)
        return name
    return agent


def fan_out(name: str = "my_fanout", branches: tuple[float, ...] = (BRANCH_S,) * 3,
            join: bool = True, agent: Callable[[str, float], Any] = slow_agent
            ) -> WorkflowDefinition:
    """planner -> one branch per entry of ``branches`` (its seconds) -> writer."""
    wf = WorkflowDefinition(name).add_node(Node("planner", slow_agent("planner", 0.02),
                                                Role.PLANNER))
    if join:
        wf.add_node(Node("writer", slow_agent("writer", 0.02), Role.EXECUTOR))
    for n, seconds in enumerate(branches):
        wf.add_node(Node(f"branch_{n}", agent(f"branch_{n}", seconds), Role.EXECUTOR))
        wf.add_edge("planner", f"branch_{n}")
        if join:
            wf.add_edge(f"branch_{n}", "writer")
    return wf


def blocking_agent(name: str, seconds: float) -> Callable[[Any], Any]:
    """The mistake of section 3: an async agent that blocks the event loop."""
    async def agent(ctx: Any) -> str:
        time.sleep(seconds)
        return name
    return agent


def chain(name: str = "my_fanout") -> WorkflowDefinition:
    """Three branches' worth of work, one after the other."""
    wf = WorkflowDefinition(name)
    for n in range(3):
        wf.add_node(Node(f"step_{n}", slow_agent(f"step_{n}", 0.05), Role.EXECUTOR))
    return wf.add_edge("step_0", "step_1").add_edge("step_1", "step_2")


def failing_agent(seconds: float, message: str = "the market data service is down"
                  ) -> Callable[[Any], Any]:
    """A branch that raises after ``seconds``."""
    def agent(ctx: Any) -> str:
        time.sleep(seconds)
        raise ConnectionError(message)
    return agent


def flaky(fail_after: float = 0.05, others: float = 0.1) -> WorkflowDefinition:
    """Exercise 2's fan-out: business raises while technical and legal still work."""
    return (
        WorkflowDefinition("flaky_fan_out")
        .add_node(Node("planner", slow_agent("planner", 0.02), Role.PLANNER))
        .add_node(Node("technical", slow_agent("technical", others), Role.EXECUTOR))
        .add_node(Node("business", failing_agent(fail_after), Role.EXECUTOR))
        .add_node(Node("legal", slow_agent("legal", others), Role.EXECUTOR))
        .add_node(Node("writer", slow_agent("writer", 0.02), Role.EXECUTOR))
        .add_edge("planner", "technical").add_edge("planner", "business")
        .add_edge("planner", "legal").add_edge("technical", "writer")
        .add_edge("business", "writer").add_edge("legal", "writer"))


def nested() -> WorkflowDefinition:
    """Section 6's nested fan-out (agents never run here)."""
    wf = WorkflowDefinition("nested_fan_out")
    for node_id in ("researcher", "technical", "cost", "risk", "technical_summary",
                    "business", "writer"):
        wf.add_node(Node(node_id, slow_agent(node_id, 0.0), Role.EXECUTOR))
    for source, target in (("researcher", "technical"), ("researcher", "business"),
                           ("technical", "cost"), ("technical", "risk"),
                           ("cost", "technical_summary"), ("risk", "technical_summary"),
                           ("technical_summary", "writer"), ("business", "writer")):
        wf.add_edge(source, target)
    return wf


@pytest.fixture(scope="module")
def runs() -> Iterator[SimpleNamespace]:
    """Real runs of every kind the three exercises judge (mock agents for the capstone)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        found = SimpleNamespace(wf={}, run={})
        shapes = {"right": fan_out(), "four": fan_out(branches=(BRANCH_S,) * 4),
                  "two": fan_out(branches=(BRANCH_S,) * 2), "chain": chain(),
                  "no_join": fan_out(join=False), "tiny": fan_out(branches=(0.0,) * 3),
                  "uneven": fan_out(branches=(0.05, 0.05, 0.4)),
                  "blocking": fan_out(branches=(0.1,) * 3, agent=blocking_agent),
                  "broken": fan_out(branches=(0.05, 0.05)).add_node(
                      Node("branch_2", failing_agent(0.01))).add_edge("planner", "branch_2")
                  .add_edge("branch_2", "writer"),
                  "duplicate": fan_out().add_edge("planner", "branch_0")}
        for key, wf in shapes.items():
            found.wf[key], found.run[key] = wf, wf.run(TASK)
        found.flaky = flaky()
        found.flaky_run = found.flaky.run(TASK)
        found.late = flaky(fail_after=0.2, others=0.02)  # fails after the others ended
        found.late_run = found.late.run(TASK)
        found.pipeline = build_capstone_pipeline()  # read, never run
        found.nested = nested()
        yield found


def assert_pass(verdict: Verdict, *phrases: str) -> None:
    assert isinstance(verdict, Verdict) and verdict.passed, str(verdict)
    assert str(verdict).startswith("PASS: ")
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)


def assert_hint(verdict: Verdict, *phrases: str, hides: Any = None) -> None:
    """A HINT naming each phrase; with ``hides``, the right answer is not in it."""
    assert isinstance(verdict, Verdict), verdict
    assert not verdict.passed and str(verdict).startswith("HINT: "), str(verdict)
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)
    if hides is not None:
        assert str(hides) not in verdict.message, str(verdict)
    assert len(verdict.message) < 600, "a hint is a sentence or two, never a dump"


# --- exercise 1: three_way_fanout -----------------------------------------------------------


def fanout_verdict(runs: SimpleNamespace, key: str, run_key: str | None = None) -> Verdict:
    return selfcheck.three_way_fanout(runs.run[run_key or key], my_fanout=runs.wf[key])


@pytest.mark.parametrize("key", ["right", "four"])
def test_three_or_more_overlapping_branches_pass(runs: SimpleNamespace, key: str) -> None:
    verdict = fanout_verdict(runs, key)
    assert_pass(verdict, "branches overlapped", "faster than a chain of them")
    speedup = float(verdict.message.split(", ")[-1].split("x")[0])
    assert speedup >= 2.5


@pytest.mark.parametrize(("key", "says"), [
    ("two", "fans out to 2 branches at most"),
    ("chain", "no node with several edges out"),
    ("no_join", "never joined again"),
    ("tiny", "almost no time"),
    ("uneven", "a fan-out lasts as long as its slowest branch"),
    ("blocking", "async def agent that calls time.sleep"),
    ("broken", "ended failed"),
    ("duplicate", "pre-flight rejected my_fanout"),
])
def test_fanouts_that_do_not_make_it_hint_where_to_look(runs: SimpleNamespace, key: str,
                                                        says: str) -> None:
    assert_hint(fanout_verdict(runs, key), says)


def test_the_run_must_be_a_run_of_my_fanout(runs: SimpleNamespace) -> None:
    other = WorkflowDefinition("something_else")
    assert_hint(selfcheck.three_way_fanout(runs.run["right"], my_fanout=other),
                "is a run of 'my_fanout', not of my_fanout ('something_else')")


def test_no_run_yet_points_at_the_run_cell(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.three_way_fanout(None, my_fanout=runs.wf["right"]),
                "run the cell under the answer cell")


def test_an_unset_answer_asks_for_it_before_anything_else() -> None:
    assert str(selfcheck.three_way_fanout(None, my_fanout=None)) == (
        "HINT: set my_fanout (your three-way fan-out) in the answer cell above")
    assert_hint(selfcheck.three_way_fanout(None), "my_fanout is not defined")


@pytest.mark.parametrize("junk", WRONG_TYPES[1:])
def test_a_wrong_type_of_workflow_is_a_hint(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(selfcheck.three_way_fanout(runs.run["right"], my_fanout=junk),
                "my_fanout should be a workflow")


@pytest.mark.parametrize("junk", WRONG_TYPES[1:])
def test_a_wrong_type_of_run_is_a_hint(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(selfcheck.three_way_fanout(junk, my_fanout=runs.wf["right"]),
                "ex1_result should be the result of a run")


# --- exercise 2: branch_failure -------------------------------------------------------------

RIGHT_PREDICTIONS = {"join_prediction": "never starts", "siblings_prediction": "finish",
                     "status_prediction": "failed"}


def failure_verdict(runs: SimpleNamespace, late: bool = False, **predictions: Any) -> Verdict:
    run, wf = (runs.late_run, runs.late) if late else (runs.flaky_run, runs.flaky)
    return selfcheck.branch_failure(run, wf, **{**RIGHT_PREDICTIONS, **predictions})


@pytest.mark.parametrize("late", [False, True], ids=["fails-first", "fails-last"])
def test_right_predictions_pass_whenever_the_branch_fails(runs: SimpleNamespace,
                                                         late: bool) -> None:
    assert_pass(failure_verdict(runs, late), "writer never starts", "branches finish",
                "the run is failed", "market data service is down")


def test_predictions_are_read_in_any_case(runs: SimpleNamespace) -> None:
    assert_pass(failure_verdict(runs, join_prediction="  Never Starts ",
                                status_prediction="FAILED"))


@pytest.mark.parametrize(("wrong", "says"), [
    ({"join_prediction": "runs"}, "join_prediction: find writer in your run's event table"),
    ({"join_prediction": "is skipped"}, "join_prediction: "),
    ({"siblings_prediction": "are cancelled"}, "siblings_prediction: read the rows after"),
    ({"status_prediction": "completed"}, "status_prediction: read the first line"),
    ({"status_prediction": "cancelled"}, "status_prediction: "),
])
def test_each_wrong_prediction_is_named_without_the_answer(runs: SimpleNamespace,
                                                           wrong: dict[str, str],
                                                           says: str) -> None:
    verdict = failure_verdict(runs, **wrong)
    assert_hint(verdict, "1 prediction of 3 did not happen", says)
    right = RIGHT_PREDICTIONS[next(iter(wrong))]
    assert f"'{right}'" not in verdict.message and f'"{right}"' not in verdict.message


def test_three_wrong_predictions_are_all_named(runs: SimpleNamespace) -> None:
    verdict = failure_verdict(runs, join_prediction="runs", siblings_prediction="are cancelled",
                              status_prediction="completed")
    assert_hint(verdict, "3 predictions of 3", "join_prediction", "siblings_prediction",
                "status_prediction")


def test_a_run_without_a_failure_points_back_at_the_run_cell(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.branch_failure(runs.run["right"], runs.flaky, **RIGHT_PREDICTIONS),
                "has no failed branch")


@pytest.mark.parametrize("junk", ["maybe", "it runs", 3, ["runs"], {"runs": 1}, True,
                                  math.nan, "todo", "x" * 100_000])
def test_a_prediction_that_is_not_a_choice_is_a_hint(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(failure_verdict(runs, join_prediction=junk),
                "join_prediction should be one of 'runs', 'is skipped' or 'never starts'")


def test_unset_predictions_are_named_together(runs: SimpleNamespace) -> None:
    verdict = selfcheck.branch_failure(runs.flaky_run, runs.flaky, join_prediction=None,
                                       siblings_prediction=None, status_prediction=None)
    assert_hint(verdict, "set join_prediction", "siblings_prediction", "status_prediction")


# --- exercise 3: capstone_fan_points ------------------------------------------------------


def right_fan_points(workflow: Any) -> tuple[list[str], list[str]]:
    """What a learner who got it right writes: forward edges only, counted both ways."""
    outs: dict[str, set[str]] = {}
    ins: dict[str, set[str]] = {}
    for edge in workflow.edges:
        if edge.max_iterations:
            continue
        outs.setdefault(edge.source, set()).add(edge.target)
        ins.setdefault(edge.target, set()).add(edge.source)
    return ([n for n, targets in outs.items() if len(targets) > 1],
            [n for n, sources in ins.items() if len(sources) > 1])


def every_edge(workflow: Any) -> tuple[list[str], list[str]]:
    """The slip: loop edges counted like any other."""
    outs: dict[str, int] = {}
    ins: dict[str, int] = {}
    for edge in workflow.edges:
        outs[edge.source] = outs.get(edge.source, 0) + 1
        ins[edge.target] = ins.get(edge.target, 0) + 1
    return [n for n, k in outs.items() if k > 1], [n for n, k in ins.items() if k > 1]


def points_verdict(runs: SimpleNamespace, function: Any) -> Verdict:
    return selfcheck.capstone_fan_points(runs.pipeline, runs.nested, fan_points=function)


def test_the_truth_is_the_capstones_shape(runs: SimpleNamespace) -> None:
    assert fan_points_of(runs.pipeline) == (["researcher"], ["writer"])
    assert fan_points_of(runs.nested) == (["researcher", "technical"],
                                          ["technical_summary", "writer"])


def test_a_function_that_reads_the_edges_passes(runs: SimpleNamespace) -> None:
    assert_pass(points_verdict(runs, right_fan_points), "fan-out researcher", "fan-in writer",
                "a chain and a workflow with a loop")


@pytest.mark.parametrize("shape", [
    lambda out, in_: (set(out), set(in_)),
    lambda out, in_: [tuple(out), tuple(in_)],
], ids=["sets", "list-of-tuples"])
def test_other_collections_of_ids_pass(runs: SimpleNamespace, shape: Callable) -> None:
    assert_pass(points_verdict(runs, lambda wf: shape(*right_fan_points(wf))))


def test_nodes_instead_of_ids_pass(runs: SimpleNamespace) -> None:
    def as_nodes(wf: Any) -> tuple[list[Any], list[Any]]:
        out, in_ = right_fan_points(wf)
        return [wf.node(n) for n in out], [wf.node(n) for n in in_]
    assert_pass(points_verdict(runs, as_nodes))


@pytest.mark.parametrize(("function", "says", "hides"), [
    (lambda wf: ([], []), "fan_out misses a node: look for one with solid arrows out", None),
    (every_edge, "fan_out names quality_gate, but one of its edges is a dashed loop edge",
     "researcher"),
    (lambda wf: tuple(reversed(right_fan_points(wf))), "you swapped the two lists", "researcher"),
    (lambda wf: (["researcher"], ["writer"]), "not for nested (section 6's nested fan-out)",
     "technical"),
    (lambda wf: (right_fan_points(wf)[0], [*right_fan_points(wf)[1], "hitl_gate"]),
     "fan_in names hitl_gate, but fewer than two other nodes have edges into it", None),
    (lambda wf: ([n.id for n in wf.nodes], []), "fan_out names", None),
    (lambda wf: (["researcher", "researcher"], ["writer"]), "names 'researcher' twice", None),
    (lambda wf: (["editor"], ["writer"]), "'editor' is not a node of this workflow", None),
    (lambda wf: None, "should return two lists, (fan_out, fan_in), not None", None),
    (lambda wf: "researcher", "should return two lists", None),
    (lambda wf: ("researcher", "writer"), "should return two lists", None),
    (lambda wf: ([1], []), "should hold node ids in quotes, not the number 1", None),
    (lambda wf: ([None], []), "not None", None),
    (lambda wf: 1 / 0, "fan_points(pipeline) raised ZeroDivisionError", None),
    (lambda wf: right_fan_points(wf) if wf.name == "production_pipeline" or
     wf.name == "nested_fan_out" else (["draft"], []), "not for chain (three nodes in a row",
     None),
])
def test_wrong_functions_hint_where_to_look(runs: SimpleNamespace, function: Callable,
                                            says: str, hides: str | None) -> None:
    assert_hint(points_verdict(runs, function), says, hides=hides)


def test_counting_a_loop_edge_into_a_branch_is_caught_on_a_workflow_not_seen(
        runs: SimpleNamespace) -> None:
    def in_edges_with_loops(wf: Any) -> tuple[list[str], list[str]]:
        out, _ = right_fan_points(wf)
        return out, every_edge(wf)[1]
    verdict = points_verdict(runs, in_edges_with_loops)
    assert_hint(verdict, "not for fan_with_loop", "fan_in names risk", "dashed loop edge")


@pytest.mark.parametrize("junk", [["researcher"], {"a": 1}, 2.5, "fan_points", object(), True,
                                  WorkflowDefinition])
def test_fan_points_that_is_not_a_function_is_a_hint(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(points_verdict(runs, junk), "fan_points should be a function")


def test_unset_fan_points_asks_for_it(runs: SimpleNamespace) -> None:
    assert_hint(points_verdict(runs, None), "set fan_points")


def test_without_the_lessons_workflows_the_check_says_which_cells_to_run() -> None:
    verdict = selfcheck.capstone_fan_points(None, None, fan_points=right_fan_points)
    assert_hint(verdict, "pipeline is not there yet")


def test_an_async_fan_points_is_a_hint_not_a_crash(runs: SimpleNamespace) -> None:
    async def fan_points(workflow: Any) -> tuple[list[str], list[str]]:
        await asyncio.sleep(0)
        return right_fan_points(workflow)
    assert_hint(points_verdict(runs, fan_points), "a plain def, not an async def")


def test_a_run_of_an_older_my_fanout_asks_for_the_run_cell_again(runs: SimpleNamespace) -> None:
    edited = WorkflowDefinition("my_fanout").add_node(Node("planner", slow_agent("p", 0)))
    edited.add_node(Node("writer", slow_agent("w", 0)))
    for name in ("cost", "risk", "market"):
        edited.add_node(Node(name, slow_agent(name, 0))).add_edge("planner", name)
        edited.add_edge(name, "writer")
    assert_hint(selfcheck.three_way_fanout(runs.run["right"], my_fanout=edited),
                "cost, market, risk never ran in ex1_result: run the cell under the answer cell")
