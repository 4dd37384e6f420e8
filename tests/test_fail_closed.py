"""Under required audit a run that cannot be recorded stops before anything acts on the
world; without it the run says what was not recorded; and the task is screened before
the first entry, so a secret typed into it reaches no sink at all."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr

import pytest

from meshflow_nb import (
    EventType,
    LedgerWriteError,
    Policy,
    PolicyMode,
    RiskTier,
    Role,
    RunStatus,
    WorkflowDefinition,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger

pytestmark = pytest.mark.usefixtures("mock_mode")

FAKE_KEY = "sk-ant-api03-" + "Qw7" * 20 + "AA"
EMAIL = "dana.reviewer@example.org"
CARD = "4111 1111 1111 1111"
SECRET_TASK = f"Summarise the launch plan; use key {FAKE_KEY}, mail {EMAIL}, card {CARD}"
RAW = (FAKE_KEY, EMAIL, CARD)

AUDITED = Policy(PolicyMode.STANDARD, immutable_audit=True, enable_guardian=False)


class FaultyLedger:
    """A ledger that fails in the ways a real one does, on cue: it refuses the entries
    after the first ``accept``, or those of type ``refuse`` (a full disk), or accepts
    all but cannot commit them (``commits=False``: the write-behind writer gave up)."""

    location = "faulty.duckdb"

    def __init__(self, accept: int = 10**6, commits: bool = True,
                 refuse: EventType | None = None) -> None:
        self.accept, self.commits, self.refuse, self.events = accept, commits, refuse, []

    def record(self, event) -> None:
        if len(self.events) >= self.accept or event.type is self.refuse:
            raise LedgerWriteError("no space left on device")
        self.events.append(event)

    def flush(self, *, run_id: str) -> None:
        if not self.commits:
            raise LedgerWriteError("the batch could not be committed: disk I/O error")

    def verify_chain(self):
        return type("Check", (), {"valid": True, "report": lambda self: ""})()

    seal = verify_chain


def publishing(ran: list[str], policy: Policy | None = AUDITED) -> WorkflowDefinition:
    """draft -> review -> publish, where publish acts on the world (EXTERNAL_IO)."""
    def agent(name):
        return lambda ctx: ran.append(name) or f"{name} done"
    return (WorkflowDefinition("publishing", policy=policy)
            .add_node("draft", agent("draft"), role=Role.EXECUTOR)
            .add_node("review", agent("review"), role=Role.CRITIC)
            .add_node("publish", agent("publish"), role=Role.ORCHESTRATOR,
                      risk_tier=RiskTier.EXTERNAL_IO)
            .add_edge("draft", "review").add_edge("review", "publish"))


# --- fail closed ---------------------------------------------------------------------


def test_under_audit_a_refused_entry_stops_the_run_before_anything_acts():
    ran: list[str] = []
    workflow = publishing(ran)
    workflow.ledger = FaultyLedger(accept=3)       # run_start, draft start, draft done
    result = workflow.run("t", approver=fixed_approver(True, "test"))
    assert result.status is RunStatus.AUDIT_FAILED
    assert "publish" not in ran and "no space left on device" in result.error
    assert [e.type for e in result.events].count(EventType.AUDIT_FAILED) == 1
    assert "not recorded" in result.summary()


def test_under_audit_nothing_at_external_io_starts_until_the_past_is_committed():
    ran: list[str] = []
    workflow = publishing(ran)
    workflow.ledger = FaultyLedger(commits=False)  # every entry taken, none committed
    result = workflow.run("t", approver=fixed_approver(True, "test"))
    assert result.status is RunStatus.AUDIT_FAILED
    assert ran == ["draft", "review"]              # publish was refused at the barrier
    assert result.nodes["publish"].status == "refused"
    assert not [e for e in result.events
                if e.type is EventType.NODE_START and e.node_id == "publish"]


def test_the_end_of_a_run_that_cannot_be_recorded_is_not_called_completed():
    workflow = publishing([])
    workflow.ledger = FaultyLedger(refuse=EventType.RUN_COMPLETE)
    result = workflow.run("t", approver=fixed_approver(True, "test"))
    assert result.status is RunStatus.AUDIT_FAILED


def test_without_required_audit_the_run_finishes_and_says_what_was_lost():
    ran: list[str] = []
    workflow = publishing(ran, policy=Policy(PolicyMode.STANDARD, enable_guardian=False))
    workflow.ledger = FaultyLedger(accept=3)
    result = workflow.run("t", approver=fixed_approver(True, "test"))
    assert result.status is RunStatus.COMPLETED and ran == ["draft", "review", "publish"]
    assert result.unrecorded == len(result.events) - 3
    assert f"{result.unrecorded} events not recorded (node_start:" in result.summary()


def test_a_rejected_run_stays_rejected_even_when_its_rejection_cannot_be_recorded():
    workflow = (WorkflowDefinition("broken", policy=AUDITED)
                .add_node("a", lambda ctx: "x").add_edge("a", "ghost"))
    workflow.ledger = FaultyLedger(accept=0)
    result = workflow.run("t")
    assert result.status is RunStatus.REJECTED_PREFLIGHT and result.unrecorded > 0


# --- the task is screened like any input ------------------------------------------------


def sinks(result, ledger: ReplayLedger, console: str) -> dict[str, str]:
    """Every place a task could end up, as text."""
    ledger.flush()
    return {
        "events": "\n".join(e.to_json() for e in result.events),
        "ledger rows": ledger.to_dataframe().to_json(),
        "run records": ledger.runs().to_json(),
        "export": ledger.export_run(result.run_id),
        "result": f"{result.task} {result.summary()} {result.outputs}",
        "console": console,
    }


@pytest.mark.parametrize("action", ["flag", "redact", "block"])
def test_a_secret_in_the_task_reaches_no_sink(tmp_path, action):
    seen: list[str] = []
    policy = Policy(PolicyMode.STANDARD, guardian_action=action)
    workflow = (WorkflowDefinition("leaky", policy=policy)
                .add_node("draft", lambda ctx: seen.append(ctx.task) or "a plan",
                          role=Role.EXECUTOR))
    ledger = ReplayLedger(str(tmp_path / "ledger.duckdb"))
    ledger.attach(workflow)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err):
        result = run_and_print(workflow, SECRET_TASK, stream=True, out=out)
    console = out.getvalue() + err.getvalue()
    for where, text in sinks(result, ledger, console).items():
        for raw in RAW:
            assert raw not in text, f"{raw[:12]}... reached the {where}"
    assert all(raw not in task for task in seen for raw in RAW)  # nor the agents
    assert "Running 'leaky' on: Summarise the launch plan" in console
    findings = [e for e in result.events if e.type is EventType.GUARDIAN_FINDING]
    assert {f.payload["kind"] for f in findings} >= {"email", "payment_card"}
    if action == "block":
        assert result.status is RunStatus.BLOCKED and not seen
    else:
        assert result.ok and "[REDACTED:email]" in json.loads(
            ledger.runs().to_json(orient="records"))[0]["task"]


def test_without_the_guardian_the_task_is_recorded_as_typed(tmp_path):
    workflow = (WorkflowDefinition("plain", policy=Policy(PolicyMode.DEV))
                .add_node("draft", lambda ctx: "a plan"))
    ledger = ReplayLedger(str(tmp_path / "ledger.duckdb"))
    ledger.attach(workflow)
    result = workflow.run(SECRET_TASK)
    ledger.flush()
    assert result.task == SECRET_TASK and FAKE_KEY in ledger.export_run(result.run_id)
