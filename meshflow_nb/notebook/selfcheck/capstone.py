"""Lesson 16's self-checks: each exercise judged against the learner's own run and ledger.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ex2_events``, ``rejected``, ``fixed_events``, ``tampered``, ``restored``) and the
answer variables (``nodes_executed``, ``loop_iterations``, ``final_output_field``,
``violated_rule``, ``fixed_pipeline``, ``checklist``, ``highest_risk``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ...engine.results import RunResult
from ...events import EventType, MeshEvent, plural
from ...ledger.verify import VerificationResult
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from ..explorer import LedgerView
from .expect import RUN, Count, Instance, ListOf, MappingOf, OneOf, Pair, Text
from .framework import Verdict, hint, passed, self_check
from .text import first_duplicate, stems

STREAM_TYPES = ("run_start", "node_start", "node_complete", "loop_iteration", "gate_pause",
                "run_complete")
"""Event types a streamed run of the capstone on a fresh learning store has, besides
the gate's decision (gate_resume or gate_reject)."""

CHECKLIST_CATEGORIES = ("agents", "secrets", "ledger", "hitl", "observability",
                        "infrastructure")
"""Exercise 5's categories: agent implementations, API keys and secrets, ledger and
database, HITL gate, observability, infrastructure."""

EFFORTS = ("Low", "Medium", "High")
MIN_CHECKLIST_ITEMS = 15

GENERIC_STEMS = frozenset({"produ", "pipel", "chang", "risk", "riski", "highe", "gap",
                           "incid", "becau", "cause", "likel", "skip", "skipp", "impor"})
"""Stems any sentence about production risk has: sharing only these with a checklist
item does not make highest_risk about that item."""

