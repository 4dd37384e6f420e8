"""Lesson 10's self-checks, judged against real gated runs in mock mode on ledgers of
their own.

Every check is called with a right answer (PASS), wrong answers, values of the wrong
type, filler and duplicates (HINT): it never raises, and a HINT never gives the answer
away.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshflow_nb import (
    Decision,
    HumanGate,
    Node,
    Policy,
    ReplayLedger,
    RiskTier,
    Role,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.notebook.selfcheck import Verdict
from meshflow_nb.notebook.selfcheck import gates as checks

TASK = "Announce the battery-recycling programme to our customers"
REASON = "the store count is wrong, we have 132 stores and not 140"
WRONG_TYPES = [["3"], {"a": 1}, 9.5, math.nan, object(), True, b"3"]
FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a", "asdf", "..."]
HUGE = "gate_resume " * 20_000


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Path]:
    """Mock agents, no latency, a decision store of this module's own."""
    folder = tmp_path_factory.mktemp("gates")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        patch.setenv("MESHFLOW_APPROVALS_DIR", str(folder / "approvals"))
        for name in ("MESHFLOW_HITL", "MESHFLOW_REVIEWER"):
            patch.delenv(name, raising=False)
        yield folder


def announcement(gate: HumanGate, name: str = "announce") -> WorkflowDefinition:
    """The lesson's workflow: research -> write -> gate -> publish (EXTERNAL_IO)."""
    return (WorkflowDefinition(name)
            .add_node(Node("research", lambda ctx: "facts", Role.RESEARCHER, RiskTier.READ_ONLY))
            .add_node(Node("write", lambda ctx: "# Post\n\nBring batteries back.",
                           Role.EXECUTOR))
            .add_node(Node("publish", lambda ctx: "sent", Role.ORCHESTRATOR,
                           RiskTier.EXTERNAL_IO))
            .add_node(gate)
            .add_edge("research", "write").add_edge("write", gate.id)
            .add_edge(gate.id, "publish"))


def review(timeout_s: float | None = None) -> HumanGate:
    return HumanGate("review", prompt="Send this post?", content_from="write",
                     timeout_s=timeout_s)


@pytest.fixture(scope="module")
def ex1(env: Path) -> SimpleNamespace:
    """Exercise 1's givens: a run approved by 'Ada' through the store, and its notice."""
    ledger = ReplayLedger(env / "ex1.duckdb")
    run = ledger.attach(announcement(review())).run(
        TASK, policy=Policy(), approver=fixed_approver(True, "Ada", "ok", channel="cli"))
    seq = next(e.seq for e in ledger.events(run.run_id) if e.type.value == "gate_resume")
    pause = next(e.seq for e in ledger.events(run.run_id) if e.type.value == "gate_pause")
    notices = [{"verified": False, "run_id": None}, {"verified": True, "run_id": run.run_id}]
    return SimpleNamespace(result=run, ledger=ledger, notices=notices, seq=seq, pause=pause)


def webhook(ex1: SimpleNamespace, **answers) -> Verdict:
    values = {"my_name": "Ada", "decision_seq": ex1.seq, **answers}
    return checks.webhook_approval(ex1.result, ex1.ledger, ex1.notices, **values)


def test_webhook_approval_passes_the_right_answer(ex1):
    verdict = webhook(ex1)
    assert verdict.passed and f"entry {ex1.seq}" in verdict.message and "'Ada'" in verdict.message


@pytest.mark.parametrize("seq, where", [(99, "has no ledger entry"), (2, "look for the entry")])
def test_webhook_approval_hints_at_a_wrong_seq(ex1, seq, where):
    verdict = webhook(ex1, decision_seq=seq)
    assert not verdict.passed and where in verdict.message and str(ex1.seq) not in verdict.message


def test_webhook_approval_tells_the_pause_from_the_decision(ex1):
    verdict = webhook(ex1, decision_seq=ex1.pause)
    assert not verdict.passed and "paused" in verdict.message


def test_webhook_approval_hints_at_another_name_and_no_signed_notice(ex1):
    assert "another reviewer" in webhook(ex1, my_name="Bob").message
    unsigned = checks.webhook_approval(ex1.result, ex1.ledger, ex1.notices[:1],
                                       my_name="Ada", decision_seq=ex1.seq)
    assert not unsigned.passed and "valid signature" in unsigned.message


def test_webhook_approval_hints_at_a_rejected_run(env, ex1):
    ledger = ReplayLedger(env / "ex1-rejected.duckdb")
    run = ledger.attach(announcement(review())).run(
        TASK, policy=Policy(), approver=fixed_approver(False, "Ada", "no", channel="cli"))
    verdict = checks.webhook_approval(run, ledger, [{"verified": True, "run_id": run.run_id}],
                                      my_name="Ada", decision_seq=8)
    assert not verdict.passed and "not approved" in verdict.message


@pytest.mark.parametrize("junk", [None, *WRONG_TYPES, *FILLER, HUGE, "", "  "])
def test_webhook_approval_never_raises_on_junk(ex1, junk):
    for name in ("my_name", "decision_seq"):
        verdict = webhook(ex1, **{name: junk})
        assert isinstance(verdict, Verdict) and not verdict.passed, (name, junk)
    given = checks.webhook_approval(junk, junk, junk, my_name="Ada", decision_seq=ex1.seq)
    assert not given.passed


