"""Lesson 14's self-checks, judged against real mock runs of the capstone and the real
learning store beside their ledger, as the lesson makes them.

Each check gets right answers (PASS), wrong answers, values of the wrong type, filler and
huge values (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import Policy, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import learning_store, selfcheck
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

APPROVE = fixed_approver(True, "tester", "approved in a test")
POLICY = Policy(enable_cross_run_learning=True)
REQUEST = ("coverage: answer the researcher's open question directly; the draft currently "
           "leaves it out.")
POLISH = "structure (optional): the section headings could be more specific."
RISK = ("A wrong or hostile review is stored as a lesson and fed to every later run, so one "
        "bad reviewer keeps steering the writer.")
HUGE = "x" * 1_000_000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Fresh ledgers with their stores, runs on them, and a way to make more."""
    base = tmp_path_factory.mktemp("learning")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        count = iter(range(1000))

        def fresh() -> SimpleNamespace:
            ledger = ReplayLedger(base / f"l{next(count)}.duckdb")
            return SimpleNamespace(pipeline=ledger.attach(build_capstone_pipeline()),
                                   store=learning_store(ledger))

        def run(where: SimpleNamespace, policy: Policy = POLICY) -> Any:
            return where.pipeline.run(CAPSTONE_TASK, approver=APPROVE, policy=policy)

        ex1 = fresh()
        found = SimpleNamespace(fresh=fresh, run=run, ex1=ex1, first=run(ex1), second=run(ex1))
        yield found


def fewer(lab: SimpleNamespace, where: Any = None, first: Any = None, second: Any = None,
          **answers: Any) -> Any:
    values = {"ex1_revisions": (1, 0), "ex1_lesson": REQUEST, **answers}
    return selfcheck.fewer_revisions(first or lab.first, second or lab.second,
                                     (where or lab.ex1).store, **values)


# --- exercise 1: fewer_revisions ---------------------------------------------------------


@pytest.mark.parametrize("lesson", [
    REQUEST, REQUEST.upper(), f"  {REQUEST}  ",
    "Last time on a similar task the reviewer (quality_gate) asked: " + REQUEST,
    "answer the researcher's open question directly",
    "evidence: tie each key claim to one of the researcher's sources to check; the "
    "recommendation rests on assertion."])
def test_fewer_revisions_passes_the_lesson_the_second_run_got(lab: SimpleNamespace,
                                                              lesson: str) -> None:
    assert_pass(fewer(lab, ex1_lesson=lesson), "ex1_first needed 1 revision, ex1_second 0",
                "(coverage, evidence)")


def test_fewer_revisions_accepts_a_list_and_numpy_counts(lab: SimpleNamespace) -> None:
    assert_pass(fewer(lab, ex1_revisions=[np.int64(1), np.int64(0)]))


@pytest.mark.parametrize(("counts", "says"), [
    ((2, 1), "the first count: 2 is how often the writer ran"),
    ((1, 1), "the second count: 1 is how often the writer ran"),
    ((0, 0), "the first count does not match ex1_first"),
    ((1, 3), "the second count does not match ex1_second"),
])
def test_fewer_revisions_points_at_the_count_to_fix(lab: SimpleNamespace, counts: tuple,
                                                    says: str) -> None:
    assert_hint(fewer(lab, ex1_revisions=counts), says)


@pytest.mark.parametrize(("lesson", "says"), [
    (POLISH, "came with a passing score"),
    ("clarity (optional): a few long sentences could be split.", "from ex1_second itself"),
    ("Write shorter sentences and add more charts please", "is not a lesson ex1_store holds"),
])
def test_fewer_revisions_points_at_the_lesson_to_find(lab: SimpleNamespace, lesson: str,
                                                      says: str) -> None:
    assert_hint(fewer(lab, ex1_lesson=lesson), says, hides="open question")


@pytest.mark.parametrize("value", [*WRONG_TYPES, (1,), (1, 0, 0), ("1", "0"), (-1, 0),
                                   (math.nan, 0), HUGE])
