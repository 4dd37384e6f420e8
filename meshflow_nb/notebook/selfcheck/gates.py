"""Lesson 10's self-checks: human gates judged against the learner's own runs and ledger.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ex1_ledger``, ``ex1_notices``, ``ex2_result``, ``ex3_result``, ``ex3_ledger``,
``ex3_workflow``) and
the answer variables (``my_name``, ``decision_seq``, ``ex2_gate``, ``why_rejected``,
``who_rejected``, ``ex3_approver``, ``reject_reason``, ``external_io_started``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ...engine.results import RunResult
from ...events import EventType, MeshEvent
from ...hitl.requests import Decision
from ...ledger.replay import ReplayLedger
from ...model.graph import HumanGate
from ...model.roles import RiskTier
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from .expect import RUN, Count, Instance, ListOf, Text
from .framework import Verdict, hint, passed, self_check

MAX_TIMEOUT_S = 5.0
"""Exercise 2's gate must give up within this many seconds (nobody is going to answer)."""

LEDGER = Instance(ReplayLedger, "the exercise's ledger", kind="a ledger (a ReplayLedger)")
NOTICES = ListOf(Instance(dict, kind="a notice record (a dict)"),
                 "what the webhook receiver recorded", kind="a list of notice records")
DECISIONS = (EventType.GATE_RESUME, EventType.GATE_REJECT)


def _decision(run: RunResult) -> Decision | None:
    """The run's first gate decision (None when no gate was asked)."""
    return run.decisions[0] if run.decisions else None


def _entries(ledger: ReplayLedger, run_id: str) -> list[MeshEvent]:
    """The run's entries as the ledger holds them (not as the result remembers them)."""
    return list(ledger.events(run_id))


@self_check(
    given={"ex1_result": Instance(RunResult, "exercise 1's run", kind=RUN),
           "ex1_ledger": LEDGER, "ex1_notices": NOTICES},
    answers={"my_name": Text("the name you approve with", max_words=4,
                             kind="your name in quotes, such as 'Ada Lovelace'"),
             "decision_seq": Count("the seq of the ledger entry that records your decision")})
def webhook_approval(ex1_result: RunResult, ex1_ledger: ReplayLedger, ex1_notices: list,
                     my_name: str, decision_seq: int) -> Verdict:
    """Exercise 1: a signed notice reached the receiver, the learner approved through the
    store under their own name, and found the entry that records it."""
    run = ex1_result
    signed = [n for n in ex1_notices if n.get("run_id") == run.run_id and n.get("verified")]
    if not signed:
        return hint("the receiver recorded no notice with a valid signature for ex1_result: "
                    "run exercise 1's cells in order, from the one that sets my_name")
    decision = _decision(run)
    if decision is None or not decision.approved:
        return hint("your run was not approved at its gate: exercise 1's receiver approves "
                    "only when verdict is 'approve'; set it and run the exercise's cells again")
    if decision.reviewer != my_name:
        return hint("the decision in ex1_result names another reviewer than my_name: you "
                    "changed my_name after the run; run the exercise's run cell again")
    entries = {e.seq: e for e in _entries(ex1_ledger, run.run_id)}
    wrong = _seq_hint(entries.get(decision_seq), decision_seq, my_name)
    if wrong:
        return hint(wrong)
    return passed(f"entry {decision_seq} of your run records '{my_name}' approving "
                  f"through {decision.channel}, after a signed notice")


def _seq_hint(entry: MeshEvent | None, seq: int, name: str) -> str | None:
    """Where to look when entry ``seq`` is not the one recording the decision."""
    if entry is None:
        return (f"your run has no ledger entry {seq}: list ex1_ledger.events(ex1_result.run_id) "
                "and read each entry's seq")
    if entry.type in DECISIONS and entry.payload.get("reviewer") == name:
        return None
    if entry.type is EventType.GATE_PAUSE:
        return (f"entry {seq} is where the gate paused and asked: the decision is "
                "recorded in a later entry")
    return (f"entry {seq} is a {entry.type.value}: look for the entry whose payload names "
            "the reviewer")


@self_check(
    given={"ex2_result": Instance(RunResult, "exercise 2's run", kind=RUN)},
    answers={"ex2_gate": Instance(HumanGate, "the gate you built, with a timeout",
                                  kind="a HumanGate(...)"),
             "why_rejected": Text("the reason recorded for the rejection", max_words=8,
                                  kind="the reason in quotes"),
             "who_rejected": Text("the reviewer recorded for the rejection", max_words=4,
                                  kind="the reviewer's name in quotes")})