@pytest.fixture(scope="module")
def ex2(env: Path) -> SimpleNamespace:
    """Exercise 2's givens: a gate of 0.3 s that nobody answered (the store waits)."""
    gate = review(0.3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_HITL", "store")
        run = announcement(gate).run(TASK, policy=Policy())
    return SimpleNamespace(result=run, gate=gate)


def timeout(ex2: SimpleNamespace, **answers) -> Verdict:
    values = {"ex2_gate": ex2.gate, "why_rejected": "timeout", "who_rejected": "system",
              **answers}
    return checks.gate_timeout(ex2.result, **values)


def test_gate_timeout_passes_the_right_answer(ex2):
    verdict = timeout(ex2)
    assert verdict.passed and "0.3 s" in verdict.message
    assert timeout(ex2, why_rejected="Timeout", who_rejected="System").passed


def test_gate_timeout_hints_at_wrong_readings(ex2):
    verdict = timeout(ex2, why_rejected="nobody clicked")
    assert not verdict.passed and "why_rejected" in verdict.message and "timeout" not in \
        verdict.message.split(":")[0]
    both = timeout(ex2, why_rejected="rejected", who_rejected="dana")
    assert "why_rejected and who_rejected" in both.message and "system" not in both.message


def test_gate_timeout_hints_at_a_gate_without_a_short_timeout(ex2):
    for gate in (review(), review(600)):
        verdict = timeout(ex2, ex2_gate=gate)
        assert not verdict.passed and "timeout_s" in verdict.message


def test_gate_timeout_hints_at_a_run_someone_decided(ex1, ex2):
    verdict = checks.gate_timeout(ex1.result, ex2_gate=ex2.gate, why_rejected="timeout",
                                  who_rejected="system")
    assert not verdict.passed and "did not stop" in verdict.message


@pytest.mark.parametrize("junk", [None, *WRONG_TYPES, *FILLER[:2], HUGE, ""])
def test_gate_timeout_never_raises_on_junk(ex2, junk):
    for name in ("ex2_gate", "why_rejected", "who_rejected"):
        verdict = timeout(ex2, **{name: junk})
        assert isinstance(verdict, Verdict) and not verdict.passed, (name, junk)
    assert not checks.gate_timeout(junk, ex2_gate=ex2.gate, why_rejected="timeout",
                                   who_rejected="system").passed


@pytest.fixture(scope="module")
def ex3(env: Path) -> SimpleNamespace:
    """Exercise 3's givens: a run rejected with REASON, on a ledger of its own."""
    ledger = ReplayLedger(env / "ex3.duckdb")
    workflow = ledger.attach(announcement(review(), name="exercise3"))
    approver = fixed_approver(False, "Ada", REASON)
    run = workflow.run(TASK, policy=Policy(), approver=approver)
    return SimpleNamespace(result=run, ledger=ledger, workflow=workflow, approver=approver)


def rejected(ex3: SimpleNamespace, result=None, **answers) -> Verdict:
    values = {"ex3_approver": ex3.approver, "reject_reason": REASON,
              "external_io_started": [], **answers}
    return checks.rejected_before_io(result or ex3.result, ex3.ledger, ex3.workflow, **values)


def test_rejected_before_io_passes_the_right_answer(ex3):
    verdict = rejected(ex3)
    assert verdict.passed and "'Ada'" in verdict.message


def test_rejected_before_io_accepts_a_function_approver(ex3):
    async def approver(request):
        return Decision(False, "Ada", REASON, node_id=request.node_id)

    assert rejected(ex3, ex3_approver=approver).passed


def test_rejected_before_io_hints_at_wrong_answers(ex1, ex3):
    nodes = rejected(ex3, external_io_started=["publish"])
    assert not nodes.passed and "external_io_started" in nodes.message
    assert not rejected(ex3, external_io_started=["write"]).passed
    other = rejected(ex3, reject_reason="the post says nothing about the opening hours")
    assert not other.passed and "not reject_reason" in other.message
    approved = checks.rejected_before_io(ex1.result, ex1.ledger, ex3.workflow,
                                         ex3_approver=ex3.approver, reject_reason=REASON,
                                         external_io_started=[])
    assert not approved.passed and "was not rejected" in approved.message


def test_rejected_before_io_catches_filler_and_duplicates(ex3):
    for junk in (*FILLER, "no no no no no"):
        assert not rejected(ex3, reject_reason=junk).passed, junk
    twice = rejected(ex3, external_io_started=["publish", "publish"])
    assert not twice.passed


@pytest.mark.parametrize("junk", [None, *WRONG_TYPES, HUGE, "", [None], [3]])
def test_rejected_before_io_never_raises_on_junk(ex3, junk):
    for name in ("ex3_approver", "reject_reason", "external_io_started"):
        verdict = rejected(ex3, **{name: junk})
        assert isinstance(verdict, Verdict) and not verdict.passed, (name, junk)
    assert not checks.rejected_before_io(junk, junk, junk, ex3_approver=ex3.approver,
                                         reject_reason=REASON, external_io_started=[]).passed
