"""Lesson 13's self-checks, judged against real mock runs of the capstone under carbon
budgets and with other settings, as the lesson makes them.

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
REJECT = fixed_approver(False, "tester", "rejected in a test")
BUDGETS = (0.15, 0.3, 0.5, 1.0, 5.0)
"""Carbon budgets: after the researcher (0.156 g), past both parallel analysts, after the
first draft (0.718 g), refusing the revision (0.897 + 0.239 g), and never."""
HUGE = "x" * 1_000_000
EXPLANATION = ("The grams follow the tokens on one model, and the writer reads both analyses, "
               "writes the longest draft, and runs twice because of the quality loop.")
HAIKU = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def runs() -> Iterator[SimpleNamespace]:
    """The lesson's runs: baseline, exercise 1 under each of BUDGETS, a rejected run, and
    exercise 3 under several one-setting changes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.01")
        pipeline = build_capstone_pipeline()
        found = SimpleNamespace(baseline=pipeline.run(CAPSTONE_TASK, approver=APPROVE,
                                                      policy=Policy()))
        found.ex1 = {b: pipeline.run(CAPSTONE_TASK, approver=APPROVE,
                                     policy=Policy(carbon_budget_g=b)) for b in BUDGETS}
        found.rejected = pipeline.run(CAPSTONE_TASK, approver=REJECT, policy=Policy())
        found.unmeasured = pipeline.run(CAPSTONE_TASK, approver=APPROVE,
                                        policy=Policy(enable_environmental=False))
        found.settings = {
            "passing": {"quality_scores": [0.9]},
            "two_on_haiku": {"agents": {
                "writer": MockAgent(Role.EXECUTOR, angle="writer", model=HAIKU),
                "quality_gate": MockCritic(model=HAIKU)}},
            "writer_on_haiku": {"agents": {
                "writer": MockAgent(Role.EXECUTOR, angle="writer", model=HAIKU)}},
            "model": {"model": HAIKU},
            "no_loop": {"max_revisions": 0},
            "more_loops": {"quality_scores": [0.5]},
        }
        found.ex3 = {name: build_capstone_pipeline(**settings).run(
            CAPSTONE_TASK, approver=APPROVE, policy=Policy())
            for name, settings in found.settings.items()}
        yield found


# --- exercise 1: carbon_stop_at ----------------------------------------------------------


def stop_check(runs: SimpleNamespace, node: Any, budget: Any, result: Any = "same") -> Any:
    """carbon_stop_at on the run made under ``budget`` (or on ``result``)."""
    made = runs.ex1.get(budget) if result == "same" else result
    return selfcheck.carbon_stop_at(runs.baseline, made, ex1_node=node, ex1_budget_g=budget)


@pytest.mark.parametrize(("node", "budget", "says"), [
    ("researcher", 0.15, "the after check stopped the run once researcher"),
    ("writer", 0.5, "the after check stopped the run once writer had taken it to 0.718 g"),
    ("writer", 1.0, "the before check refused writer: 0.897 g emitted plus its estimate"),
])
def test_carbon_stop_at_passes_a_budget_that_stops_at_the_node(runs: SimpleNamespace, node: str,
                                                              budget: float, says: str) -> None:
    assert_pass(stop_check(runs, node, budget), f"{budget:g} g stopped the run at {node}", says)


def test_carbon_stop_at_accepts_numpy_and_quoted_node_ids(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.carbon_stop_at(runs.baseline, runs.ex1[0.5], ex1_node="'writer'",
                                         ex1_budget_g=np.float64(0.5)))


@pytest.mark.parametrize(("node", "budget", "says"), [
    ("quality_gate", 0.5, "stopped the run at writer, before it reached quality_gate"),
    ("researcher", 0.5, "stopped the run at writer, after researcher"),
    ("analyst_a", 0.3, "analyst_a and analyst_b: they ran at the same time"),
    ("publisher", 5.0, "the carbon budget never stopped your run"),
    ("editor", 0.5, "'editor' is not a node of the capstone"),
    ("hitl_gate", 5.0, "hitl_gate calls no model"),
    ("hitl_gate", 0.5, "hitl_gate calls no model"),
])
def test_carbon_stop_at_points_at_where_the_run_stopped(runs: SimpleNamespace, node: str,
                                                       budget: float, says: str) -> None:
    assert_hint(stop_check(runs, node, budget), says)


def test_carbon_stop_at_needs_the_run_of_the_answer(runs: SimpleNamespace) -> None:
    assert_hint(stop_check(runs, "writer", 0.5, result=None), "run the cell after your answer")
    assert_hint(stop_check(runs, "writer", 0.5, result=runs.ex1[1.0]),
                "ex1_result comes from another budget")
    assert_hint(stop_check(runs, "writer", 0.5, result=runs.baseline),
                "ex1_result comes from another budget")


