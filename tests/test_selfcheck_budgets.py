"""Lesson 07's self-checks, judged against real mock runs of the capstone under budgets,
as the lesson makes them.

Each check gets right answers (PASS), wrong answers, values of the wrong type, filler
and huge values (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import MockAgent, MockCritic, Policy, Role, fixed_approver
from meshflow_nb.notebook import selfcheck
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

APPROVE = fixed_approver(True, "tester", "approved in a test")
EX1_PASSING = (0.0615, 0.065, 0.07, 0.077)
"""Budgets under which exactly 6 executions of the capstone run: at or above 0.061446
(the spend after quality_gate plus writer #2's estimate) and below 0.077097 (the spend
after writer #2 plus quality_gate #2's estimate). Both stops happen inside the range."""
EX2_BUDGET = 0.045
OVER = 0.049173 - EX2_BUDGET
"""Exercise 2's run spends $0.049173 (through quality_gate) against a cap of $0.045."""
HUGE = "x" * 1_000_000
EXPLANATION = ("The writer read and wrote exactly the same tokens in both runs; only the "
               "price per million tokens changed, and haiku's is a third of sonnet's.")


@pytest.fixture(scope="module")
def runs() -> Iterator[SimpleNamespace]:
    """The lesson's runs: baseline, exercise 1 under many budgets, exercise 2, and
    exercise 3 with one node, two nodes or no node on another model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.01")
        pipeline = build_capstone_pipeline()

        def run(workflow: Any = pipeline, budget: float = 10.0) -> Any:
            """A run under a policy of its own: breakers are kept per policy, so a failed
            run (the unknown model) must not open the breaker of the runs after it."""
            return workflow.run(CAPSTONE_TASK, approver=APPROVE, policy=Policy(budget_usd=budget))

        found = SimpleNamespace(baseline=run())
        found.ex1 = {b: run(budget=b) for b in (*EX1_PASSING, 0.01, 0.03, 0.05, 0.06, 0.078, 1.0)}
        found.ex2 = run(budget=EX2_BUDGET)
        found.ex2_before = run(budget=0.05)
        found.pipelines = {
            "haiku": writer_on("claude-haiku-4-5"), "opus": writer_on("claude-opus-4-1"),
            "same": writer_on("claude-sonnet-4-5"), "free": writer_on("mock-free"),
            "unknown": writer_on("gpt-nine"),
            "two": build_capstone_pipeline(agents={
                "writer": MockAgent(Role.EXECUTOR, angle="writer", model="claude-haiku-4-5"),
                "publisher": MockAgent(Role.ORCHESTRATOR, model="claude-haiku-4-5")}),
            "critic": build_capstone_pipeline(agents={
                "quality_gate": MockCritic(model="claude-haiku-4-5", threshold=0.8)}),
            "other_work": build_capstone_pipeline(quality_scores=[0.9], agents={
                "writer": MockAgent(Role.EXECUTOR, angle="writer", model="claude-haiku-4-5")}),
        }
        found.ex3 = {name: run(workflow) for name, workflow in found.pipelines.items()}
        yield found


def writer_on(model: str) -> Any:
    """Exercise 3's answer: the capstone with its writer on ``model``."""
    return build_capstone_pipeline(
        agents={"writer": MockAgent(Role.EXECUTOR, angle="writer", model=model)})


# --- exercise 1: budget_for_nodes --------------------------------------------------------


def budget_check(runs: SimpleNamespace, budget: Any, result: Any = "same",
                 nodes: Any = 6) -> Any:
    """budget_for_nodes on the run made under ``budget`` (or under ``result``)."""
    made = runs.ex1.get(budget) if result == "same" else result
    return selfcheck.budget_for_nodes(nodes, made, ex1_budget=budget)


@pytest.mark.parametrize("budget", EX1_PASSING)
def test_budget_for_nodes_passes_every_budget_that_stops_after_six(runs: SimpleNamespace,
                                                                  budget: float) -> None:
    verdict = budget_check(runs, budget)
    assert_pass(verdict, "exactly 6 node executions ran", "writer #2")
    stop = "refused quality_gate #2 before it started" if budget >= 0.067734 else \
        "stopped the run after writer #2"
    assert stop in verdict.message


def test_budget_for_nodes_accepts_numpy_numbers(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.budget_for_nodes(np.int64(6), runs.ex1[0.065],
                                           ex1_budget=np.float64(0.065)))


@pytest.mark.parametrize(("budget", "says"), [
    (0.05, "the layer refused writer #2 before it started"),   # the actual spend, not the estimate
    (0.06, "plus that execution's estimate_usd"),
    (0.03, "only 4 node executions ran: your budget was already passed after writer"),
    (0.078, "8 node executions ran, and ex1_nodes asks for 6: the layer let publisher finish"),
    (1.0, "the budget never stopped your run"),
])
def test_budget_for_nodes_points_at_the_check_that_stopped_the_run(runs: SimpleNamespace,
                                                                  budget: float,
                                                                  says: str) -> None:
    assert_hint(budget_check(runs, budget), says, hides="0.0614")


def test_budget_for_nodes_says_parallel_work_cannot_be_split(runs: SimpleNamespace) -> None:
    verdict = budget_check(runs, 0.01, nodes=2)
    assert_hint(verdict, "3 node executions ran", "analyst_a ran at the same time",
                "try another ex1_nodes")


def test_budget_for_nodes_needs_the_run_of_the_answer(runs: SimpleNamespace) -> None:
    assert_hint(budget_check(runs, 0.065, result=None), "run the cell after your answer")
    assert_hint(budget_check(runs, 0.07, result=runs.ex1[0.065]),
                "ex1_result comes from another budget")
    assert_hint(budget_check(runs, 0.065, result=runs.baseline),
                "ex1_result comes from another budget")


@pytest.mark.parametrize("value", [*WRONG_TYPES, math.nan, math.inf, -0.05, HUGE, [0.065]])
def test_budget_for_nodes_answers_any_value_with_a_hint(runs: SimpleNamespace,
                                                       value: Any) -> None:
    verdict = selfcheck.budget_for_nodes(6, runs.ex1[0.065], ex1_budget=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_budget_for_nodes_refuses_zero_and_quoted_numbers(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.budget_for_nodes(6, None, ex1_budget=0), "Policy refuses a budget")
    assert_hint(selfcheck.budget_for_nodes(6, None, ex1_budget="$0.065"), "drop the quotes")


@pytest.mark.parametrize("given", [None, "six", 0, -1, 6.5])
def test_budget_for_nodes_needs_a_count_of_executions(runs: SimpleNamespace, given: Any) -> None:
    assert_hint(selfcheck.budget_for_nodes(given, runs.ex1[0.065], ex1_budget=0.065))


def test_budget_for_nodes_needs_a_run(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.budget_for_nodes(6, "a run", ex1_budget=0.065),
                "ex1_result should be the result of a run")
    assert_hint(selfcheck.budget_for_nodes(6, runs.ex1[0.065]),
                "ex1_budget is not defined")


# --- exercise 2: stop_payload -----------------------------------------------------------


def payload(runs: SimpleNamespace, result: Any = None, **answers: Any) -> Any:
    values = {"stop_when": "after", "stop_node": "quality_gate", "over_budget_by": OVER,
              **answers}
    return selfcheck.stop_payload(runs.ex2 if result is None else result, **values)


@pytest.mark.parametrize("over", [OVER, 0.0042, 0.00417, np.float64(0.0042)])
def test_stop_payload_passes_the_events_answers(runs: SimpleNamespace, over: float) -> None:
    assert_pass(payload(runs, over_budget_by=over), "the after check stopped the run at "
                "quality_gate", "$0.0492 against a cap of $0.045, $0.0042 over")


@pytest.mark.parametrize(("when", "node"), [("AFTER", "quality_gate"),
                                            (" after ", "'quality_gate'"),
                                            ("after", "Quality_Gate")])
def test_stop_payload_accepts_ways_of_writing_the_answers(runs: SimpleNamespace, when: str,
                                                          node: str) -> None:
    assert_pass(payload(runs, stop_when=when, stop_node=node))


def test_stop_payload_judges_a_before_stop_too(runs: SimpleNamespace) -> None:
    verdict = payload(runs, runs.ex2_before, stop_when="before", stop_node="writer",
                      over_budget_by=0)
    assert_pass(verdict, "the before check refused writer", "nothing was spent past the cap")
    assert_hint(payload(runs, runs.ex2_before, stop_when="before", stop_node="writer",
                        over_budget_by=0.049173 + 0.012273 - 0.05),
                "how far the estimate would have taken the spend")


@pytest.mark.parametrize(("answers", "says"), [
    ({"stop_when": "before"}, "quality_gate has a node_complete just before the event"),
    ({"stop_node": "writer"}, "the event names its node in node_id"),
    ({"stop_node": "budget"}, "'budget' is not a node of ex2_result"),
    ({"over_budget_by": 0.049173}, "that is what the run had spent"),
    ({"over_budget_by": 0.045}, "that is the budget itself"),
    ({"over_budget_by": 0.0}, "compare the spent and cap items"),
    ({"over_budget_by": 0.01}, "compare the spent and cap items"),
])
def test_stop_payload_points_at_the_field_to_read(runs: SimpleNamespace, answers: dict,
                                                  says: str) -> None:
    assert_hint(payload(runs, **answers), says, hides="0.0042")


@pytest.mark.parametrize("field", ["stop_when", "stop_node", "over_budget_by"])
@pytest.mark.parametrize("value", [*WRONG_TYPES[1:], math.nan, HUGE, ["after"]])
def test_stop_payload_answers_any_value_with_a_hint(runs: SimpleNamespace, field: str,
                                                    value: Any) -> None:
    verdict = payload(runs, **{field: value})
    assert_hint(verdict)
    assert len(verdict.message) < 300


@pytest.mark.parametrize("value", FILLER)
def test_stop_payload_refuses_filler_for_the_node(runs: SimpleNamespace, value: str) -> None:
    assert_hint(payload(runs, stop_node=value))


def test_stop_payload_needs_a_run_with_a_budget_stop(runs: SimpleNamespace) -> None:
    assert_hint(payload(runs, runs.baseline), "ex2_result has no budget_exceeded event")
    assert_hint(selfcheck.stop_payload(None, stop_when="after", stop_node="writer",
                                       over_budget_by=0.0), "ex2_result is not there yet")
    assert_hint(selfcheck.stop_payload(runs.ex2), "stop_when, stop_node and over_budget_by "
                                                  "are not defined")


# --- exercise 3: model_change -----------------------------------------------------------


def model(runs: SimpleNamespace, name: str = "haiku", **answers: Any) -> Any:
    values = {"ex3_pipeline": runs.pipelines.get(name), "ex3_ratio": 1 / 3,
              "ex3_explanation": EXPLANATION, **answers}
    return selfcheck.model_change(runs.baseline, runs.ex3.get(name), **values)


@pytest.mark.parametrize("ratio", [1 / 3, 0.333, 0.33, np.float64(0.3333)])
def test_model_change_passes_the_ratio_and_a_real_explanation(runs: SimpleNamespace,
                                                              ratio: float) -> None:
    assert_pass(model(runs, ex3_ratio=ratio), "writer on claude-haiku-4-5 cost 0.333x",
                "the same 3,862 tokens")


def test_model_change_passes_a_dearer_model_and_another_node(runs: SimpleNamespace) -> None:
    dearer = ("Same tokens in and out, but opus's price per million tokens is five times "
              "sonnet's, so the writer is more expensive.")
    assert_pass(model(runs, "opus", ex3_ratio=5, ex3_explanation=dearer), "cost 5x")
    assert_pass(model(runs, "critic"), "quality_gate on claude-haiku-4-5")


@pytest.mark.parametrize(("name", "says"), [
    ("same", "every node of your run used the same model as in baseline"),
    ("two", "writer, publisher changed model: change one node only"),
    ("free", "cost nothing on its new model"),
    ("unknown", "not in the price table"),
    ("other_work", "ran other nodes, or ran them another number of times"),
])
def test_model_change_points_at_what_to_change(runs: SimpleNamespace, name: str,
                                               says: str) -> None:
    assert_hint(model(runs, name), says)


@pytest.mark.parametrize(("ratio", "says"), [
    (3, "that is baseline's cost divided by yours"),
    (33.3, "not as a percentage"),
    (0.5, "divide the cost_usd of writer in your run by its cost_usd in baseline"),
    (1.0, "divide the cost_usd of writer"),
])
def test_model_change_points_at_the_ratio(runs: SimpleNamespace, ratio: float, says: str) -> None:
    assert_hint(model(runs, ex3_ratio=ratio), says, hides="0.333")


@pytest.mark.parametrize(("text", "says"), [
    ("Haiku is simply a much smaller and faster model than sonnet overall", "what stayed the "
     "same between the two runs"),
    ("The writer used the same tokens but the new model is more expensive per million",
     "your run cost less than baseline, not more"),
    *[(text, "") for text in FILLER if text.strip()],
    ("too short", "too short"),
])
def test_model_change_judges_the_explanation(runs: SimpleNamespace, text: str, says: str) -> None:
    assert_hint(model(runs, ex3_explanation=text), says)


def test_model_change_says_a_dearer_run_did_not_cost_less(runs: SimpleNamespace) -> None:
    text = "The same tokens, but at opus's price per million the writer came out cheaper."
    assert_hint(model(runs, "opus", ex3_ratio=5, ex3_explanation=text),
                "your run cost more than baseline, not less")


@pytest.mark.parametrize("field", ["ex3_pipeline", "ex3_ratio", "ex3_explanation"])
@pytest.mark.parametrize("value", [*WRONG_TYPES[1:], math.nan, math.inf, -1, HUGE])
def test_model_change_answers_any_value_with_a_hint(runs: SimpleNamespace, field: str,
                                                    value: Any) -> None:
    verdict = model(runs, **{field: value})
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_model_change_refuses_quoted_and_percentage_ratios(runs: SimpleNamespace) -> None:
    assert_hint(model(runs, ex3_ratio="0.333"), "drop the quotes")
    assert_hint(model(runs, ex3_ratio="33%"), "50% is 0.5")
    assert_hint(model(runs, ex3_ratio=0), "above zero")


def test_model_change_needs_the_run_of_the_pipeline(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.model_change(runs.baseline, None, ex3_pipeline=runs.pipelines["haiku"],
                                       ex3_ratio=1 / 3, ex3_explanation=EXPLANATION),
                "run the cell after your pipeline")
    renamed = build_capstone_pipeline(name="renamed")
    assert_hint(model(runs, ex3_pipeline=renamed), "ex3_result is not a run of ex3_pipeline")
    assert_hint(selfcheck.model_change(None, runs.ex3["haiku"],
                                       ex3_pipeline=runs.pipelines["haiku"], ex3_ratio=1 / 3,
                                       ex3_explanation=EXPLANATION), "baseline is not there yet")
