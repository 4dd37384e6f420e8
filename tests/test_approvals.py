"""Approval channels: the decision store, the signed webhook, the terminal prompt, the CLI.

Real parts throughout: an HTTP server on 127.0.0.1, a second Python process that waits
at the capstone's gate, and the command line deciding for it from outside.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshflow_nb import (
    Decision,
    EventType,
    HumanGate,
    HumanInLoopConfig,
    Node,
    Policy,
    RiskTier,
    Role,
    RunStatus,
    WorkflowDefinition,
)
from meshflow_nb.cli.commands import main as cli_main
from meshflow_nb.hitl import (
    ApprovalError,
    GateRequest,
    StoreApprover,
    WebhookApprover,
    pending_requests,
    resolve_approver,
    submit_decision,
    verify_signature,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-tests-" + "q" * 24


@pytest.fixture(autouse=True)
def approvals(tmp_path, monkeypatch) -> Path:
    """A store of this test's own; no approval setting inherited from the shell."""
    store = tmp_path / "approvals"
    monkeypatch.setenv("MESHFLOW_APPROVALS_DIR", str(store))
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    for name in ("MESHFLOW_HITL", "MESHFLOW_WEBHOOK_SECRET", "MESHFLOW_REVIEWER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return store


def gated(published: list[str] | None = None, timeout_s: float | None = None
          ) -> WorkflowDefinition:
    """draft -> review (human gate, ``timeout_s``) -> publish (EXTERNAL_IO)."""
    published = published if published is not None else []

    def publish(ctx):
        published.append(ctx.run_id)
        return "published"

    return (WorkflowDefinition("gated")
            .add_node("draft", lambda ctx: "A short draft about batteries.", role=Role.EXECUTOR)
            .add_node(HumanGate("review", prompt="Publish this draft?", timeout_s=timeout_s))
            .add_node(Node("publish", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
            .add_edge("draft", "review").add_edge("review", "publish"))


def wait_for_pending(timeout: float = 20.0, proc: subprocess.Popen | None = None) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pending_requests()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the waiting process ended early:\n{proc.communicate()}")
        time.sleep(0.02)
    pytest.fail("no request appeared in the approvals directory")


def events_text(result) -> str:
    return json.dumps([e.to_dict() for e in result.events], default=str)


# --- a real webhook receiver --------------------------------------------------------------


@pytest.fixture
def receiver():
    """An HTTP server on an ephemeral port that records each POST's body and signature."""
    notices: list[SimpleNamespace] = []
    got = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            notices.append(SimpleNamespace(
                body=body, path=self.path, signature=self.headers.get("X-Meshflow-Signature"),
                content_type=self.headers.get("Content-Type"), headers=str(self.headers)))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/hooks/meshflow",
                          notices=notices, got=got)
    server.shutdown()
    server.server_close()


def test_the_webhook_notice_is_signed_and_a_store_decision_resumes_the_run(
        receiver, monkeypatch, approvals):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", SECRET)
    published: list[str] = []
    policy = Policy("standard", human_in_loop=HumanInLoopConfig(approval_webhook=receiver.url))
    handle = gated(published).start("Assess batteries", policy=policy)
    assert receiver.got.wait(10), "no notice reached the receiver"

    notice = receiver.notices[0]
    assert notice.path == "/hooks/meshflow" and notice.content_type == "application/json"
    assert verify_signature(notice.body, notice.signature, SECRET)
    assert not verify_signature(notice.body + b" ", notice.signature, SECRET)
    assert not verify_signature(notice.body, notice.signature, "another secret")
    assert not verify_signature(notice.body, None, SECRET)
    body = json.loads(notice.body)
    assert body["run_id"] == handle.run_id and body["node_id"] == "review"
    assert body["prompt"] == "Publish this draft?" and body["risk_tier"] == "EXTERNAL_IO"
    assert body["protects"] == ["publish"] and "batteries" in body["content_preview"]
    assert body["timeout_s"] is None and body["requested_at"]
    assert body["decide"] == (f"meshflow-nb approve {handle.run_id} --reviewer NAME "
                              "[--reject --reason TEXT]")
    assert SECRET not in notice.body.decode() and SECRET not in notice.headers
    assert not published  # still waiting

    assert [r["run_id"] for r in pending_requests()] == [handle.run_id]
    submit_decision(handle.run_id, True, "dana", "looks good")
    result = handle.result(timeout=10)

    assert result.status is RunStatus.COMPLETED and published == [handle.run_id]
    decision = result.decisions[0]
    assert (decision.approved, decision.reviewer, decision.reason, decision.channel) == \
        (True, "dana", "looks good", "cli")
    resume = next(e for e in result.events if e.type is EventType.GATE_RESUME)
    assert resume.payload["reviewer"] == "dana" and resume.payload["channel"] == "cli"
    assert SECRET not in events_text(result)
    assert list(approvals.iterdir()) == []  # request and decision cleaned up


def test_a_failed_webhook_post_is_reported_and_the_store_still_decides(
        monkeypatch, caplog):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", SECRET)
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    approver = WebhookApprover(f"http://127.0.0.1:{port}/private/token123", poll_s=0.05)
    caplog.set_level(logging.WARNING, logger="meshflow_nb.approvals")
    handle = gated().start("t", approver=approver)
    [request] = wait_for_pending()
    deadline = time.monotonic() + 10
    while not approver.deliveries and time.monotonic() < deadline:  # posted beside the wait
        time.sleep(0.01)
    submit_decision(request["run_id"], False, "erin", "not now")
    result = handle.result(timeout=10)

    assert result.status is RunStatus.REJECTED_AT_GATE
    assert result.decisions[0].reviewer == "erin" and "publish" not in result.executed
    [delivery] = approver.deliveries
    assert not delivery.ok and delivery.target == f"http://127.0.0.1:{port}"
    logged = caplog.text
    assert "webhook notice to" in logged and "failed" in logged
    assert SECRET not in logged and "token123" not in logged
    assert SECRET not in events_text(result) and SECRET not in repr(approver)


@pytest.fixture
def silent_receiver():
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listening socket closed at teardown
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hooks/meshflow"
    server.close()
    for connection in held:
        connection.close()


def test_a_webhook_that_never_answers_holds_the_gate_no_longer_than_its_timeout(
        silent_receiver, monkeypatch):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", SECRET)
    approver = WebhookApprover(silent_receiver, poll_s=0.05)  # its POST timeout: 5 s
    started = time.monotonic()
    result = gated(timeout_s=2.0).run("t", approver=approver)
    took = time.monotonic() - started
    assert result.status is RunStatus.REJECTED_AT_GATE
    assert result.decisions[0].reason == "timeout"
    assert took < 2.0 + 1.5, f"the run ended {took:.1f} s after it started"


def test_a_decision_is_read_while_the_webhook_post_still_hangs(silent_receiver, monkeypatch):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", SECRET)
    approver = WebhookApprover(silent_receiver, poll_s=0.05)
    handle = gated().start("t", approver=approver)
    [request] = wait_for_pending()
    submit_decision(request["run_id"], True, "dana", "seen")
    started = time.monotonic()
    result = handle.result(timeout=10)
    assert result.ok and result.decisions[0].reviewer == "dana"
    assert time.monotonic() - started < 1.5  # not after the 5 s POST timeout


# --- another process decides -------------------------------------------------------------

CAPSTONE_SCRIPT = """
from meshflow_nb.pipelines import build_capstone_pipeline

result = build_capstone_pipeline().run("Assess solid-state batteries")
print("status", result.status.value)
print("executed", " ".join(result.executed))
print("decision", result.decisions[-1].describe())
"""


def python(*args: str, env: dict[str, str], **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL, **options)


def test_a_script_waits_until_the_cli_in_another_process_rejects(tmp_path, approvals):
    script = tmp_path / "capstone.py"
    script.write_text(CAPSTONE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "MESHFLOW_HITL": "store", "PYTHONPATH": str(ROOT),
           "MESHFLOW_LEDGER_DB": str(tmp_path / "ledger.duckdb")}
    waiting = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        [request] = wait_for_pending(proc=waiting)
        run_id = request["run_id"]
        listed = python("-m", "meshflow_nb", "pending", env=env)
        assert listed.returncode == 0 and run_id in listed.stdout and "hitl_gate" in listed.stdout
        as_json = json.loads(python("-m", "meshflow_nb", "pending", "--json", env=env).stdout)
        assert [r["run_id"] for r in as_json] == [run_id]

        decided = python("-m", "meshflow_nb", "approve", run_id, "--reviewer", "dana",
                         "--reject", "--reason", "facts unchecked", env=env)
        assert decided.returncode == 0, decided.stderr
        assert "rejected by dana via cli: facts unchecked" in decided.stdout
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert "status rejected_at_gate" in out
    executed = next(line for line in out.splitlines() if line.startswith("executed"))
    assert "writer" in executed and "publisher" not in executed
    assert "decision rejected by dana via cli: facts unchecked" in out
    assert pending_requests() == [] and list(approvals.iterdir()) == []


# --- the store on its own ------------------------------------------------------------------


def request_for(run_id: str, node_id: str = "review") -> GateRequest:
    return GateRequest(run_id, node_id, {"draft": "x" * 5000}, "Approve?", ("publish",),
                       RiskTier.EXTERNAL_IO, None)


def test_the_store_approver_and_the_cli_agree_on_one_decision(capsys):
    async def scenario():
        approver = StoreApprover(poll_s=0.02)
        waiting = asyncio.ensure_future(approver(request_for("r1", "gate/a.b")))
        while not pending_requests():
            await asyncio.sleep(0.01)
        [request] = pending_requests()
        assert request["node_id"] == "gate/a.b" and request["content_truncated"] is True
        assert len(request["content_preview"]) == 2000

        assert cli_main(["approve", "r2", "--reviewer", "dana"]) == 2
        assert cli_main(["approve", "r1", "--reviewer", "dana", "--node", "other"]) == 2
        assert cli_main(["approve", "r1", "--reviewer", "  "]) == 2
        assert cli_main(["approve", "r1", "--reviewer", "dana", "--reason", "ok"]) == 0
        with pytest.raises(ApprovalError, match="already been decided"):
            submit_decision("r1", False, "erin")
        return await waiting

    decision = asyncio.run(scenario())
    assert (decision.approved, decision.reviewer, decision.reason, decision.channel,
            decision.node_id) == (True, "dana", "ok", "cli", "gate/a.b")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("meshflow-nb: error: no run r2 is waiting for approval; pending: "
                      f"r1 (gate/a.b) (in {os.environ['MESHFLOW_APPROVALS_DIR']})")
    assert "is not waiting at 'other'; it waits at: gate/a.b" in err[1]
    assert "--reviewer needs a name" in err[2]
    assert pending_requests() == []


def test_a_cancelled_wait_removes_its_request():
    async def scenario():
        waiting = asyncio.ensure_future(StoreApprover(poll_s=0.02)(request_for("r3")))
        while not pending_requests():
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())
    assert pending_requests() == []


def test_the_gate_timeout_rejects_and_leaves_no_request_behind(monkeypatch, approvals):
    monkeypatch.setenv("MESHFLOW_HITL", "store")
    published: list[str] = []
    policy = Policy("standard", human_in_loop=HumanInLoopConfig(timeout_s=0.2))
    result = gated(published).run("t", policy=policy)
    assert result.status is RunStatus.REJECTED_AT_GATE and not published
    decision = result.decisions[0]
    assert (decision.approved, decision.reason, decision.channel) == (False, "timeout", "timeout")
    assert approvals.is_dir() and list(approvals.iterdir()) == []  # it did wait in the store


# --- the terminal prompt -------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def answer_with(monkeypatch, *answers: str) -> list[str]:
    """stdin and stdout are a terminal; ``input`` returns ``answers``, then hits EOF."""
    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    asked: list[str] = []
    queue = list(answers)

    def fake_input(prompt: str = "") -> str:
        asked.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    monkeypatch.setattr(builtins, "input", fake_input)
    return asked


def test_on_a_terminal_the_reviewer_is_asked(monkeypatch):
    asked = answer_with(monkeypatch, "y", "dana", "reads well")
    result = gated().run("t")
    assert result.status is RunStatus.COMPLETED
    assert asked[0] == f"Approve review (EXTERNAL_IO) for run {result.run_id}? [y/N] "
    decision = result.decisions[0]
    assert (decision.approved, decision.reviewer, decision.reason, decision.channel) == \
        (True, "dana", "reads well", "terminal")
    assert "Publish this draft?" in sys.stdout.getvalue()


def test_end_of_input_or_an_empty_answer_rejects(monkeypatch):
    answer_with(monkeypatch)
    result = gated().run("t")
    assert result.status is RunStatus.REJECTED_AT_GATE and "publish" not in result.executed
    assert "end of input" in result.decisions[0].reason

    answer_with(monkeypatch, "", "dana", "")
    decision = gated().run("t").decisions[0]
    assert not decision.approved and decision.reviewer == "dana"
    assert "empty answer" in decision.reason


def test_without_a_terminal_the_headless_default_still_approves(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    result = gated().run("t")
    assert result.ok and result.decisions[0].channel == "headless"
    assert result.decisions[0].reason.startswith("approved by default: no approver configured")


def test_a_default_approval_says_so_loudly_and_how_to_reject(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    caplog.set_level(logging.WARNING, logger="meshflow_nb.approvals")
    result = gated().run("t")
    [warning] = [r for r in caplog.records if "approved by default" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert f"gate review of run {result.run_id}" in warning.getMessage()
    assert "MESHFLOW_HITL=reject" in warning.getMessage()
    [resumed] = [e for e in result.events if e.type is EventType.GATE_RESUME]
    assert "approved by default" in resumed.payload["reason"]
    assert "MESHFLOW_HITL=reject" in resumed.payload["reason"]


def test_an_explicit_headless_setting_is_quiet(monkeypatch, caplog):
    monkeypatch.setenv("MESHFLOW_HITL", "approve")
    caplog.set_level(logging.WARNING, logger="meshflow_nb.approvals")
    result = gated().run("t")
    assert result.ok and result.decisions[0].reason == "MESHFLOW_HITL=approve"
    assert "approved by default" not in caplog.text


# --- configuration mistakes -------------------------------------------------------------


def test_a_webhook_without_its_secret_is_a_preflight_problem(receiver):
    published: list[str] = []
    policy = Policy("standard", human_in_loop=HumanInLoopConfig(approval_webhook=receiver.url))
    result = gated(published).run("t", policy=policy)
    assert result.status is RunStatus.REJECTED_PREFLIGHT and not published
    [problem] = result.preflight.problems
    assert problem.rule == "S019" and "MESHFLOW_WEBHOOK_SECRET" in problem.message
    assert problem.fix.startswith("export MESHFLOW_WEBHOOK_SECRET=")
    assert not [e for e in result.events if e.type is EventType.NODE_START]
    assert not receiver.notices


def test_other_approval_settings_that_cannot_work(monkeypatch):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", SECRET)
    ftp = Policy("standard", human_in_loop=HumanInLoopConfig(approval_webhook="ftp://x/y"))
    [problem] = gated().run("t", policy=ftp).preflight.problems
    assert problem.rule == "S019" and "http:// or https://" in problem.message
    monkeypatch.setenv("MESHFLOW_HITL", "sometimes")
    report = gated().preflight()
    assert report.rules == ["S019"] and "'store'" in str(report)
    explicit = StoreApprover()
    assert resolve_approver(ftp, explicit) is explicit  # an approver given wins


def test_approve_with_nothing_pending_is_one_line_and_no_traceback(approvals):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = python("-m", "meshflow_nb", "approve", "nope", "--reviewer", "dana", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"meshflow-nb: error: no run nope is waiting for approval; pending: none (in {approvals})"]


def test_a_risky_node_s_reviewer_sees_its_one_input_itself_not_a_dict_of_it() -> None:
    seen: list = []

    async def approver(request):
        seen.append(request.content)
        return Decision(True, "tester", "fine", channel="test")

    workflow = (WorkflowDefinition("publish", policy=Policy("standard"))
                .add_node("writer", lambda ctx: "# Draft\n\nText.", role=Role.EXECUTOR)
                .add_node("publisher", lambda ctx: "published", role=Role.ORCHESTRATOR,
                          risk_tier=RiskTier.EXTERNAL_IO)
                .add_edge("writer", "publisher"))
    result = workflow.run("t", approver=approver)
    assert result.ok, result.error
    assert seen == ["# Draft\n\nText."]


def test_confidence_becomes_an_uncertainty_without_float_noise() -> None:
    from meshflow_nb import AgentResult

    assert AgentResult(confidence=0.9).uncertainty == 0.1
    assert AgentResult(confidence=0.7).uncertainty == 0.3
