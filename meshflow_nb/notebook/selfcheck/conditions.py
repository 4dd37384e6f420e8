"""Lesson 04's self-checks: conditions judged on scores the learner does not see, a loop
that runs out, and a definition fixed with the help of its pre-flight report.

Conditions are read with the toolkit's own parser (`parse_condition`), never ``eval``.
The names the checks read are the lesson's: what its cells made (``threshold``,
``ex1_loop``, ``ex1_result``, ``ex2_result``, ``ledger``, ``ex3_result``) and the answer
variables (``send_back``, ``send_on``, ``ex2_scores``, ``exhausted_seq``,
``drafts_written``, ``fixed_review``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from ...engine.results import RunResult
from ...errors import MeshflowError
from ...events import EventType, MeshEvent, plural
from ...ledger.replay import ReplayLedger
from ...model.conditions import (
    MAX_LENGTH,
    Condition,
    ConditionEvalError,
    ConditionSyntaxError,
    parse_condition,
)
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from .expect import RUN, Count, Expect, Instance, ListOf, Text, Unfit
from .framework import Verdict, hint, passed, self_check

SCORE = "quality_score"
"""The variable the lesson's critic exports for each draft."""

NEAR_THRESHOLD = (("well below", -0.25), ("just below", -0.01), ("a hair below", -0.001),
                  ("exactly at", 0.0), ("a hair above", 0.001), ("just above", 0.01),
                  ("well above", 0.2))
"""Where exercise 1's hidden scores sit around the threshold (offsets from it)."""

EX3_EXPORTS = {"translator": (), "proofreader": ("accuracy", "tone"), "sign_off": (),
               "sender": ()}
"""Exercise 3's nodes and what each exports, as the lesson defines them."""
EX3_BACK = ("proofreader", "translator")
EX3_ON = ("proofreader", "sign_off")
EX3_MEANT = {EX3_BACK: "accuracy < 0.9 or tone != 'formal'",
             EX3_ON: "accuracy >= 0.9 and tone == 'formal'"}
"""What exercise 3's two conditions say once their typos are fixed."""
EX3_CASES = tuple({"accuracy": a, "tone": t} for a in (0.5, 0.89, 0.9, 0.97)
                  for t in ("formal", "casual"))


class Score(Expect):
    """A number from 0 to 1, as a critic gives a draft (a NumPy float will do)."""

    kind = "a number from 0 to 1, such as 0.42"

    def clean(self, value: Any, where: str) -> float:
        """The score as a float; text that holds a number is told to lose its quotes."""
        if isinstance(value, str) and _is_number_text(value):
            raise Unfit(f"{where} should be {self.kind}, not the text {value!r}: "
                        "drop the quotes")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.refuse(value, where)
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise Unfit(f"{where} should be {self.kind}, not {value!r}")
        return float(value)


class ConditionText(Text):
    """A condition in quotes: text of a condition's length that is not filler (whether it
    parses is the judge's)."""

    kind = "a condition in quotes, such as \"feedback == 'ready'\""

    def clean(self, value: Any, where: str) -> str:
        """The text, stripped; longer than any condition may be, it is refused unread."""
        if isinstance(value, str) and len(value) > MAX_LENGTH:
            raise Unfit(f"{where} is {len(value)} characters long: a condition may have at "
                        f"most {MAX_LENGTH}")
        return super().clean(value, where)


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


WORKFLOW = "a workflow (what WorkflowDefinition(...) builds)"


# --- exercise 1: route by a threshold ---------------------------------------------


@self_check(
    given={"threshold": Score("the bar of exercise 1, in the parameters cell"),
           "ex1_loop": Instance(WorkflowDefinition, "the loop built with your conditions",
                                kind=WORKFLOW),
           "ex1_result": Instance(RunResult, "the run of ex1_loop", kind=RUN)},
    answers={"send_back": ConditionText("the condition of critic -> writer"),
             "send_on": ConditionText("the condition of critic -> hitl_gate")})
