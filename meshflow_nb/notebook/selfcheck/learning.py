"""Lesson 14's self-checks: fewer revisions on the second run and the lesson behind it,
the store reset, and the layer switched off with the risk it guards against.

The names the checks read are the lesson's: what its cells made (``ex1_first``,
``ex1_second``, ``ex1_store``, ``ex3_result``, ``POLICY``) and the answer variables
(``ex1_revisions``, ``ex1_lesson``, ``ex2_result``, ``ex3_risk``, ``ex3_policy``). Every
check reads the learner's real store: what it holds now, and which runs wrote it.
"""

from __future__ import annotations

import re
from typing import Any

from ...engine.results import RunResult
from ...events import EventType, plural
from ...pipelines.capstone import QUALITY_THRESHOLD
from ...policy.config import Policy
from ...policy.learning import LearningStore
from ..learning_view import learned, revisions
from .expect import RUN, Count, Instance, OrNone, Pair, Text
from .framework import Verdict, hint, passed, self_check
from .text import stems

STORE = "the learning store (learning_store(ledger))"
NODE = "writer"
"""The node the capstone's quality loop sends back: its lessons and its revisions."""

RISK_STEMS = frozenset({
    "wrong", "bad", "poiso", "stale", "outda", "misle", "injec", "malic", "attac", "manip",
    "error", "mista", "repro", "deter", "predi", "unpre", "diffe", "audit", "expla", "hidde",
    "priva", "secre", "perso", "leak", "bia", "biase", "drift", "propa", "sprea", "ampli",
    "overf", "conta", "corru", "untru", "trust", "incor", "harmf", "silen", "surpr", "flaky",
    "vary", "varie", "chang", "incon"})
"""Stems a risk has: a wrong or hostile lesson that spreads, runs that stop being
reproducible or explainable, data that should not be kept."""
ACROSS_STEMS = frozenset({
    "run", "later", "next", "futur", "lesso", "store", "remem", "earli", "previ", "past",
    "learn", "carri", "carry", "persi", "feedb", "again", "cross", "histo", "memor", "kept",
    "keep", "revie", "every", "subse", "follo"})
"""Stems that tie the risk to what runs pass on to later runs."""

_SPACE = re.compile(r"[^a-z0-9]+")


def _norm(text: str) -> str:
    """Lower case, every run of punctuation and space one space: text compared as words."""
    return _SPACE.sub(" ", text.lower()).strip()


def _rows(store: LearningStore, run: RunResult, kind: str | None = None) -> list[str]:
    """The values ``store`` holds for ``run`` (of one kind), in the order they were stored."""
    frame = store.to_dataframe()
    frame = frame[frame.run_id == run.run_id]
    return list(frame[frame.kind == kind].value if kind else frame.value)


def _run_ids(store: LearningStore) -> list[str]:
    """The runs the store holds outcomes of, oldest first."""
    return list(dict.fromkeys(store.to_dataframe().run_id))


