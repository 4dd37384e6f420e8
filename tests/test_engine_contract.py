"""The builder/engine contract: pre-flight only checks, the engine records to the ledger
it is handed and learns when recording fails, and governance talks to a run only
through its small protocol."""

from __future__ import annotations

import asyncio
import os

import duckdb
import pytest

from meshflow_nb import (
    AgentResult,
    EventType,
    HumanInLoopConfig,
    MeshflowError,
    Node,
    NodeContext,
    Policy,
    PolicyMode,
    RiskTier,
    RunStatus,
    WorkflowDefinition,
)
from meshflow_nb.ledger import LedgerWriteError, ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.policy.governor import Governor, PolicyStop

pytestmark = pytest.mark.usefixtures("mock_mode")

AUDITED = Policy(mode=PolicyMode.STANDARD, immutable_audit=True,
                 enable_cross_run_learning=True)


def two_nodes(policy: Policy | None = None) -> WorkflowDefinition:
    return (WorkflowDefinition("pair", policy=policy)
            .add_node("a", lambda ctx: "A").add_node("b", lambda ctx: ctx.inputs["a"] + "B")
            .add_edge("a", "b"))


def files_under(folder) -> set[str]:
    return {os.path.relpath(os.path.join(root, name), folder)
            for root, _, names in os.walk(folder) for name in names}


def damaged_ledger(folder) -> str:
    """A ledger file holding one run, then damaged from outside the toolkit, as someone
    with access to the file would do it."""
    path = str(folder / "ledger.duckdb")
    ledger = ReplayLedger(path)
    ledger.attach(two_nodes()).run("first")
    ledger.flush()
    con = duckdb.connect(path)
    con.execute("UPDATE ledger_entries SET output = '\"forged\"' WHERE seq = 2")
    con.close()
    return path


# --- pre-flight has no side effects ---------------------------------------------------


def test_preflight_seals_nothing_and_creates_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "ledger.duckdb")
    ledger = ReplayLedger(path)
    ledger.attach(two_nodes(AUDITED)).run("first")     # a ledger with one run in it
    ledger.flush()
    before = files_under(tmp_path)
    fresh = ReplayLedger(path)
    report = fresh.attach(two_nodes(AUDITED)).preflight()
    assert report.ok, report
    assert files_under(tmp_path) == before                # no learning store, no approvals
    assert not fresh.immutable                            # not sealed by a check
    fresh.sql("DELETE FROM ledger_entries WHERE seq < 0")  # so writes are still allowed


def test_preflight_reports_a_damaged_ledger_without_sealing_it(tmp_path):
    path = damaged_ledger(tmp_path)
    watched = ReplayLedger(path).attach(two_nodes(AUDITED))
    report = watched.preflight()
    assert report.rules == ["P008"]
    assert not watched.ledger.immutable


def test_preflight_without_a_ledger_under_audit_is_p007():
    assert two_nodes(AUDITED).preflight().rules == ["P007"]


def test_a_run_under_audit_seals_its_ledger_and_refuses_a_damaged_one(tmp_path):
    path = damaged_ledger(tmp_path)
    result = ReplayLedger(path).attach(two_nodes(AUDITED)).run("second")
    assert result.status is RunStatus.REJECTED_PREFLIGHT
    assert result.preflight.rules == ["P008"]
    assert result.nodes["a"].executions == 0


# --- the run learns that recording failed ---------------------------------------------


class FailingLedger:
    """A ledger whose disk is full: every append fails."""

    location = "full-disk.duckdb"

    def __init__(self) -> None:
        self.offered = 0

    def record(self, event) -> None:
        self.offered += 1
        raise LedgerWriteError("no space left on device")

    def verify_chain(self):
        raise AssertionError("not asked without audit")

    seal = verify_chain


def test_a_ledger_that_cannot_write_is_reported_in_the_result():
    workflow = two_nodes()
    workflow.ledger = FailingLedger()
    result = workflow.run("t")
    assert result.status is RunStatus.COMPLETED        # audit not required: the run goes on
    assert result.unrecorded == len(result.events) == workflow.ledger.offered
    assert "no space left on device" in result.recording_error
    assert f"ledger: {len(result.events)} events not recorded" in result.summary()


def test_a_refusing_real_ledger_is_counted_not_lost(tmp_path):
    path = damaged_ledger(tmp_path)
    sealed = ReplayLedger(path)
    assert not sealed.seal().valid                      # it now refuses every append
    result = sealed.attach(two_nodes()).run("second")
    assert result.unrecorded == len(result.events)
    assert result.recording_error.startswith("run_start: immutable_audit")


def test_a_clean_run_records_everything():
    workflow = build_capstone_pipeline(quality_scores=[0.6, 0.85])
    recorded = []

    class ListLedger:
        location = "memory"

        def record(self, event) -> None:
            recorded.append(event)

    workflow.ledger = ListLedger()
    result = workflow.run("t")
    assert result.unrecorded == 0 and result.recording_error is None
    assert [e.seq for e in recorded] == [e.seq for e in result.events]


# --- governance talks to a run through RunControl ------------------------------------


class Control:
    """The smallest thing a governor can govern: it keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[EventType, str | None, dict]] = []
        self.asked: list[str] = []

    def emit(self, type_, node=None, **fields):
        self.events.append((type_, node.id if node else None, fields.get("payload", {})))

    async def ask_approval(self, node, content, prompt, *, reason):
        self.asked.append(reason)

    def node(self, node_id):
        return None


def test_a_budget_stop_names_its_run_status():
    control = Control()
    governor = Governor(Policy(budget_usd=0.01, enable_guardian=False), control)
    node = Node("writer", lambda ctx: "x")
    with pytest.raises(PolicyStop) as stop:
        governor.after_complete(node, AgentResult(text="x", cost_usd=0.02))
    assert stop.value.status is RunStatus.BUDGET_EXCEEDED
    assert isinstance(stop.value, MeshflowError)
    assert control.events[0][0] is EventType.BUDGET_EXCEEDED


def test_outside_regulated_a_risky_ungated_node_asks_through_the_control():
    control = Control()
    policy = Policy(mode=PolicyMode.STANDARD, enable_guardian=False,
                    human_in_loop=HumanInLoopConfig(enabled=True,
                                                    tier_threshold=RiskTier.EXTERNAL_IO))
    governor = Governor(policy, control)
    risky = Node("publisher", lambda ctx: "sent", risk_tier=RiskTier.EXTERNAL_IO)
    governor.prepare(WorkflowDefinition("w").add_node(risky))
    ctx = NodeContext("r", "publisher", "executor", "task", {}, {}, {})
    asyncio.run(governor.before_node(risky, ctx))
    assert control.asked == ["risk_tier"]


def test_an_agents_own_timeout_error_is_its_error_not_the_nodes_timeout():
    def gives_up(ctx):
        raise TimeoutError("the upstream API did not answer")

    result = WorkflowDefinition("own").add_node("a", gives_up).run("t")
    failed = next(e for e in result.events if e.type is EventType.NODE_FAILED)
    assert failed.payload["reason"] == "exception"
    assert failed.payload["error"] == "TimeoutError: the upstream API did not answer"


def test_a_node_past_its_timeout_fails_with_the_timeout():
    async def slow(ctx):
        await asyncio.sleep(5)

    result = WorkflowDefinition("slow").add_node(Node("a", slow, timeout_s=0.05)).run("t")
    failed = next(e for e in result.events if e.type is EventType.NODE_FAILED)
    assert failed.payload == {**failed.payload, "reason": "timeout",
                              "error": "timed out after 0.05 s"}