def threshold_routes(threshold: float, ex1_loop: WorkflowDefinition, ex1_result: RunResult,
                     send_back: str, send_on: str) -> Verdict:
    """Exercise 1: on hidden scores around the threshold, below it goes back and the rest
    goes on, exactly one way each; and the learner's run used these conditions."""
    answers = {"send_back": send_back, "send_on": send_on}
    wrong = _read_hint(answers, ex1_loop)
    if wrong:
        return hint(wrong)
    conditions = {name: parse_condition(text) for name, text in answers.items()}
    wrong = (_same_hint(send_back, send_on) or _ex1_stale_hint(ex1_loop, ex1_result, answers)
             or _route_hint(conditions, threshold) or _ex1_run_hint(ex1_result))
    if wrong:
        return hint(wrong)
    revisions = sum(e.type is EventType.LOOP_ITERATION for e in ex1_result.events)
    return passed(f"every hidden score below {threshold:g} goes back to the writer and every "
                  f"other one goes on to the gate, the threshold itself included ("
                  f"{len(hidden_scores(threshold))} scores); in your run the loop sent "
                  f"{plural(revisions, 'draft')} back, then the draft went on to the gate")


def hidden_scores(threshold: float) -> list[tuple[str, float]]:
    """Exercise 1's scores, each with where it sits: around the threshold, and 0 and 1."""
    near = [(f"a score {where} the threshold", round(threshold + offset, 6))
            for where, offset in NEAR_THRESHOLD if 0 <= threshold + offset <= 1]
    return [*near, ("the lowest score, 0", 0.0), ("a perfect score, 1", 1.0)]


def _read_hint(answers: Mapping[str, str], loop: WorkflowDefinition) -> str | None:
    """Where to look when an answer does not parse, or reads what the critic does not
    export (None when both read only the critic's variables, its score among them)."""
    try:
        exports = set(loop.node("critic").exports)
    except KeyError:
        return "ex1_loop has no critic: run the cell after the answer cell again"
    for name, text in answers.items():
        try:
            condition = parse_condition(text)
        except ConditionSyntaxError as err:
            return (f"{name} does not parse: {err.reason} (column {err.position + 1}); "
                    f"explain_condition({name}) shows where")
        unknown = sorted(condition.names - exports)
        if unknown:
            return (f"{name} reads {unknown[0]!r}, which the critic does not export: look "
                    "at the exports= of the critic in draft_loop")
        if SCORE not in condition.names:
            return f"{name} does not read the critic's score: a draft's way depends on it"
    return None


def _same_hint(send_back: str, send_on: str) -> str | None:
    if " ".join(send_back.split()) == " ".join(send_on.split()):
        return ("send_back and send_on are the same condition: a draft should take one of "
                "the two ways, never both")
    return None


def _ex1_stale_hint(loop: WorkflowDefinition, run: RunResult,
                    answers: Mapping[str, str]) -> str | None:
    """Where to look when ex1_loop or ex1_result do not come from the answers as they
    are now (None when they do)."""
    again = "run the cell after the answer cell again"
    conditions = {(e.source, e.target): e.condition for e in loop.edges if e.conditional}
    built = (conditions.get(("critic", "writer")), conditions.get(("critic", "hitl_gate")))
    if tuple((c or "").strip() for c in built) != (answers["send_back"], answers["send_on"]):
        return f"ex1_loop was built with other conditions than your answer cell's: {again}"
    if run.workflow != loop.name:
        return f"ex1_result is a run of {run.workflow!r}, not of ex1_loop: {again}"
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return f"ex1_result is a run that pre-flight rejected: {again}, and read its report"
    looped = {e.payload.get("condition") for e in run.events
              if e.type is EventType.LOOP_ITERATION}
    if looped - set(built):
        return f"ex1_result ran with other conditions than ex1_loop has: {again}"
    return None


def _ex1_run_hint(run: RunResult) -> str | None:
    """Where to look when conditions that route every hidden score did not get the
    learner's own run to the gate."""
    if run.status is RunStatus.FAILED:
        return f"your run failed: {run.error}"
    if not any(e.type is EventType.GATE_PAUSE for e in run.events):
        return ("in ex1_result no draft reached the gate: read the run's events under "
                "the cell after the answer cell")
    return None


def _route_hint(conditions: Mapping[str, Condition], threshold: float) -> str | None:
    """Where to look when a hidden score takes the wrong way, both ways or none."""
    for where, score in hidden_scores(threshold):
        variables = {SCORE: score, "feedback": "cite your sources"}
        try:
            back, on = (conditions[name].evaluate(variables) for name in ("send_back", "send_on"))
        except ConditionEvalError as err:
            return f"for {where}, a condition could not be evaluated: {str(err).split(';')[0]}"
        if back and on:
            return f"for {where}, both conditions hold: a draft should take one way only"
        if not (back or on):
            return (f"for {where}, neither condition holds: the draft would go nowhere (the "
                    "gate is skipped and nothing is published)")
        if back != (score < threshold):
            went = "back to the writer" if back else "on to the gate"
            return (f"{where} goes {went} with your conditions: it should go the other "
                    "way (condition_table on scores of your own shows it)")
    return None


