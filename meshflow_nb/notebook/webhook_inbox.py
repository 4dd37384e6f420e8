"""A receiver for approval webhooks: a small HTTP server on 127.0.0.1 that checks each
notice's signature and decides through the decision store.

    with WebhookInbox() as inbox:                 # the secret: MESHFLOW_WEBHOOK_SECRET
        policy = Policy(human_in_loop=HumanInLoopConfig(approval_webhook=inbox.url))
        handle = pipeline.start(task, policy=policy)
        notice = inbox.wait_for_notice(handle.run_id)
        inbox.decide(notice, approved=True, reviewer="dana", reason="facts checked")
        result = handle.result()

Every POST is kept as an `InboxEntry`: what the receiver answered (204 for a notice
whose HMAC-SHA256 signature matches the exact body bytes, 401 for any other), and the
notice itself, parsed only once its signature is good. The secret is read from the
environment for each request and never kept, shown or logged. A decision goes through
`submit_decision` with channel ``webhook``, so the run records it like any other
(docs/approvals.md).
"""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ConfigError
from ..events import utc_now
from ..hitl import (
    ApprovalError,
    Decision,
    WebhookApprover,
    approvals_dir,
    submit_decision,
    verify_signature,
)
from ..hitl.store import PathLike
from ..hitl.webhook import DEFAULT_SECRET_ENV, SIGNATURE_HEADER
from ..validation import flag, number

HOST = "127.0.0.1"
PATH = "/hooks/meshflow"
CHANNEL = "webhook"
"""The channel a decision made through the inbox records."""
MAX_BODY = 1 << 20
"""A notice is a few kilobytes; a bigger body is refused (HTTP 413) unread."""
DRAIN_LIMIT = 16 << 20
"""How much of a refused body is read and thrown away before the answer; past it the
connection is closed on the sender."""
POLL_S = 0.02
ACCEPTED = 204


@dataclass(frozen=True)
class InboxEntry:
    """One POST the inbox received: what it answered, and the notice once verified."""

    status: int
    verified: bool
    notice: Mapping[str, Any] = field(default_factory=dict)
    received_at: str = field(default_factory=utc_now)

    @property
    def run_id(self) -> str | None:
        """The run that waits (None for a notice that was refused)."""
        return self.notice.get("run_id")

    @property
    def node_id(self) -> str | None:
        """The gate that waits (None for a notice that was refused)."""
        return self.notice.get("node_id")

    def describe(self) -> str:
        """One line: verified or refused, and what waits."""
        if not self.verified:
            return f"refused (HTTP {self.status}): the signature does not match the body"
        if self.status != ACCEPTED:
            return f"refused (HTTP {self.status}): signed, but the body is no JSON notice"
        return (f"verified (HTTP {self.status}): {self.node_id} ({self.notice.get('risk_tier')}) "
                f"of run {self.run_id} waits: {self.notice.get('prompt')!r}")


class InboxTimeout(ApprovalError):
    """No verified notice arrived in time."""