def gate_timeout(ex2_result: RunResult, ex2_gate: HumanGate, why_rejected: str,
                 who_rejected: str) -> Verdict:
    """Exercise 2: the learner's gate had a short timeout, nobody answered, and the
    learner read the reason and the reviewer of the rejection from the run."""
    timeout = ex2_gate.timeout_s
    if timeout is None or not math.isfinite(timeout) or timeout > MAX_TIMEOUT_S:
        return hint(f"ex2_gate needs a timeout_s of at most {MAX_TIMEOUT_S:g} seconds: "
                    "nobody will answer it, and it should give up soon")
    decision = _decision(ex2_result)
    if decision is None or ex2_result.status is not RunStatus.REJECTED_AT_GATE:
        return hint("ex2_result did not stop at its gate: run the exercise's run cell again "
                    "after the answer cell")
    if decision.channel != "timeout":
        return hint("someone decided ex2_result's gate before it timed out: run the run cell "
                    "again and let nobody answer")
    wrong = [name for name, said, recorded in (
        ("why_rejected", why_rejected, decision.reason),
        ("who_rejected", who_rejected, decision.reviewer)) if said.lower() != recorded.lower()]
    if wrong:
        return hint(f"{' and '.join(wrong)}: read the gate_reject entry of ex2_result "
                    "(its payload holds reviewer and reason), or the summary's gate line")
    return passed(f"after {timeout:g} s with no answer the gate rejected by itself: "
                  f"reviewer '{decision.reviewer}', reason '{decision.reason}'")


@self_check(
    given={"ex3_result": Instance(RunResult, "exercise 3's run", kind=RUN),
           "ex3_ledger": LEDGER,
           "ex3_workflow": Instance(WorkflowDefinition, "exercise 3's workflow",
                                    kind="a workflow (a WorkflowDefinition)")},
    answers={"ex3_approver": Instance(Callable, "the approver that rejects with your reason",
                                      kind="an approver, such as fixed_approver(...)"),
             "reject_reason": Text("the reason you reject with", min_words=4, min_distinct=3),
             "external_io_started": ListOf(Text(kind="a node id in quotes"),
                                           "the nodes at EXTERNAL_IO or above that started",
                                           kind="a list of node ids, such as ['draft']")})
def rejected_before_io(ex3_result: RunResult, ex3_ledger: ReplayLedger,
                       ex3_workflow: WorkflowDefinition, ex3_approver: Any,
                       reject_reason: str, external_io_started: list[str]) -> Verdict:
    """Exercise 3: the learner's approver rejected with their reason, and they read from
    the ledger that no node at EXTERNAL_IO or above started."""
    decision = _decision(ex3_result)
    if decision is None or decision.approved:
        return hint("ex3_result was not rejected at its gate: ex3_approver must return a "
                    "rejection (approved False); run the exercise's run cell again")
    if decision.reason.strip() != reject_reason:
        return hint("the reason recorded in ex3_result is not reject_reason: give "
                    "ex3_approver the same text, then run the run cell again")
    started = _risky_started(ex3_result, ex3_ledger, ex3_workflow)
    named = {n.lower() for n in external_io_started}
    if named != started:
        return hint("external_io_started: read the node_start entries of your run in "
                    "ex3_ledger and keep those whose node has risk_tier EXTERNAL_IO or above")
    return passed(f"rejected by '{decision.reviewer}' with your reason, and the ledger shows "
                  "no node at EXTERNAL_IO or above started")


def _risky_started(run: RunResult, ledger: ReplayLedger,
                   workflow: WorkflowDefinition) -> set[str]:
    """Ids of nodes at EXTERNAL_IO or above with a node_start entry in the ledger."""
    tiers = {node.id: node.risk_tier for node in workflow.nodes}
    started = {e.node_id for e in _entries(ledger, run.run_id)
               if e.type is EventType.NODE_START and e.node_id}
    return {node.lower() for node in started
            if _tier(tiers.get(node)) >= RiskTier.EXTERNAL_IO}


def _tier(value: Any) -> RiskTier:
    """A node's tier, READ_ONLY when unknown."""
    try:
        return RiskTier[value] if isinstance(value, str) else RiskTier(value)
    except (KeyError, ValueError, TypeError):
        return RiskTier.READ_ONLY