def _policy_of(run: RunResult) -> dict[str, Any] | None:
    """The policy the run recorded in its run_start event."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    return policy if isinstance(policy, dict) else None


# --- exercise 1 --------------------------------------------------------------------------


@self_check(
    given={"ex1_first": Instance(RunResult, "the exercise's first run", kind=RUN),
           "ex1_second": Instance(RunResult, "the exercise's second run", kind=RUN),
           "ex1_store": Instance(LearningStore, "the exercise's store", kind=STORE)},
    answers={"ex1_revisions": Pair(Count(), Count(), names=("first count", "second count"),
                                   example="(3, 2)", what="revisions in each run"),
             "ex1_lesson": Text("the stored lesson the second run's writer acted on",
                                min_words=5, min_distinct=4)})
def fewer_revisions(ex1_first: RunResult, ex1_second: RunResult, ex1_store: LearningStore,
                    ex1_revisions: tuple[int, int], ex1_lesson: str) -> Verdict:
    """Exercise 1: the revisions of both runs counted from their events, and the lesson
    the store held for the writer after the first run, which the second acted on."""
    wrong = _ex1_runs_hint(ex1_first, ex1_second, ex1_store)
    if wrong:
        return hint(wrong)
    counts = (revisions(ex1_first), revisions(ex1_second))
    wrong = _counts_hint(ex1_revisions, counts, ex1_first, ex1_second)
    if wrong:
        return hint(wrong)
    lesson = _matching_lesson(ex1_lesson, ex1_store, ex1_first)
    if lesson is None:
        return hint(_lesson_hint(ex1_lesson, ex1_store, ex1_first, ex1_second))
    asked = ", ".join(line.split(":")[0] for line in lesson.splitlines())
    return passed(f"ex1_first needed {plural(counts[0], 'revision')}, ex1_second "
                  f"{counts[1]}: the critic's feedback on the first run's rejected draft "
                  f"({asked}) was stored as a lesson for the {NODE}, and the second run's "
                  "first draft acted on it")


def _ex1_runs_hint(first: RunResult, second: RunResult, store: LearningStore) -> str | None:
    """Where to look when the two runs are not two learning runs of the store, in order."""
    again = "run the exercise's first cell again"
    if first.run_id == second.run_id:
        return f"ex1_first and ex1_second are the same run: {again}"
    if not (learned(first) and learned(second)):
        return f"both runs should have enable_cross_run_learning on: {again}"
    held = _run_ids(store)
    if first.run_id not in held or second.run_id not in held:
        return (f"ex1_store no longer holds both runs (was it emptied since?): {again}, "
                "then this check, before exercise 2")
    if held.index(first.run_id) > held.index(second.run_id):
        return f"ex1_second was recorded before ex1_first: {again}"
    return None


def _counts_hint(answer: tuple[int, int], counts: tuple[int, int], first: RunResult,
                 second: RunResult) -> str | None:
    """Where to look when a count is not the run's revisions."""
    for which, given, actual, run in (("first", answer[0], counts[0], first),
                                      ("second", answer[1], counts[1], second)):
        if given == actual:
            continue
        writes = run.executed.count(NODE)
        if given == writes:
            return (f"the {which} count: {given} is how often the {NODE} ran; a revision is a "
                    f"trip back to it from the critic (a loop_iteration event)")
        return (f"the {which} count does not match ex1_{which}: count its loop_iteration "
                f"events, or read the revision_count rows of ex1_store for its run_id")
    if counts[1] >= counts[0]:
        return ("ex1_second needed no fewer revisions than ex1_first: the store did not reach "
                "the second run; run the exercise's first cell again")
    return None


def _feedback_requests(store: LearningStore, run: RunResult) -> list[str]:
    """The critic's feedback on the run's drafts that were sent back: each a lesson."""
    scores = [float(v) for v in _rows(store, run, "quality_score")]
    feedback = _rows(store, run, "feedback")
    return [text for text, score in zip(feedback, scores, strict=False)
            if score < QUALITY_THRESHOLD]


def _matching_lesson(answer: str, store: LearningStore, first: RunResult) -> str | None:
    """The first run's stored feedback that the answer quotes (a whole request of it, or
    a stretch of five words or more), if any."""
    said = _norm(answer)
    for feedback in _feedback_requests(store, first):
        lines = [_norm(line) for line in feedback.splitlines() if line.strip()]
        whole = _norm(feedback)
        if any(line in said for line in lines) or (len(said.split()) >= 5 and said in whole):
            return feedback
    return None


def _lesson_hint(answer: str, store: LearningStore, first: RunResult,
                 second: RunResult) -> str:
    """Where to look when the answer is not the lesson the second run acted on."""
    said = _norm(answer)
    frame = store.to_dataframe()
    for row in frame[frame.kind == "feedback"].itertuples():
        if len(said.split()) >= 5 and (said in _norm(row.value) or _norm(row.value) in said):
            if row.run_id == second.run_id:
                return ("that feedback came from ex1_second itself, after its writer had "
                        "run: look for what the store held before the second run")
            return ("that feedback came with a passing score: nothing was sent back, so it is "
                    "remembered but not a lesson; look for the feedback that led to a revision")
    return (f"ex1_lesson is not a lesson ex1_store holds for the {NODE}: ask the store for "
            "the writer's lessons on this task, or read its feedback rows, and copy the one "
            "the second run acted on")


# --- exercise 2 --------------------------------------------------------------------------


@self_check(
    given={"ex1_first": Instance(RunResult, "the exercise's first run", kind=RUN),
           "ex1_store": Instance(LearningStore, "exercise 1's store", kind=STORE)},
    answers={"ex2_result": Instance(RunResult, "a run after the reset", kind=RUN)})