class WebhookInbox:
    """A webhook receiver on 127.0.0.1 that verifies notices and decides through the
    decision store (see the module docstring)."""

    def __init__(self, secret_env: str = DEFAULT_SECRET_ENV, *, store_dir: PathLike | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        if not isinstance(secret_env, str) or not secret_env.strip():
            raise ConfigError("secret_env must name an environment variable",
                              argument="secret_env", fix=f"leave it out for {DEFAULT_SECRET_ENV}")
        self.secret_env, self.store_dir = secret_env, store_dir
        self._env = os.environ if environ is None else environ
        self._entries: list[InboxEntry] = []
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> WebhookInbox:
        """Listen on a free port of 127.0.0.1, in a daemon thread (once the secret is set)."""
        if self._httpd is not None:
            return self
        if not self._env.get(self.secret_env):
            raise ConfigError(f"the inbox checks signatures with the secret in {self.secret_env}, "
                              "which is not set", argument="secret_env",
                              fix=f"set os.environ[{self.secret_env!r}] to a long random string "
                                  "(secrets.token_hex(32)) before you start the inbox and the run")
        self._httpd = _Server((HOST, 0), _Handler)
        self._httpd.inbox = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"webhook-inbox:{self.port}", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop listening (nothing happens when it is not running)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> WebhookInbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port it listens on (0 before `start`)."""
        return self._httpd.server_address[1] if self._httpd is not None else 0

    @property
    def url(self) -> str:
        """Where notices go: ``approval_webhook`` of the policy."""
        if self._httpd is None:
            raise ConfigError("the inbox is not listening yet", argument="url",
                              fix="call inbox.start() or use 'with WebhookInbox() as inbox:'")
        return f"http://{HOST}:{self.port}{PATH}"

    def approver(self, timeout_s: float = 5.0) -> WebhookApprover:
        """The run's side: an approver that posts signed notices to this inbox, then waits
        on the same decision store; its ``deliveries`` say how each POST went."""
        return WebhookApprover(self.url, self.secret_env, self.store_dir, timeout_s=timeout_s,
                               environ=self._env)

    # --- what arrived --------------------------------------------------------------

    @property
    def entries(self) -> list[InboxEntry]:
        """Every POST received so far, verified or refused, in order."""
        with self._lock:
            return list(self._entries)

    def notices(self, run_id: str | None = None) -> list[InboxEntry]:
        """The verified notices (of one run), in order."""
        return [e for e in self.entries if e.status == ACCEPTED and run_id in (None, e.run_id)]

    def wait_for_notice(self, run_id: str | None = None, timeout_s: float = 10.0) -> InboxEntry:
        """The first verified notice (of ``run_id``), waiting up to ``timeout_s`` for it."""
        deadline = time.monotonic() + number(timeout_s, "timeout_s")
        while not (found := self.notices(run_id)):
            if time.monotonic() >= deadline:
                which = f"run {run_id}" if run_id else "any run"
                raise InboxTimeout(f"no verified notice for {which} arrived within {timeout_s:g} s "
                                   f"({len(self.entries)} POST(s) received); is the policy's "
                                   f"approval_webhook {self.url}, and is {self.secret_env} the "
                                   "same secret for the run and the inbox?")
            time.sleep(POLL_S)
        return found[0]

    def decide(self, notice: InboxEntry, *, approved: bool, reviewer: str,
               reason: str = "") -> Decision:
        """Approve or reject the gate a verified notice names, through the decision store."""
        if not isinstance(notice, InboxEntry) or notice.status != ACCEPTED:
            raise ConfigError("decide takes a verified notice from this inbox",
                              argument="notice", fix="pass inbox.wait_for_notice(run_id)")
        decision = submit_decision(notice.run_id, flag(approved, "approved"), reviewer, reason,
                                   node_id=notice.node_id, channel=CHANNEL,
                                   dir=approvals_dir(self.store_dir, self._env))
        self.decisions.append(decision)
        return decision

    def _received(self, body: bytes, signature: str | None) -> InboxEntry:
        """Check one POST's signature, then parse it: the entry that answers it."""
        if not verify_signature(body, signature, self._env.get(self.secret_env, "")):
            return self._keep(InboxEntry(401, False))  # parsed never: it may be anyone's
        try:
            notice = json.loads(body)
        except ValueError:
            notice = None
        if not isinstance(notice, dict):
            return self._keep(InboxEntry(400, True))  # signed, but no notice: a sender's bug
        return self._keep(InboxEntry(ACCEPTED, True, notice))

    def _keep(self, entry: InboxEntry) -> InboxEntry:
        """Remember one POST (the server's threads append at once)."""
        with self._lock:
            self._entries.append(entry)
        return entry

    def __repr__(self) -> str:
        where = f"{HOST}:{self.port}" if self._httpd is not None else "not listening"
        return f"<WebhookInbox {where}: {len(self.notices())} verified of {len(self.entries)}>"


class _Server(ThreadingHTTPServer):
    """A threading server that names itself by its address (no reverse DNS look-up)."""

    inbox: WebhookInbox
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    """Reads one POST, lets the inbox judge it, answers with no body."""

    server: _Server

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        if self.path != PATH or not length.isdigit() or int(length) > MAX_BODY:
            self._discard(int(length) if length.isdigit() else 0)
            self._answer(404 if self.path != PATH else 413 if length.isdigit() else 411)
            return
        body = self.rfile.read(int(length))
        self._answer(self.server.inbox._received(body, self.headers.get(SIGNATURE_HEADER)).status)

    def _discard(self, length: int) -> None:
        """Read a refused body and throw it away (up to `DRAIN_LIMIT`), so that a sender
        still writing it reads the refusal instead of a broken pipe."""
        left = min(length, DRAIN_LIMIT)
        while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
            left -= len(chunk)

    def _answer(self, status: int) -> None:
        """A status line and headers, no body: a notice's sender reads only the status."""
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the entries are the record."""