def test_fewer_revisions_answers_any_count_with_a_hint(lab: SimpleNamespace,
                                                       value: Any) -> None:
    verdict = fewer(lab, ex1_revisions=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300


@pytest.mark.parametrize("value", [*WRONG_TYPES[1:], *FILLER, "too short", HUGE])
def test_fewer_revisions_answers_any_lesson_with_a_hint(lab: SimpleNamespace,
                                                        value: Any) -> None:
    verdict = fewer(lab, ex1_lesson=value)
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_fewer_revisions_needs_two_learning_runs_of_the_store(lab: SimpleNamespace) -> None:
    other = lab.fresh()
    assert_hint(fewer(lab, where=other), "no longer holds both runs")
    assert_hint(fewer(lab, first=lab.second, second=lab.first), "recorded before ex1_first")
    assert_hint(fewer(lab, second=lab.first), "are the same run")
    off = lab.run(lab.fresh(), Policy())
    assert_hint(fewer(lab, second=off), "enable_cross_run_learning on")
    assert_hint(selfcheck.fewer_revisions(None, lab.second, lab.ex1.store,
                                          ex1_revisions=(1, 0), ex1_lesson=REQUEST),
                "ex1_first is not there yet")
    assert_hint(selfcheck.fewer_revisions(lab.first, lab.second, "a store",
                                          ex1_revisions=(1, 0), ex1_lesson=REQUEST),
                "ex1_store should be the learning store")
    assert_hint(selfcheck.fewer_revisions(lab.first, lab.second, lab.ex1.store),
                "ex1_revisions and ex1_lesson are not defined")


# --- exercise 2: reset_store -------------------------------------------------------------


@pytest.fixture(scope="module")
def ex2(lab: SimpleNamespace) -> SimpleNamespace:
    """A taught store reset then run again; one run without the reset; one layer off."""
    reset = lab.fresh()
    first = lab.run(reset)
    lab.run(reset)
    reset.store.reset()
    after = lab.run(reset)
    unreset = lab.fresh()
    lab.run(unreset)
    again = lab.run(unreset)
    off = lab.run(unreset, Policy())
    return SimpleNamespace(reset=reset, first=first, after=after, unreset=unreset,
                           again=again, off=off)


def test_reset_store_passes_a_run_after_the_reset(ex2: SimpleNamespace) -> None:
    assert_pass(selfcheck.reset_store(ex2.first, ex2.reset.store, ex2_result=ex2.after),
                "after the reset the store held nothing", "needed 1 revision, as ex1_first did")


@pytest.mark.parametrize(("which", "store", "says"), [
    ("again", "unreset", "still holds outcomes of 1 other run"),
    ("off", "unreset", "ran with enable_cross_run_learning off"),
    ("again", "reset", "ex2_result is not in ex1_store"),
])
def test_reset_store_points_at_what_was_missed(ex2: SimpleNamespace, which: str, store: str,
                                               says: str) -> None:
    verdict = selfcheck.reset_store(ex2.first, getattr(ex2, store).store,
                                    ex2_result=getattr(ex2, which))
    assert_hint(verdict, says)


def test_reset_store_on_an_emptied_store(lab: SimpleNamespace, ex2: SimpleNamespace) -> None:
    empty = lab.fresh()
    assert_hint(selfcheck.reset_store(ex2.first, empty.store, ex2_result=ex2.after),
                "ex1_store is empty now")


@pytest.mark.parametrize("value", [*WRONG_TYPES[1:], HUGE, [None]])
def test_reset_store_answers_any_value_with_a_hint(ex2: SimpleNamespace, value: Any) -> None:
    verdict = selfcheck.reset_store(ex2.first, ex2.reset.store, ex2_result=value)
    assert_hint(verdict, "ex2_result should be the result of a run")
    assert len(verdict.message) < 300


def test_reset_store_unanswered(ex2: SimpleNamespace) -> None:
    assert_hint(selfcheck.reset_store(ex2.first, ex2.reset.store, ex2_result=None),
                "set ex2_result")


# --- exercise 3: learning_off ------------------------------------------------------------


@pytest.fixture(scope="module")
def ex3(lab: SimpleNamespace) -> SimpleNamespace:
    """A taught store, runs on it under the answer policies, and an emptied store."""
    taught = lab.fresh()
    lab.run(taught)
    policies = {"right": Policy(enable_cross_run_learning=False),
                "dev": Policy("dev"), "on": POLICY,
                "budget": Policy(enable_cross_run_learning=False, budget_usd=1.0)}
    results = {name: lab.run(taught, policy) for name, policy in policies.items()}
    empty = lab.fresh()
    lab.run(empty)
    empty.store.reset()
    results["empty"] = lab.run(empty, policies["right"])
    return SimpleNamespace(taught=taught, empty=empty, policies=policies, results=results)


def off(ex3: SimpleNamespace, name: str = "right", store: Any = None, **answers: Any) -> Any:
    values = {"ex3_risk": RISK, "ex3_policy": ex3.policies.get(name, ex3.policies["right"]),
              **answers}
    return selfcheck.learning_off(POLICY, store or ex3.taught.store,
                                  ex3.results.get(name), **values)


@pytest.mark.parametrize("risk", [
    RISK,
    "Runs stop being reproducible: the same cell gives a different result depending on "
    "what earlier runs left in the store.",
    "A prompt injection hidden in a reviewer's feedback would be replayed into the writer's "
    "prompt on every later run."])
def test_learning_off_passes_a_risk_and_the_layer_off(ex3: SimpleNamespace, risk: str) -> None:
    assert_pass(off(ex3, ex3_risk=risk), "enable_cross_run_learning=False",
                "needed 1 revision", "left nothing in the store")


@pytest.mark.parametrize(("name", "says"), [
    ("on", "ex3_policy still learns across runs"),
    ("dev", "ex3_policy changes mode"),
    ("budget", "ex3_policy changes budget_usd too"),
])
def test_learning_off_points_at_the_policy(ex3: SimpleNamespace, name: str, says: str) -> None:
    assert_hint(off(ex3, name), says, hides="enable_cross_run_learning=False")


def test_learning_off_needs_the_run_under_the_policy(ex3: SimpleNamespace) -> None:
    assert_hint(selfcheck.learning_off(POLICY, ex3.taught.store, None, ex3_risk=RISK,
                                       ex3_policy=ex3.policies["right"]),
                "run the cell after your answer")
    assert_hint(selfcheck.learning_off(POLICY, ex3.taught.store, ex3.results["dev"],
                                       ex3_risk=RISK, ex3_policy=ex3.policies["right"]),
                "not a run under ex3_policy")
    assert_hint(off(ex3, "empty", store=ex3.empty.store), "holds no lesson for the writer")


@pytest.mark.parametrize(("risk", "says"), [
    ("The writer and the critic are both mock agents that call no model at all here.",
     "should name what can go wrong"),
    ("It could be wrong, misleading, biased, manipulated, and simply incorrect overall.",
     "how it reaches later runs"),
    *[(text, "") for text in FILLER if text.strip()],
    ("too short", "too short"),
])
def test_learning_off_judges_the_risk(ex3: SimpleNamespace, risk: str, says: str) -> None:
    assert_hint(off(ex3, ex3_risk=risk), says)


@pytest.mark.parametrize("field", ["ex3_risk", "ex3_policy"])
@pytest.mark.parametrize("value", [*WRONG_TYPES[1:], math.nan, HUGE, "Policy()"])
def test_learning_off_answers_any_value_with_a_hint(ex3: SimpleNamespace, field: str,
                                                    value: Any) -> None:
    verdict = off(ex3, **{field: value})
    assert_hint(verdict)
    assert len(verdict.message) < 300


def test_learning_off_unanswered(ex3: SimpleNamespace) -> None:
    assert_hint(selfcheck.learning_off(POLICY, ex3.taught.store, None, ex3_risk="",
                                       ex3_policy=None), "set ex3_risk")
