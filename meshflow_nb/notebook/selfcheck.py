"""Self-check cells of the capstone lesson's exercises: look at the learner's real run
and ledger, answer PASS or a HINT that points at where to look (never the answer).

Each check returns a `Check`; a notebook shows it as one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.results import RunResult
from ..events import EventType, MeshEvent
from ..model.status import RunStatus

STREAM_TYPES = ("run_start", "node_start", "node_complete", "gate_pause", "run_complete")
"""Event types every streamed run of the capstone has (plus the gate's decision;
loop_iteration only when the critic sent a draft back)."""

CHECKLIST_CATEGORIES = ("agents", "secrets", "ledger", "hitl", "observability",
                        "infrastructure")
"""Exercise 5's categories: agent implementations, API keys and secrets, ledger and
database, HITL gate, observability, infrastructure."""

EFFORTS = ("Low", "Medium", "High")
MIN_CHECKLIST_ITEMS = 15


@dataclass(frozen=True)
class Check:
    """The outcome of one self-check."""

    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'HINT'}: {self.message}"

    __repr__ = __str__


def node_map(result: RunResult, nodes_executed: int | None,
             loop_iterations: int | None) -> Check:
    """Exercise 1: the learner's counts match the run they mapped."""
    if nodes_executed is None or loop_iterations is None:
        return Check(False, "set nodes_executed and loop_iterations from your run's output")
    wrong = []
    if nodes_executed != result.totals.node_executions:
        wrong.append("nodes_executed: count the node_complete rows of the event table "
                     "(a node that ran twice counts twice)")
    if loop_iterations != result.totals.loop_iterations:
        wrong.append("loop_iterations: count the loop_iteration rows (each is one trip "
                     "back from quality_gate to writer)")
    if wrong:
        return Check(False, "; ".join(wrong))
    return Check(True, f"{nodes_executed} node executions and {loop_iterations} loop "
                       f"iteration(s), as in run {result.run_id}")


def stream_labels(events: Sequence[MeshEvent], final_output_field: str | None) -> Check:
    """Exercise 2: the stream showed every kind of event, and the learner found where
    the published content is."""
    seen = {event.type.value for event in events}
    missing = [t for t in STREAM_TYPES if t not in seen]
    if not seen & {"gate_resume", "gate_reject"}:
        missing.append("gate_resume or gate_reject")
    if missing:
        return Check(False, f"your stream has no {', '.join(missing)} event: stream a full "
                            "run of the capstone pipeline (section 6)")
    if final_output_field is None:
        return Check(False, "set final_output_field to the field of the last event that "
                            "carries the published content")
    if final_output_field.strip() != "output" or events[-1].type is not EventType.RUN_COMPLETE:
        return Check(False, f"{final_output_field!r} is not where the run_complete event "
                            "keeps the output: look at the keys of its JSON line")
    loops = sum(e.type is EventType.LOOP_ITERATION for e in events)
    return Check(True, f"{len(events)} events of {len(seen)} types ({loops} loop "
                       f"iteration(s)); the run_complete event carries the output in "
                       f"{final_output_field!r}")


def preflight_fix(rejected: RunResult, fixed: RunResult | Sequence[MeshEvent] | None,
                  violated_rule: str | None) -> Check:
    """Exercise 3: pre-flight rejected the broken pipeline before any node ran, the
    learner named the rule, and the fixed pipeline got past pre-flight (``fixed``: its
    result, or the events it streamed)."""
    if rejected.status is not RunStatus.REJECTED_PREFLIGHT:
        return Check(False, "run the misconfigured pipeline (MISCONFIGURE = True) first: "
                            f"its status should be rejected_preflight, not {rejected.status.value}")
    if _ran_any_node(rejected.events):
        return Check(False, "a node ran in the rejected run: pre-flight must stop it first")
    rules = {p.rule for p in rejected.preflight.problems} if rejected.preflight else set()
    if violated_rule is None or violated_rule.strip().upper() not in rules:
        return Check(False, "set violated_rule to the rule id (P... or S...) in the "
                            "rejection report above")
    if fixed is None or not _ran_any_node(getattr(fixed, "events", fixed)):
        return Check(False, "fix the configuration (step 4) and run it again: the fixed "
                            "run must get past pre-flight")
    return Check(True, f"pre-flight stopped the broken pipeline ({violated_rule.upper()}) "
                       f"before any node ran; the fixed one ran ({fixed.status.value})")


def tamper_detected(tampered: Any, restored: Any) -> Check:
    """Exercise 4: verification named the entry edited at seq 2, and the fresh ledger
    verifies again. Both arguments are `VerificationResult`s (or `LedgerView`s)."""
    tampered = getattr(tampered, "check", tampered)
    restored = getattr(restored, "check", restored)
    if tampered is None or tampered.valid:
        return Check(False, "tamper with seq 2 (step 5) and verify: the chain should be "
                            "reported DAMAGED")
    at_two = [p for p in tampered.problems if p.seq == 2]
    if not at_two:
        return Check(False, "the damage found is not at seq 2: did the UPDATE hit seq 2 of "
                            "a fresh ledger?")
    if restored is None or not restored.valid:
        return Check(False, "re-run the pipeline on a fresh ledger (step 6) and verify it: "
                            "it should be VALID")
    return Check(True, f"seq 2 found {at_two[0].kind}; the fresh ledger verifies VALID")


def production_checklist(checklist: Mapping[str, Iterable[tuple[str, str]]],
                         highest_risk: str | None) -> Check:
    """Exercise 5: at least 15 items over the six categories, each with an effort, and
    a reasoned highest-risk gap."""
    items = [(cat, item, effort) for cat, entries in checklist.items()
             for item, effort in entries]
    missing = [c for c in CHECKLIST_CATEGORIES if not checklist.get(c)]
    if missing:
        return Check(False, f"add items under {', '.join(missing)}")
    bad = [item for _, item, effort in items if effort not in EFFORTS]
    if bad:
        return Check(False, f"give an effort of Low, Medium or High to: {bad[0]!r}")
    if len(items) < MIN_CHECKLIST_ITEMS:
        return Check(False, f"{len(items)} items so far: list at least {MIN_CHECKLIST_ITEMS}")
    if not highest_risk or len(highest_risk.split()) < 8:
        return Check(False, "name the highest-risk gap in highest_risk, with a sentence "
                            "of reasoning")
    return Check(True, f"{len(items)} items in {len(checklist)} categories, each with an "
                       "effort, and a highest-risk gap")


def _ran_any_node(events: Iterable[MeshEvent]) -> bool:
    return any(e.type is EventType.NODE_START for e in events)