def reset_store(ex1_first: RunResult, ex1_store: LearningStore,
                ex2_result: RunResult) -> Verdict:
    """Exercise 2: ex1_store emptied, then a learning run of ex1_pipeline that behaves as
    the very first run did, and is all the store holds now."""
    again = "empty ex1_store, then run ex1_pipeline under POLICY, in the answer cell"
    if not learned(ex2_result):
        return hint("ex2_result ran with enable_cross_run_learning off: that shows the layer "
                    f"off, not an empty store; {again}")
    held = _run_ids(ex1_store)
    if ex2_result.run_id not in held:
        return hint("ex2_result is not in ex1_store: run ex1_pipeline, the pipeline whose "
                    "ledger the store sits beside" if held else
                    "ex1_store is empty now: run ex1_pipeline under POLICY after the reset")
    others = [run_id for run_id in held if run_id != ex2_result.run_id]
    if others:
        return hint(f"ex1_store still holds outcomes of {plural(len(others), 'other run')}: "
                    "the store was not emptied before ex2_result ran; the LearningStore has a "
                    "method for that (section 5)")
    first, now = revisions(ex1_first), revisions(ex2_result)
    if now != first:
        return hint(f"ex2_result needed {plural(now, 'revision')} and ex1_first "
                    f"{first}: {again}")
    stored = len(_rows(ex1_store, ex2_result))
    return passed(f"after the reset the store held nothing, so the {NODE} got no lesson and "
                  f"needed {plural(now, 'revision')}, as ex1_first did; the store now holds "
                  f"ex2_result's {stored} outcomes, and the next run will learn from them")


# --- exercise 3 --------------------------------------------------------------------------


@self_check(
    given={"POLICY": Instance(Policy, "the lesson's policy", kind="a Policy"),
           "ex1_store": Instance(LearningStore, "exercise 1's store", kind=STORE),
           "ex3_result": OrNone(Instance(RunResult, "the run under your policy", kind=RUN))},
    answers={"ex3_risk": Text("a risk of learning across runs", min_words=8, min_distinct=6),
             "ex3_policy": Instance(Policy, "POLICY with the layer off",
                                    kind="a Policy, such as Policy(...)")})
def learning_off(POLICY: Policy, ex1_store: LearningStore, ex3_result: RunResult | None,
                 ex3_risk: str, ex3_policy: Policy) -> Verdict:
    """Exercise 3: a risk named and tied to later runs; POLICY with only the learning layer
    switched off; its run got no lesson from a store that had one, and left nothing."""
    wrong = _policy_hint(POLICY, ex3_policy) or _ex3_run_hint(ex3_result, ex3_policy,
                                                              ex1_store) or _risk_hint(ex3_risk)
    if wrong:
        return hint(wrong)
    assert ex3_result is not None
    return passed(f"with enable_cross_run_learning=False the {NODE} got none of the store's "
                  f"lessons and needed {plural(revisions(ex3_result), 'revision')}, and the "
                  "run left nothing in the store: it is as reproducible as a run that never "
                  "learned, whatever earlier runs taught")


def _policy_hint(base: Policy, policy: Policy) -> str | None:
    """Where to look when ``policy`` is not ``base`` with only the learning layer off."""
    if policy.enable_cross_run_learning:
        return ("ex3_policy still learns across runs: POLICY.describe() names the layer; "
                "find the Policy field that switches it")
    theirs, ours = policy.to_dict(), base.to_dict()
    changed = [name for name in ours if name != "enable_cross_run_learning"
               and theirs.get(name) != ours[name]]
    if changed:
        return (f"ex3_policy changes {', '.join(changed)} too: keep POLICY as it is and "
                "switch off only the learning layer")
    return None


def _ex3_run_hint(run: RunResult | None, policy: Policy, store: LearningStore) -> str | None:
    """Where to look when ex3_result is not a run under the policy, against lessons."""
    if run is None:
        return "ex3_result is not there yet: run the cell after your answer"
    if _policy_of(run) != policy.to_dict():
        return "ex3_result is not a run under ex3_policy as it is now: run the cell after it"
    if not store.lessons_for(NODE, run.task):
        return (f"ex1_store holds no lesson for the {NODE} now, so the run cannot show one "
                "being ignored: run exercise 2's answer cell again, then this exercise")
    if run.run_id in _run_ids(store):
        return "ex3_result was recorded in the store: the layer was on when it ran"
    return None


def _risk_hint(risk: str) -> str | None:
    """Where to look when the text names no risk, or none that crosses runs."""
    found = stems(risk)
    if not found & RISK_STEMS:
        return ("ex3_risk should name what can go wrong: think of a bad or hostile review, "
                "or of two runs of one cell that should agree")
    if not found & ACROSS_STEMS:
        return "ex3_risk should say how it reaches later runs: what do they inherit?"
    return None
