"""Lesson 04's self-checks, judged against real runs of the lesson's loops (approved and
rejected at the gate) on fresh ledgers.

Every check is called with right answers (PASS), wrong answers (HINT, which never
gives the answer away), values of the wrong type, NaN, huge text and filler (HINT,
never an exception). The draft loop is the hands-on script's, the lesson's twin.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from meshflow_nb import HumanGate, Node, RiskTier, Role, WorkflowDefinition, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import selfcheck
from meshflow_nb.notebook.selfcheck.conditions import EX3_CASES, hidden_scores

ROOT = Path(__file__).resolve().parents[1]
DECISIONS = ("approve", "reject")
THRESHOLD = 0.75
RIGHT_BACK, RIGHT_ON = "quality_score < 0.75", "quality_score >= 0.75"
EXHAUSTING = [0.4, 0.5, 0.6]
FIXED_BACK = "accuracy < 0.9 or tone != 'formal'"
FIXED_ON = "accuracy >= 0.9 and tone == 'formal'"
BROKEN_BACK = "acuracy < 0.9 or tone != 'formal'"
BROKEN_ON = "accuracy >= 0.9 and tone = 'formal'"
REVIEWS = [(0.82, "formal"), (0.95, "casual"), (0.95, "formal")]

WRONG_TYPES = [None, ["quality_score < 0.75"], {"a": 1}, 0.75, math.nan, object(), True,
               np.float64(0.5)]
"""Values of every kind a learner might type where another kind belongs."""
FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a", "   ", "asdf",
          "your answer here"]


def load_script() -> ModuleType:
    """hands_on/04_conditions_and_loops.py as a module (its name starts with a digit)."""
    path = ROOT / "hands_on" / "04_conditions_and_loops.py"
    spec = importlib.util.spec_from_file_location("hands_on_04", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()


def approver(decision: str) -> Any:
    return fixed_approver(decision == "approve", "tester", f"{decision} in a test")


def translation_review(back: str = FIXED_BACK, on: str = FIXED_ON,
                       exports: tuple[str, ...] = ("accuracy", "tone"),
                       name: str = "translation_review") -> WorkflowDefinition:
    """Exercise 3's definition, with the conditions (and exports) given."""
    def proofreader(ctx: Any) -> dict[str, Any]:
        accuracy, tone = REVIEWS[min(ctx.iteration, len(REVIEWS)) - 1]
        return dict(zip(exports, (accuracy, tone), strict=True))
    return (WorkflowDefinition(name)
            .add_node(Node("translator", lambda ctx: f"v{ctx.iteration}", Role.EXECUTOR))
            .add_node(Node("proofreader", proofreader, Role.CRITIC, exports=list(exports)))
            .add_node(HumanGate("sign_off", content_from="translator"))
            .add_node(Node("sender", lambda ctx: "sent", Role.ORCHESTRATOR,
                           RiskTier.EXTERNAL_IO))
            .add_edge("translator", "proofreader")
            .add_conditional_edge("proofreader", "translator", condition=back,
                                  max_iterations=2)
            .add_conditional_edge("proofreader", "sign_off", condition=on)
            .add_edge("sign_off", "sender"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Real runs of each kind the lesson's exercises judge, on one fresh ledger."""
    ledger = ReplayLedger(str(tmp_path_factory.mktemp("conditions") / "lesson04.duckdb"))
    found = SimpleNamespace(ledger=ledger, ex1={}, ex2={}, ex3={})
    found.ex1_loop = ledger.attach(SCRIPT.draft_loop([0.7, 0.8], RIGHT_BACK, RIGHT_ON,
                                                     name="exercise1"))
    found.ex2_loop = ledger.attach(SCRIPT.draft_loop(EXHAUSTING, name="exercise2"))
    found.fixed = ledger.attach(translation_review())
    for decision in DECISIONS:
        found.ex1[decision] = found.ex1_loop.run(SCRIPT.TASK, approver=approver(decision))
        found.ex2[decision] = found.ex2_loop.run(SCRIPT.TASK, approver=approver(decision))
        found.ex3[decision] = found.fixed.run("translate", approver=approver(decision))
    found.passing = ledger.attach(SCRIPT.draft_loop([0.9], name="exercise2")).run(
        SCRIPT.TASK, approver=approver("approve"))
    found.failed = ledger.attach(SCRIPT.draft_loop(EXHAUSTING, send_back="feedback < 0.8",
                                                   name="exercise2")).run(SCRIPT.TASK)
    found.broken = ledger.attach(translation_review(BROKEN_BACK, BROKEN_ON)).run("translate")
    found.other_ledger = ReplayLedger(str(tmp_path_factory.mktemp("other") / "o.duckdb"))
    return found


def is_hint(verdict: Any, *words: str, hides: tuple[str, ...] = ()) -> str:
    """The HINT's text, after checking it says ``words`` and never ``hides``."""
    text = str(verdict)
    assert text.startswith("HINT: "), text
    for word in words:
        assert word in text, text
    for secret in hides:
        assert secret not in text, text
    return text


# --- exercise 1: threshold_routes -------------------------------------------------


def routes(runs: SimpleNamespace, decision: str = "approve", **answers: Any) -> Any:
    """threshold_routes on the run of ``decision``, with the right answers unless given."""
    values = {"threshold": THRESHOLD, "ex1_loop": runs.ex1_loop,
              "ex1_result": runs.ex1[decision], "send_back": RIGHT_BACK, "send_on": RIGHT_ON,
              **answers}
    return selfcheck.threshold_routes(**values)


@pytest.mark.parametrize("decision", DECISIONS)
def test_routes_pass_the_right_conditions_in_both_modes(runs: SimpleNamespace,
                                                        decision: str) -> None:
    verdict = routes(runs, decision)
    assert verdict.passed, verdict
    assert "the threshold itself included (9 scores)" in verdict.message
    assert "sent 1 draft back, then the draft went on to the gate" in verdict.message


@pytest.mark.parametrize(("back", "on"), [
    ("not quality_score >= 0.75", "0.75 <= quality_score"),
    ("  quality_score<0.75  ", "quality_score >= 0.75 and quality_score <= 1"),
    ("quality_score < 0.75 and feedback != 'never said'", "not (quality_score < 0.75)"),
])
def test_routes_judge_what_conditions_do_not_how_they_are_written(
        runs: SimpleNamespace, tmp_path: Path, back: str, on: str) -> None:
    loop = SCRIPT.draft_loop([0.7, 0.8], back.strip(), on, name="exercise1")
    result = loop.run(SCRIPT.TASK, approver=approver("approve"))
    verdict = routes(runs, ex1_loop=loop, ex1_result=result, send_back=back, send_on=on)
    assert verdict.passed, verdict


def test_hidden_scores_sit_around_the_threshold_and_at_both_ends() -> None:
    scores = [s for _, s in hidden_scores(THRESHOLD)]
    assert {0.0, 0.74, 0.749, 0.75, 0.751, 0.76, 1.0} <= set(scores)
    assert all(0 <= s <= 1 for s in scores)
    assert [s for _, s in hidden_scores(0.95)][-3:] == [0.96, 0.0, 1.0]  # 1.15 left out


@pytest.mark.parametrize(("back", "on", "words"), [
    ("quality_score <= 0.75", "quality_score > 0.75",
     ("a score exactly at the threshold goes back to the writer", "other way")),
    ("quality_score < 0.75", "quality_score > 0.75",
     ("exactly at the threshold, neither condition holds", "nothing is published")),
    ("quality_score < 0.8", "quality_score >= 0.75", ("both conditions hold",)),
    ("quality_score >= 0.75", "quality_score < 0.75", ("well below the threshold goes on",)),
    ("quality_score < 75", "quality_score >= 75", ("goes back to the writer",)),
    ("quality_score < 0.7", "quality_score >= 0.7", ("just below the threshold goes on",)),
    ("quality_score < '0.75'", "quality_score >= '0.75'", ("could not be evaluated",
                                                           "cannot compare")),
])
def test_routes_hint_where_a_hidden_score_goes_wrong(runs: SimpleNamespace, back: str,
                                                     on: str, words: tuple[str, ...]) -> None:
    loop = SCRIPT.draft_loop([0.7, 0.8], back, on, name="exercise1")
    result = loop.run(SCRIPT.TASK, approver=approver("approve"))
    is_hint(routes(runs, ex1_loop=loop, ex1_result=result, send_back=back, send_on=on),
            *words, hides=(RIGHT_BACK, RIGHT_ON, "0.749", "0.751"))


@pytest.mark.parametrize(("back", "on", "words"), [
    ("quality_score =< 0.75", RIGHT_ON, ("send_back does not parse", "(column 15)",
                                         "explain_condition(send_back)")),
    (RIGHT_BACK, "score >= 0.75", ("send_on reads 'score'", "does not export")),
    (RIGHT_BACK, "feedback == 'ready'", ("send_on does not read the critic's score",)),
    (RIGHT_BACK, "quality_score < 0.75", ("the same condition",)),
    (RIGHT_BACK, " quality_score   <  0.75 ", ("the same condition",)),
    ("__import__('os').system('ls')", RIGHT_ON, ("send_back does not parse", "'__'")),
    ("x" * 100_000, RIGHT_ON, ("send_back is 100000 characters long", "at most 500")),
    ("x" * 501, RIGHT_ON, ("send_back is 501 characters long",)),
    ("(" * 40 + RIGHT_BACK + ")" * 40, RIGHT_ON, ("send_back does not parse", "too deeply")),
])
def test_routes_hint_at_conditions_that_cannot_route(runs: SimpleNamespace, back: str,
                                                     on: str, words: tuple[str, ...]) -> None:
    is_hint(routes(runs, send_back=back, send_on=on), *words, hides=(RIGHT_ON,))


def test_routes_hint_at_a_stale_loop_or_run(runs: SimpleNamespace) -> None:
    old = SCRIPT.draft_loop([0.7, 0.8], "quality_score < 0.8", "quality_score >= 0.8",
                            name="exercise1")
    is_hint(routes(runs, ex1_loop=old), "ex1_loop was built with other conditions",
            "run the cell after the answer cell again")
    is_hint(routes(runs, ex1_result=runs.ex2["approve"]), "a run of 'exercise2'")
    stale = old.run(SCRIPT.TASK, approver=approver("approve"))
    is_hint(routes(runs, ex1_result=stale), "ran with other conditions")
    rejected = SCRIPT.draft_loop([0.7], "qualty_score < 0.75", RIGHT_ON,
                                 name="exercise1").run(SCRIPT.TASK)
    is_hint(routes(runs, ex1_result=rejected), "pre-flight rejected", "read its report")
    no_critic = WorkflowDefinition("exercise1").add_node(Node("writer", str, Role.EXECUTOR))
    is_hint(routes(runs, ex1_loop=no_critic), "ex1_loop has no critic")


def test_routes_hint_when_no_draft_reached_the_gate(runs: SimpleNamespace) -> None:
    loop = SCRIPT.draft_loop([0.7, 0.8], RIGHT_BACK, RIGHT_ON, name="exercise1")
    cut_short = loop.run(SCRIPT.TASK, approver=approver("approve"))
    cut_short.events[:] = [e for e in cut_short.events if e.type.value != "gate_pause"]
    is_hint(routes(runs, ex1_loop=loop, ex1_result=cut_short), "no draft reached the gate")


@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_routes_never_raise_on_answers_of_the_wrong_type(runs: SimpleNamespace,
                                                         junk: Any) -> None:
    for name in ("send_back", "send_on"):
        verdict = routes(runs, **{name: junk})
        assert not verdict.passed and name in verdict.message, verdict


@pytest.mark.parametrize("filler", FILLER)
def test_routes_refuse_filler(runs: SimpleNamespace, filler: str) -> None:
    verdict = routes(runs, send_back=filler)
    assert not verdict.passed and "send_back" in verdict.message, verdict


@pytest.mark.parametrize(("given", "value", "words"), [
    ("threshold", None, ("threshold is not there yet",)),
    ("threshold", "0.75", ("drop the quotes",)),
    ("threshold", math.nan, ("a number from 0 to 1",)),
    ("threshold", 7, ("a number from 0 to 1",)),
    ("ex1_loop", None, ("ex1_loop is not there yet",)),
    ("ex1_loop", "draft_loop", ("should be a workflow",)),
    ("ex1_result", 3, ("should be the result of a run",)),
])
def test_routes_hint_when_the_lesson_cells_did_not_run(runs: SimpleNamespace, given: str,
                                                       value: Any,
                                                       words: tuple[str, ...]) -> None:
    is_hint(routes(runs, **{given: value}), *words)


def test_routes_name_every_unset_answer_at_once() -> None:
    verdict = selfcheck.threshold_routes(threshold=THRESHOLD, ex1_loop=SCRIPT.draft_loop([]),
                                         ex1_result=SCRIPT.draft_loop([0.9]).run("t"),
                                         send_back=None, send_on="")
    assert str(verdict) == ("HINT: set send_back (the condition of critic -> writer) and "
                            "send_on (the condition of critic -> hitl_gate) in the answer "
                            "cell above")


# --- exercise 2: loop_exhaustion --------------------------------------------------


def spent_seq(result: Any) -> int:
    return next(e.seq for e in result.events if e.type.value == "loop_exhausted")


def exhaustion(runs: SimpleNamespace, decision: str = "approve", **answers: Any) -> Any:
    """loop_exhaustion on the run of ``decision``, with the right answers unless given."""
    run = answers.pop("ex2_result", runs.ex2[decision])
    values = {"ex2_result": run, "ledger": runs.ledger, "ex2_scores": EXHAUSTING,
              "exhausted_seq": spent_seq(runs.ex2[decision]), "drafts_written": 3, **answers}
    return selfcheck.loop_exhaustion(**values)


@pytest.mark.parametrize("decision", DECISIONS)
def test_exhaustion_passes_the_right_answers_in_both_modes(runs: SimpleNamespace,
                                                           decision: str) -> None:
    verdict = exhaustion(runs, decision)
    assert verdict.passed, verdict
    assert f"event {spent_seq(runs.ex2[decision])}, loop_exhausted" in verdict.message
    said = "approved it below the bar" if decision == "approve" else "rejected it"
    assert "after 3 drafts" in verdict.message and said in verdict.message


def test_exhaustion_accepts_longer_score_lists_and_numpy(runs: SimpleNamespace) -> None:
    for scores in ([0.4, 0.5, 0.6, 0.1], np.array([0.4, 0.5, 0.6]).tolist(),
                   (0.4, 0.5, 0.6), [np.float64(0.4), 0.5, 0.6]):
        assert exhaustion(runs, ex2_scores=scores).passed, scores


def test_exhaustion_hints_when_the_loop_did_not_run_out(runs: SimpleNamespace) -> None:
    is_hint(exhaustion(runs, ex2_result=runs.passing, ex2_scores=[0.9]),
            "did not run out", "loop_history(ex2_result, ex2_loop)",
            hides=("0.4", "below 0.8"))


def test_exhaustion_hints_at_a_stale_or_failed_run(runs: SimpleNamespace) -> None:
    is_hint(exhaustion(runs, ex2_scores=[0.5, 0.5, 0.5]), "not scored with ex2_scores")
    is_hint(exhaustion(runs, ex2_scores=[0.4]), "not scored with ex2_scores")
    is_hint(exhaustion(runs, ex2_result=runs.failed), "your run failed", "cannot compare")
    is_hint(exhaustion(runs, ex2_result=runs.broken), "pre-flight rejected")


def test_exhaustion_hints_when_the_ledger_does_not_hold_the_run(runs: SimpleNamespace) -> None:
    is_hint(exhaustion(runs, ledger=runs.other_ledger), "the ledger holds no loop_exhausted")


def test_exhaustion_hints_at_the_wrong_event(runs: SimpleNamespace) -> None:
    events = runs.ex2["approve"].events
    iteration = next(e.seq for e in events if e.type.value == "loop_iteration")
    right = spent_seq(runs.ex2["approve"])
    is_hint(exhaustion(runs, exhausted_seq=iteration), "is a loop_iteration",
            hides=(str(right),))
    is_hint(exhaustion(runs, exhausted_seq=1), "event 1 is a run_start", hides=(str(right),))
    is_hint(exhaustion(runs, exhausted_seq=999), "has no event number 999",
            hides=(str(right),))


def test_exhaustion_hints_at_the_wrong_draft_count(runs: SimpleNamespace) -> None:
    is_hint(exhaustion(runs, drafts_written=2), "counts the trips back", hides=("3",))
    is_hint(exhaustion(runs, drafts_written=6), "count the writer's node_complete",
            hides=("3",))


@pytest.mark.parametrize(("name", "value", "words"), [
    ("ex2_scores", None, ("set ex2_scores",)),
    ("ex2_scores", [], ("at least 1",)),
    ("ex2_scores", "0.4, 0.5, 0.6", ("a list of scores",)),
    ("ex2_scores", 0.4, ("a list of scores",)),
    ("ex2_scores", [0.4, "0.5"], ("ex2_scores[1]", "drop the quotes")),
    ("ex2_scores", [0.4, math.nan], ("ex2_scores[1]", "a number from 0 to 1")),
    ("ex2_scores", [True], ("ex2_scores[0]",)),
    ("ex2_scores", [40, 50], ("ex2_scores[0]", "a number from 0 to 1")),
    ("ex2_scores", {"draft1": 0.4}, ("a list of scores",)),
    ("exhausted_seq", "16", ("drop the quotes",)),
    ("exhausted_seq", 16.0, ("a whole number",)),
    ("exhausted_seq", -1, ("cannot be negative",)),
    ("exhausted_seq", "x" * 100_000, ("a whole number",)),
    ("drafts_written", None, ("set drafts_written",)),
    ("drafts_written", [3], ("a whole number",)),
])
def test_exhaustion_never_raises_on_junk(runs: SimpleNamespace, name: str, value: Any,
                                         words: tuple[str, ...]) -> None:
    text = is_hint(exhaustion(runs, **{name: value}), *words)
    assert len(text) < 400


@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_exhaustion_givens_of_the_wrong_type(runs: SimpleNamespace, junk: Any) -> None:
    for given in ("ex2_result", "ledger"):
        verdict = exhaustion(runs, **{given: junk})
        assert not verdict.passed and given in verdict.message, verdict


# --- exercise 3: typo_fixed -------------------------------------------------------


def fixed(runs: SimpleNamespace, decision: str = "approve", **values: Any) -> Any:
    """typo_fixed on the run of ``decision`` and the fixed definition, unless given."""
    return selfcheck.typo_fixed(**{"ex3_result": runs.ex3[decision],
                                   "fixed_review": runs.fixed, **values})


def fixed_run(workflow: WorkflowDefinition) -> Any:
    return workflow.run("translate", approver=approver("approve"))


@pytest.mark.parametrize("decision", DECISIONS)
def test_typo_fixed_passes_the_fix_in_both_modes(runs: SimpleNamespace, decision: str) -> None:
    verdict = fixed(runs, decision)
    assert verdict.passed, verdict
    status = "completed" if decision == "approve" else "rejected_at_gate"
    assert f"on {len(EX3_CASES)} reviews" in verdict.message and f"({status})" in verdict.message


def test_typo_fixed_accepts_a_fix_written_another_way(runs: SimpleNamespace) -> None:
    other = translation_review(on="not (accuracy < 0.9 or tone != 'formal')")
    assert fixed(runs, ex3_result=fixed_run(other), fixed_review=other).passed


@pytest.mark.parametrize(("back", "on", "count"), [
    (BROKEN_BACK, BROKEN_ON, "2 problems"),
    (FIXED_BACK, BROKEN_ON, "1 problem"),
    (BROKEN_BACK, FIXED_ON, "1 problem"),
    ("accuracy < 0.9 or tone <> 'formal'", FIXED_ON, "1 problem"),
])
def test_typo_fixed_hints_while_pre_flight_rejects(runs: SimpleNamespace, back: str, on: str,
                                                   count: str) -> None:
    broken = translation_review(back, on)
    is_hint(fixed(runs, ex3_result=runs.broken, fixed_review=broken), count,
            "printed by the cell after the answer cell", hides=(FIXED_BACK, FIXED_ON))


@pytest.mark.parametrize(("workflow", "words"), [
    (translation_review("acuracy < 0.9 or tone != 'formal'",
                        "acuracy >= 0.9 and tone == 'formal'", exports=("acuracy", "tone")),
     "you changed what proofreader exports"),
    (translation_review("accuracy < 0.8 or tone != 'formal'"),
     "the edge proofreader -> translator now decides differently"),
    (translation_review(on="accuracy >= 0.9 and tone != 'formal'"),
     "the edge proofreader -> sign_off now decides differently"),
    (translation_review("true", "true"), "now decides differently"),
    (translation_review(on="accuracy >= 0.9 or tone == 'formal'"), "now decides differently"),
])
def test_typo_fixed_hints_at_a_fix_that_changes_more(runs: SimpleNamespace,
                                                     workflow: WorkflowDefinition,
                                                     words: str) -> None:
    is_hint(fixed(runs, ex3_result=fixed_run(workflow), fixed_review=workflow), words,
            hides=(FIXED_BACK, FIXED_ON))


def test_typo_fixed_hints_at_other_nodes_or_edges(runs: SimpleNamespace) -> None:
    extra = translation_review().add_node(Node("extra", str, Role.EXECUTOR))
    extra.add_edge("sender", "extra")
    is_hint(fixed(runs, fixed_review=extra), "other nodes than the lesson's")
    rewired = translation_review()
    rewired.edges = [e for e in rewired.edges if e.target != "sender"]
    rewired.add_edge("proofreader", "sender")
    is_hint(fixed(runs, fixed_review=rewired), "other edges than the lesson's")


def test_typo_fixed_hints_at_a_stale_run(runs: SimpleNamespace) -> None:
    is_hint(fixed(runs, ex3_result=runs.broken), "the run pre-flight rejected, before your fix")
    is_hint(fixed(runs, ex3_result=runs.ex2["approve"]), "not a run of fixed_review")
    renamed = translation_review(name="translation_review_2")
    is_hint(fixed(runs, fixed_review=renamed), "not a run of fixed_review")
    other_back = translation_review("tone != 'formal' or accuracy < 0.9")
    is_hint(fixed(runs, fixed_review=other_back), "not a run of fixed_review as it is now")


def test_typo_fixed_hints_at_a_failed_run(runs: SimpleNamespace) -> None:
    failing = translation_review("accuracy < 0.9 or tone != 'formal' or tone < 1")
    verdict = fixed(runs, ex3_result=fixed_run(failing), fixed_review=failing)
    assert not verdict.passed  # decides differently on the hidden reviews: an error there


@pytest.mark.parametrize("junk", [*WRONG_TYPES, "x" * 100_000, "todo"])
def test_typo_fixed_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    verdict = fixed(runs, fixed_review=junk)
    assert not verdict.passed and "fixed_review" in verdict.message, verdict
    verdict = fixed(runs, ex3_result=junk)
    assert not verdict.passed and "ex3_result" in verdict.message, verdict