@pytest.mark.parametrize("value", [*WRONG_TYPES, math.nan, math.inf, -0.5, 0, HUGE, [0.5]])
def test_carbon_stop_at_answers_any_budget_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.carbon_stop_at(runs.baseline, runs.ex1[0.5], ex1_node="writer",
                                       ex1_budget_g=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300


@pytest.mark.parametrize("value", [*WRONG_TYPES, *FILLER, HUGE, "the writer node"])
def test_carbon_stop_at_answers_any_node_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.carbon_stop_at(runs.baseline, runs.ex1[0.5], ex1_node=value,
                                       ex1_budget_g=0.5)
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_carbon_stop_at_tells_a_quoted_budget_what_to_drop(runs: SimpleNamespace) -> None:
    for budget, says in (("0.5 g", "drop the quotes and the g"),
                         ("0.5", "drop the quotes"), (0, "Policy refuses one of zero")):
        assert_hint(selfcheck.carbon_stop_at(runs.baseline, None, ex1_node="writer",
                                             ex1_budget_g=budget), says)


# --- exercise 2: largest_footprint -------------------------------------------------------


@pytest.mark.parametrize("run", ["baseline", "rejected"])
def test_largest_footprint_passes_the_writer_with_a_reason(runs: SimpleNamespace,
                                                           run: str) -> None:
    verdict = selfcheck.largest_footprint(getattr(runs, run), ex2_node="writer",
                                          ex2_explanation=EXPLANATION)
    assert_pass(verdict, "writer emitted the most: 0.556 g", "over 2 executions")


@pytest.mark.parametrize(("node", "says"), [
    ("quality_gate", "summed over its executions"),
    ("editor", "'editor' is not a node of your run"),
    ("hitl_gate", "hitl_gate did not emit anything"),
])
def test_largest_footprint_points_at_the_sum_per_node(runs: SimpleNamespace, node: str,
                                                      says: str) -> None:
    verdict = selfcheck.largest_footprint(runs.baseline, ex2_node=node,
                                          ex2_explanation=EXPLANATION)
    assert_hint(verdict, says, hides="0.556")


def test_largest_footprint_wants_the_reason_not_only_the_node(runs: SimpleNamespace) -> None:
    verdict = selfcheck.largest_footprint(
        runs.baseline, ex2_node="writer",
        ex2_explanation="Because it is the most important node of the whole pipeline here.")
    assert_hint(verdict, "what the grams are computed from")


def test_largest_footprint_needs_the_estimate_on(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.largest_footprint(runs.unmeasured, ex2_node="writer",
                                            ex2_explanation=EXPLANATION),
                "enable_environmental off")


@pytest.mark.parametrize("value", [*WRONG_TYPES, *FILLER, HUGE, "x " * 50])
def test_largest_footprint_answers_any_explanation_with_a_hint(runs: SimpleNamespace,
                                                               value: Any) -> None:
    verdict = selfcheck.largest_footprint(runs.baseline, ex2_node="writer",
                                          ex2_explanation=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_largest_footprint_needs_a_run(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.largest_footprint(None, ex2_node="writer",
                                            ex2_explanation=EXPLANATION), "result")


# --- exercise 3: grams_cut ---------------------------------------------------------------


def cut_check(runs: SimpleNamespace, name: str, settings: Any = "same") -> Any:
    """grams_cut on exercise 3's run ``name`` (with its own settings, or ``settings``)."""
    given = runs.settings[name] if settings == "same" else settings
    return selfcheck.grams_cut(runs.baseline, runs.ex3[name], ex3_settings=given)


@pytest.mark.parametrize(("name", "says"), [
    ("passing", "quality_scores=[0.9] cut the run from 1.514 g to 0.983 g, 35% less"),
    ("two_on_haiku", "40% less, and it still published"),
])
def test_grams_cut_passes_one_setting_that_cuts_a_third(runs: SimpleNamespace, name: str,
                                                        says: str) -> None:
    assert_pass(cut_check(runs, name), says)


@pytest.mark.parametrize(("name", "says"), [
    ("writer_on_haiku", "your setting cut 24%"),
    ("model", "model= of build_capstone_pipeline is for live agents"),
    ("no_loop", "pre-flight rejected the pipeline"),
    ("more_loops", "no less than baseline's 1.514 g"),
])
def test_grams_cut_says_how_far_the_setting_got(runs: SimpleNamespace, name: str,
                                               says: str) -> None:
    assert_hint(cut_check(runs, name), says)


def test_grams_cut_wants_one_setting_and_the_estimate_on(runs: SimpleNamespace) -> None:
    assert_hint(cut_check(runs, "passing", {"quality_scores": [0.9], "max_revisions": 2}),
                "changes 2 settings: change one")
    assert_hint(selfcheck.grams_cut(runs.baseline, runs.unmeasured,
                                    ex3_settings={"max_revisions": 2}),
                "enable_environmental off")
    assert_hint(selfcheck.grams_cut(runs.baseline, None, ex3_settings={"max_revisions": 1}),
                "run the cell after your answer")


def test_grams_cut_wants_the_work_done(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.grams_cut(runs.baseline, runs.rejected,
                                    ex3_settings={"max_revisions": 2}), "without publishing")
    assert_hint(selfcheck.grams_cut(runs.baseline, runs.ex1[0.5],
                                    ex3_settings={"max_revisions": 2}), "without publishing")
    assert_hint(cut_check(runs, "passing", {"name": "other"}), "not a run of ex3_settings")


@pytest.mark.parametrize("value", [*WRONG_TYPES, *FILLER, HUGE, {}, {"speed": 2},
                                   {"max_revisions": 1, "x": 2}])
def test_grams_cut_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.grams_cut(runs.baseline, runs.ex3["passing"], ex3_settings=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300