# --- exercise 2: a loop that runs out --------------------------------------------


@self_check(
    given={"ex2_result": Instance(RunResult, "the run of exercise 2", kind=RUN),
           "ledger": Instance(ReplayLedger, "the lesson's ledger", kind="a ReplayLedger")},
    answers={"ex2_scores": ListOf(Score(), "the critic's score for each draft", min_len=1,
                                  kind="a list of scores in square brackets, such as [0.42]"),
             "exhausted_seq": Count("the seq of the event that says the guard was spent"),
             "drafts_written": Count("how many drafts the writer wrote in your run")})
def loop_exhaustion(ex2_result: RunResult, ledger: ReplayLedger, ex2_scores: list[float],
                    exhausted_seq: int, drafts_written: int) -> Verdict:
    """Exercise 2: the learner's scores made the loop run out, they found the
    loop_exhausted event (in the run and in the ledger) and counted the drafts."""
    run = ex2_result
    wrong = _ex2_run_hint(run, ex2_scores)
    if wrong:
        return hint(wrong)
    spent = next((e for e in run.events if e.type is EventType.LOOP_EXHAUSTED), None)
    if spent is None:
        return hint("the loop did not run out in your run: a draft met the bar, so the loop "
                    "closed (loop_history(ex2_result, ex2_loop) shows which); the guard is "
                    "only spent when the condition still holds after the last revision")
    if not _in_ledger(ledger, run.run_id, EventType.LOOP_EXHAUSTED):
        return hint("the ledger holds no loop_exhausted for your run: build ex2_loop with "
                    "draft_loop, which attaches it to the ledger, and run it again")
    wrong = _seq_hint(run.events, exhausted_seq) or _drafts_hint(run, drafts_written)
    if wrong:
        return hint(wrong)
    return passed(f"the guard was spent after {plural(drafts_written, 'draft')}: event "
                  f"{exhausted_seq}, loop_exhausted, is in your run and in the ledger; the "
                  f"draft still went to the gate{_gate_said(run)}")


def _ex2_run_hint(run: RunResult, scores: list[float]) -> str | None:
    """Where to look when ex2_result is not a finished run of ex2_scores."""
    if run.status is RunStatus.FAILED:
        return f"your run failed: {run.error}"
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return "pre-flight rejected your run: read the report under the run cell"
    given = [e.payload.get(SCORE) for e in run.events
             if e.type is EventType.NODE_COMPLETE and e.node_id == "critic"]
    meant = [scores[min(n, len(scores)) - 1] for n in range(1, len(given) + 1)]
    if not given or given != meant:
        return ("ex2_result was not scored with ex2_scores: run the cells after your answer "
                "again, the run and the cell that waits for it")
    return None


def _in_ledger(ledger: ReplayLedger, run_id: str, kind: EventType) -> bool:
    """Whether the ledger holds an event of ``kind`` for the run (not when it has no run)."""
    try:
        return any(e.type is kind for e in ledger.events(run_id))
    except MeshflowError:
        return False


def _seq_hint(events: list[MeshEvent], seq: int) -> str | None:
    """Where to look when ``seq`` is not the loop_exhausted event's number."""
    found = next((e for e in events if e.seq == seq), None)
    if found is None:
        return (f"exhausted_seq: your run has no event number {seq}: read the seq column of "
                "the event table")
    if found.type is EventType.LOOP_EXHAUSTED:
        return None
    if found.type is EventType.LOOP_ITERATION:
        return (f"exhausted_seq: event {seq} is a loop_iteration: there the loop still went "
                "round; look for the event after the last draft's score")
    return (f"exhausted_seq: event {seq} is a {found.type.value}: look for the event whose "
            "message says the guard was spent")


def _drafts_hint(run: RunResult, drafts: int) -> str | None:
    """Where to look when ``drafts`` is not how often the writer completed."""
    written = run.nodes["writer"].executions if "writer" in run.nodes else 0
    if drafts == written:
        return None
    revisions = sum(e.type is EventType.LOOP_ITERATION for e in run.events)
    if drafts == revisions:
        return ("drafts_written: that counts the trips back (max_iterations counts those); "
                "count the writer's node_complete events")
    return "drafts_written: count the writer's node_complete events in the event table"