_RULE_ID = re.compile(r"\b([PS]\d{3})\b", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")

EVENTS = ListOf(Instance(MeshEvent, kind="an event (a MeshEvent)"), kind="a list of events")
VERIFICATION = Instance((VerificationResult, LedgerView),
                        kind="a verification (what explore() or verify_chain() returns)")


@self_check(
    given={"ex1_result": Instance(RunResult, "exercise 1's run", kind=RUN)},
    answers={"nodes_executed": Count("node executions in your run"),
             "loop_iterations": Count("trips back from quality_gate to the writer")})
def node_map(ex1_result: RunResult, nodes_executed: int, loop_iterations: int) -> Verdict:
    """Exercise 1: the learner's counts are those of the run they mapped."""
    run = ex1_result
    if not run.totals.node_executions:
        return hint("no node ran in ex1_result: run exercise 1's cells, the run and the cell "
                    "that waits for it")
    wrong = [text for text in (_node_count_hint(run, nodes_executed),
                               _loop_count_hint(run, loop_iterations)) if text]
    if wrong:
        return hint(_gate_rejected(run, "your run was rejected at the gate, so fewer nodes "
                                        "ran than in an approved one. ") + "; ".join(wrong))
    counts = f"{plural(nodes_executed, 'node execution')} and " \
             f"{plural(loop_iterations, 'loop iteration')}"
    return passed(f"{counts}, as in your run" + _gate_rejected(
        run, "; the reviewer rejected the draft at the gate, so the publisher never ran"))


def _node_count_hint(run: RunResult, answer: int) -> str | None:
    """Where to look when nodes_executed is not the run's count (None when it is)."""
    if answer == run.totals.node_executions:
        return None
    if answer == len(set(run.executed)):
        return ("nodes_executed: you counted each node once, but a node that ran twice "
                "counts twice")
    return ("nodes_executed: count the node_complete rows of your run's event table (a node "
            "that ran twice counts twice)")


def _loop_count_hint(run: RunResult, answer: int) -> str | None:
    """Where to look when loop_iterations is not the run's count (None when it is)."""
    if answer == run.totals.loop_iterations:
        return None
    return ("loop_iterations: count the loop_iteration rows of the event table (each is one "
            "trip back from quality_gate to the writer, not a run of the writer)")


def _gate_rejected(run: RunResult, text: str) -> str:
    """``text`` when the reviewer rejected the run at the gate, else nothing."""
    return text if run.status is RunStatus.REJECTED_AT_GATE else ""


@self_check(
    given={"ex2_events": ListOf(EVENTS.item, "the events exercise 2 streamed", min_len=1,
                                kind=EVENTS.kind)},
    answers={"final_output_field": Text(
        "the field of the final event that holds the published content", max_words=1,
        kind="one field name in quotes, such as 'seq'")})
def stream_labels(ex2_events: list[MeshEvent], final_output_field: str) -> Verdict:
    """Exercise 2: the stream showed every kind of event, and the learner found the field
    of the final event that holds the published content."""
    events = ex2_events
    if len({e.run_id for e in events}) > 1:
        return hint("ex2_events holds events of more than one run: run exercise 2's stream "
                    "cell again (it starts a fresh list)")
    seen = Counter(e.type.value for e in events)
    missing = [t for t in STREAM_TYPES if t not in seen]
    if not seen.keys() & {"gate_resume", "gate_reject"}:
        missing.append("gate_resume or gate_reject")
    if missing or events[-1].type is not EventType.RUN_COMPLETE:
        return hint(f"your stream has no {', '.join(missing) or 'run_complete at its end'}: "
                    "run exercise 2's stream cell to the end of the run")
    wrong = _field_hint(events[-1], _field_name(final_output_field))
    if wrong:
        return hint(wrong)
    heard = (f"{plural(len(events), 'event')} of {plural(len(seen), 'type')}, "
             f"{plural(seen['loop_iteration'], 'loop iteration')}")
    return passed(f"{heard}; {_output_said(events[-1])}")


def _field_name(answer: str) -> str:
    """The field an answer names: ``output`` of "output", "run_complete.output" or
    "event['output']"."""
    names = _IDENTIFIER.findall(answer)
    return names[-1].lower() if names else answer.strip().lower()


def _field_hint(last: MeshEvent, field: str) -> str | None:
    """Where to look when ``field`` is not where run_complete keeps the published content."""
    if field == "output":
        return None
    if field in last.payload:
        return (f"{field!r} is inside run_complete's payload, which holds the run's status "
                "and sums: the content is in a field of the event itself")
    if field in last.to_dict():
        return (f"{field!r} is a field of run_complete, but not the one with the published "
                "content: read what each field of its JSON line holds")
    return (f"{field!r} is not a field of the run_complete event: read the keys of its JSON "
            "line (ex2_events[-1].to_dict())")


def _output_said(last: MeshEvent) -> str:
    """What the learner could see in run_complete's output, said plainly."""
    status = last.payload.get("status")
    if last.output is not None:
        return "run_complete carries the published content in 'output'"
    if status == RunStatus.REJECTED_AT_GATE.value:
        return ("'output' is the field, and in your run it is null: the reviewer rejected the "
                "draft at the gate, so nothing was published (the draft they read is the "
                "output of the gate_pause event)")
    return f"'output' is the field, and in your run it is null: the run ended {status}"


@self_check(
    given={"rejected": Instance(RunResult, "the misconfigured pipeline's run", kind=RUN),
           "fixed_events": ListOf(EVENTS.item, "the events of your fixed pipeline's run",
                                  kind=EVENTS.kind)},
    answers={"violated_rule": Text("the rule id in the rejection report",
                                   kind="a rule id in quotes, such as 'S001'"),
             "fixed_pipeline": Instance(WorkflowDefinition, "the pipeline built again, fixed",
                                        kind="a workflow (what build_capstone_pipeline "
                                             "returns)")})
def preflight_fix(rejected: RunResult, fixed_events: list[MeshEvent], violated_rule: str,
                  fixed_pipeline: WorkflowDefinition) -> Verdict:
    """Exercise 3: pre-flight rejected the broken pipeline before any node ran, the learner
    named the rule, and fixed the pipeline (not the policy) so that it gets past pre-flight."""
    if rejected.status is not RunStatus.REJECTED_PREFLIGHT:
        return hint("run the misconfigured pipeline (MISCONFIGURE = True) first: its status "
                    f"should be rejected_preflight, not {rejected.status.value}")
    rules = {p.rule: p.name for p in rejected.preflight.problems} \
        if rejected.preflight is not None else {}
    wrong = _rule_hint(violated_rule, rules) or _fix_hint(rejected, fixed_events,
                                                          fixed_pipeline)
    if wrong:
        return hint(wrong)
    rule = _rule_id(violated_rule)
    return passed(f"pre-flight stopped the broken pipeline ({rule} {rules[rule]}) before any "
                  "node ran; your fix keeps its policy and gets past pre-flight")


def _rule_id(answer: str) -> str | None:
    """The rule id an answer names: ``P001`` of "p001", "P001 ungated-risky-node", "[P001]"."""
    found = _RULE_ID.search(answer)
    return found.group(1).upper() if found else None


def _rule_hint(answer: str, rules: dict[str, str]) -> str | None:
    """Where to look when violated_rule is not a rule of the rejection (None when it is)."""
    rule = _rule_id(answer)
    if rule in rules:
        return None
    if rule is not None:
        return (f"violated_rule: {rule} is not in the rejection report above: read which "
                "rule it names")
    if answer.strip().lower() in rules.values():
        return ("violated_rule: that is the rule's name; give its id, the code in front of "
                "the name in the report")
    return (f"violated_rule: {answer!r} is not a rule id; the report names each rule in "
            "square brackets, a letter and three digits first")


def _fix_hint(rejected: RunResult, events: list[MeshEvent],
              fixed: WorkflowDefinition) -> str | None:
    """Where to look when the fixed run does not show a fixed pipeline under the same
    policy getting past pre-flight (None when it does)."""
    starts = [e for e in events if e.type is EventType.RUN_START]
    if not starts:
        return "fixed_events has no run yet: run the cell after your fix"
    if starts[-1].payload.get("policy") != _policy_of(rejected):
        return ("your fixed run has another policy than the broken one: keep POLICY as it "
                "is and fix the pipeline instead (step 4)")
    if any(e.type is EventType.PREFLIGHT_REJECTED for e in events):
        return "pre-flight rejected your fixed pipeline too: read its report above the stream"
    if starts[-1].payload.get("workflow") != fixed.name:
        return "fixed_events comes from another workflow than fixed_pipeline: run the cell " \
               "after your fix again"
    if not any(e.type is EventType.NODE_START for e in events):
        return "no node started in your fixed run: run the cell after your fix again"
    dropped = sorted(set(rejected.nodes) - {node.id for node in fixed.nodes})
    if dropped:
        return (f"your fixed pipeline has no {', '.join(dropped)}: fix what pre-flight named "
                "without taking steps out")
    return None


def _policy_of(run: RunResult) -> Any:
    """The policy a run recorded in its run_start event."""
    return next((e.payload.get("policy") for e in run.events
                 if e.type is EventType.RUN_START), None)


@self_check(given={"tampered": Instance(VERIFICATION.types, "the verification after the "
                                        "tamper", kind=VERIFICATION.kind),
                   "restored": Instance(VERIFICATION.types, "the restored ledger's "
                                        "verification", kind=VERIFICATION.kind)})
def tamper_detected(tampered: Any, restored: Any) -> Verdict:
    """Exercise 4: verification named the entry edited at seq 2, and the ledger restored
    from the export verifies again."""
    damaged, fresh = _verification(tampered), _verification(restored)
    if damaged.valid:
        return hint("tamper with seq 2 (step 4) and verify: the chain should be reported "
                    "DAMAGED")
    at_two = [p for p in damaged.problems if p.seq == 2]
    if not at_two:
        return hint("the damage found is not at seq 2: did the UPDATE hit seq 2 of a fresh "
                    "ledger?")
    if not fresh.valid:
        return hint("load the export into a fresh ledger (step 5) and verify it: it should "
                    "be VALID")
    return passed(f"seq 2 found {at_two[0].kind}; the fresh ledger verifies VALID")


def _verification(value: VerificationResult | LedgerView) -> VerificationResult:
    """The verifier's result, whether given as itself or inside an explorer view."""
    return value.check if isinstance(value, LedgerView) else value


CHECKLIST_ITEM = Pair(Text(min_words=3, min_distinct=2), OneOf(EFFORTS),
                      names=("text", "effort"), example="('what to change', 'Low')")


@self_check(answers={
    "checklist": MappingOf(ListOf(CHECKLIST_ITEM, unique_by=lambda item: item[0],
                                  kind="a list of (change, effort) pairs"),
                           "your production checklist", required=CHECKLIST_CATEGORIES,
                           missing="add items under {}"),
    "highest_risk": Text("the single highest-risk gap, with a sentence of reasoning",
                         min_words=8, min_distinct=5)})
def production_checklist(checklist: dict[str, list[tuple[str, str]]],
                         highest_risk: str) -> Verdict:
    """Exercise 5: at least 15 different items over the six categories, each with its own
    effort estimate, and a highest-risk gap from the list with a reason."""
    items = [(f"checklist[{category!r}][{n}]", text, effort)
             for category, entries in checklist.items()
             for n, (text, effort) in enumerate(entries)]
    twice = first_duplicate([text for _, text, _ in items])
    if twice:
        return hint(f"{items[twice[1]][0]} repeats {items[twice[0]][0]}: each item should be "
                    "a different change")
    if len(items) < MIN_CHECKLIST_ITEMS:
        return hint(f"{len(items)} items so far: list at least {MIN_CHECKLIST_ITEMS} (step 2 "
                    "names more in every category)")
    if len({effort for *_, effort in items}) == 1:
        return hint("every item has the same effort: estimate each one on its own (step 3)")
    risk = stems(highest_risk) - GENERIC_STEMS
    if not any(risk & stems(text) for _, text, _ in items):
        return hint("highest_risk should name one gap from your checklist, in its words, and "
                    "say why it is the riskiest")
    return passed(f"{len(items)} items in {len(checklist)} categories, each with an effort, "
                  "and a highest-risk gap with a reason")
