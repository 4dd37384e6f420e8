"""The webhook inbox: a real HTTP receiver on 127.0.0.1 that checks each notice's signature
and decides through the decision store, so that a waiting run goes on."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from meshflow_nb import ConfigError, HumanInLoopConfig, Policy
from meshflow_nb.hitl.webhook import encode_notice, sign
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import WebhookInbox
from meshflow_nb.notebook.webhook_inbox import InboxTimeout
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")

SECRET_ENV = "MESHFLOW_WEBHOOK_SECRET"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh shared secret, and a decision store of this test's own."""
    value = secrets.token_hex(32)
    monkeypatch.setenv(SECRET_ENV, value)
    monkeypatch.setenv("MESHFLOW_APPROVALS_DIR", str(tmp_path / "approvals"))
    return value


@pytest.fixture
def inbox(secret: str):
    with WebhookInbox() as running:
        yield running


def post(url: str, body: bytes, signature: str | None, *, path: str | None = None) -> int:
    """POST ``body`` as any client would; the HTTP status the inbox answers."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Meshflow-Signature"] = signature
    target = url if path is None else url.rsplit("/hooks", 1)[0] + path
    request = urllib.request.Request(target, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


NOTICE = {"type": "gate_pause", "run_id": "abc123", "node_id": "hitl_gate",
          "risk_tier": "EXTERNAL_IO", "prompt": "Publish?"}


def test_a_signed_notice_is_verified_and_kept(inbox: WebhookInbox, secret: str) -> None:
    body = encode_notice(NOTICE)
    assert post(inbox.url, body, sign(body, secret)) == 204
    [entry] = inbox.notices("abc123")
    assert entry.verified and entry.node_id == "hitl_gate" and entry.status == 204
    assert "verified (HTTP 204): hitl_gate (EXTERNAL_IO) of run abc123" in entry.describe()


@pytest.mark.parametrize("forgery", ["guessed secret", "body changed", "no signature",
                                     "not hex"])
def test_a_forged_notice_is_refused_and_never_parsed(inbox: WebhookInbox, secret: str,
                                                      forgery: str) -> None:
    body = encode_notice(NOTICE)
    signature = {"guessed secret": sign(body, "guess"), "body changed": sign(body, secret),
                 "no signature": None, "not hex": "sha256=zz"}[forgery]
    sent = body.replace(b"EXTERNAL_IO", b"READ_ONLY") if forgery == "body changed" else body
    assert post(inbox.url, sent, signature) == 401
    [entry] = inbox.entries
    assert not entry.verified and entry.notice == {} and entry.run_id is None
    assert inbox.notices() == []
    assert entry.describe().startswith("refused (HTTP 401)")


def test_wrong_path_and_oversized_bodies_are_refused_unread(inbox: WebhookInbox,
                                                            secret: str) -> None:
    body = encode_notice(NOTICE)
    assert post(inbox.url, body, sign(body, secret), path="/other") == 404
    big = b"x" * (2 << 20)
    assert post(inbox.url, big, sign(big, secret)) == 413
    assert inbox.entries == []


def test_a_signed_body_that_is_not_json_is_a_bad_request(inbox: WebhookInbox,
                                                         secret: str) -> None:
    body = b"not json"
    assert post(inbox.url, body, sign(body, secret)) == 400
    assert inbox.notices() == []


def test_the_secret_never_shows(inbox: WebhookInbox, secret: str) -> None:
    body = encode_notice(NOTICE)
    post(inbox.url, body, sign(body, "guess"))
    shown = repr(inbox) + "".join(e.describe() + repr(e) for e in inbox.entries)
    with pytest.raises(InboxTimeout) as waited:
        inbox.wait_for_notice("abc123", timeout_s=0.05)
    assert secret not in shown + str(waited.value)
    assert "SECRET" in str(waited.value) and "1 POST(s) received" in str(waited.value)


def test_without_a_secret_it_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"{SECRET_ENV}.*not set"):
        WebhookInbox().start()
    with pytest.raises(ConfigError, match="secret_env"):
        WebhookInbox(secret_env="  ")
    with pytest.raises(ConfigError, match="not listening"):
        WebhookInbox().url  # noqa: B018 (the property is what is tested)


def test_decide_only_takes_a_verified_notice(inbox: WebhookInbox) -> None:
    with pytest.raises(ConfigError, match="verified notice"):
        inbox.decide("abc123", approved=True, reviewer="dana")


@pytest.mark.parametrize("approved", [True, False])
def test_a_decision_through_the_inbox_resumes_the_run(inbox: WebhookInbox, tmp_path: Path,
                                                      approved: bool) -> None:
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    policy = Policy(human_in_loop=HumanInLoopConfig(approval_webhook=inbox.url, timeout_s=30))
    pipeline = ledger.attach(build_capstone_pipeline(policy=policy))
    approver = inbox.approver()
    handle = pipeline.start("t", approver=approver)
    notice = inbox.wait_for_notice(handle.run_id)
    inbox.decide(notice, approved=approved, reviewer="dana", reason="read it")
    result = handle.result(timeout=30)
    assert result.status.value == ("completed" if approved else "rejected_at_gate")
    [decided] = [e for e in ledger.events(result.run_id)
                 if e.type.value in ("gate_resume", "gate_reject")]
    assert decided.payload["reviewer"] == "dana" and decided.payload["channel"] == "webhook"
    assert [d.ok for d in approver.deliveries] == [True]
    assert inbox.decisions[0].approved is approved


def test_a_notice_of_another_run_is_not_waited_for(inbox: WebhookInbox, secret: str) -> None:
    body = encode_notice(NOTICE)
    post(inbox.url, body, sign(body, secret))
    with pytest.raises(InboxTimeout, match="run other"):
        inbox.wait_for_notice("other", timeout_s=0.05)
    assert inbox.wait_for_notice(timeout_s=0.05).run_id == "abc123"



def test_bad_arguments_are_config_errors_that_name_them(inbox: WebhookInbox,
                                                        secret: str) -> None:
    body = encode_notice(NOTICE)
    post(inbox.url, body, sign(body, secret))
    with pytest.raises(ConfigError, match="timeout_s"):
        inbox.wait_for_notice("abc123", timeout_s="soon")
    with pytest.raises(ConfigError, match="approved must be True or False"):
        inbox.decide(inbox.notices()[0], approved="no", reviewer="dana")