def _gate_said(run: RunResult) -> str:
    """How the gate decided, in words, for the PASS line."""
    if run.status is RunStatus.REJECTED_AT_GATE:
        return ", where the reviewer rejected it: nothing was published"
    if run.status is RunStatus.COMPLETED:
        return ", where the reviewer approved it below the bar: the ledger keeps both facts"
    return f", and the run ended {run.status.value}"


# --- exercise 3: a typo fixed with the pre-flight report ---------------------------


@self_check(
    given={"ex3_result": Instance(RunResult, "the run of your fixed definition", kind=RUN)},
    answers={"fixed_review": Instance(WorkflowDefinition, "the definition, fixed",
                                      kind=WORKFLOW)})
def typo_fixed(ex3_result: RunResult, fixed_review: WorkflowDefinition) -> Verdict:
    """Exercise 3: pre-flight passes, the nodes and edges are those of the lesson, both
    conditions mean what they meant before the typos, and the fixed definition ran."""
    report = fixed_review.preflight()
    if not report.ok:
        return hint(f"pre-flight still finds {plural(len(report.problems), 'problem')} in "
                    "fixed_review: read its report, printed by the cell after the answer cell; "
                    "each problem names its edge and rule, and a syntax error its column")
    wrong = (_shape_hint(fixed_review) or _meaning_hint(fixed_review)
             or _ex3_run_hint(ex3_result, fixed_review))
    if wrong:
        return hint(wrong)
    return passed(f"pre-flight passes and both conditions decide as they were meant to on "
                  f"{len(EX3_CASES)} reviews you did not see; your fixed definition ran "
                  f"({ex3_result.status.value})")


def _shape_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when the nodes, their exports or the edges are not the lesson's."""
    exports = {node.id: tuple(node.exports) for node in workflow.nodes}
    if exports.keys() != EX3_EXPORTS.keys():
        return "fixed_review has other nodes than the lesson's: fix the conditions only"
    changed = [n for n, names in EX3_EXPORTS.items() if exports[n] != names]
    if changed:
        return (f"you changed what {changed[0]} exports: keep the node as it is, and fix the "
                "condition that reads it")
    ends = sorted((e.source, e.target) for e in workflow.edges)
    if ends != sorted([("translator", "proofreader"), EX3_BACK, EX3_ON, ("sign_off", "sender")]):
        return "fixed_review has other edges than the lesson's: fix the conditions only"
    return None


def _meaning_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when a fixed condition decides differently from what it meant."""
    conditions = {(e.source, e.target): e.condition for e in workflow.edges if e.conditional}
    for ends, meant in EX3_MEANT.items():
        if ends not in conditions:
            return f"the edge {' -> '.join(ends)} has lost its condition: put it back, fixed"
        if _decisions(conditions[ends]) != _decisions(meant):
            return (f"the edge {' -> '.join(ends)} now decides differently from what it "
                    "meant before the typo: fix the spelling only, and keep the rest as it is")
    return None


def _decisions(text: str | None) -> list[bool | None]:
    """What a condition says on each of exercise 3's hidden reviews (None: an error)."""
    condition = parse_condition(text or "")
    return [_holds(condition, case) for case in EX3_CASES]


def _holds(condition: Condition, case: Mapping[str, Any]) -> bool | None:
    try:
        return condition.evaluate(case)
    except ConditionEvalError:
        return None


def _ex3_run_hint(run: RunResult, workflow: WorkflowDefinition) -> str | None:
    """Where to look when ex3_result is not a run of the fixed definition past pre-flight."""
    again = "run the cell after the answer cell again"
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return f"ex3_result is the run pre-flight rejected, before your fix: {again}"
    if run.workflow != workflow.name or not _ran_with(run.events, workflow.edges):
        return f"ex3_result is not a run of fixed_review as it is now: {again}"
    if run.status is RunStatus.FAILED:
        return f"your fixed definition ran, but the run failed: {run.error}"
    return None


def _ran_with(events: Iterable[MeshEvent], edges: Iterable[Any]) -> bool:
    """Every loop the run took had a condition the definition has."""
    conditions = {edge.condition for edge in edges}
    return all(e.payload.get("condition") in conditions for e in events
               if e.type in (EventType.LOOP_ITERATION, EventType.LOOP_EXHAUSTED))
