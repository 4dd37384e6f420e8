"""The webhook notice: a signed JSON message telling someone that a gate waits.

The notice is signed with HMAC-SHA256, ``X-Meshflow-Signature: sha256=<hex>``. The
decision still comes back through the decision store (`store.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .requests import ApprovalConfigError
from .store import PathLike, StoreApprover, log

SIGNATURE_HEADER = "X-Meshflow-Signature"
DEFAULT_SECRET_ENV = "MESHFLOW_WEBHOOK_SECRET"


@dataclass(frozen=True)
class Delivery:
    """How posting one notice went (the URL is shown as scheme://host only)."""

    ok: bool
    target: str
    status: int | None = None
    error: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"webhook notice delivered to {self.target} (HTTP {self.status})"
        return f"webhook notice to {self.target} failed: {self.error}"


def build_notice(record: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON a webhook receives: what waits, and how to decide."""
    fields = ("run_id", "node_id", "prompt", "risk_tier", "protects", "content_preview",
              "content_truncated", "requested_at", "timeout_s", "decide")
    return {"type": "gate_pause", **{name: record.get(name) for name in fields}}


def encode_notice(notice: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(notice, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """For receivers: does ``header`` sign exactly ``body`` with ``secret``? (constant time)"""
    if not secret or not header:
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def post_notice(url: str, notice: Mapping[str, Any], secret: str,
                timeout_s: float = 5.0) -> Delivery:
    """POST a signed notice; never raises, the result says what happened."""
    target = _shown(url)
    body = encode_notice(notice)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "meshflow-nb",
        SIGNATURE_HEADER: sign(body, secret)})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Delivery(True, target, response.status)
    except urllib.error.HTTPError as err:
        err.close()
        return Delivery(False, target, err.code, f"HTTP {err.code} {err.reason}")
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        message = f"{type(err).__name__}: {reason}".replace(secret, "***") if secret \
            else f"{type(err).__name__}: {reason}"
        return Delivery(False, target, None, message)


def _shown(url: str) -> str:
    """scheme://host of a URL: paths and queries may carry tokens, so they are not shown."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _check_webhook(url: str, secret_env: str, env: Mapping[str, str]) -> None:
    """Configuration errors, found before the run starts (pre-flight S019)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ApprovalConfigError(
            f"human_in_loop.approval_webhook must be an http:// or https:// URL, not a "
            f"{scheme or 'scheme-less'} one",
            fix="give the receiver's full URL, e.g. https://hooks.example.org/meshflow",
            field="human_in_loop.approval_webhook")
    if not env.get(secret_env):
        raise ApprovalConfigError(
            f"the approval webhook signs its notices, but the environment variable "
            f"{secret_env} (human_in_loop.webhook_secret_env) is not set",
            fix=f"export {secret_env}=<a long random string the receiver also knows>, "
                "or remove approval_webhook from the policy",
            field=secret_env)


class WebhookApprover(StoreApprover):
    """Approver that posts a signed notice, then waits on the store like `StoreApprover`.

    A failed POST is logged (``meshflow_nb.approvals``) and kept in ``deliveries``; the run
    goes on waiting, since a decision can still arrive through ``meshflow-nb approve``.
    """

    def __init__(self, url: str, secret_env: str = DEFAULT_SECRET_ENV,
                 store_dir: PathLike | None = None, poll_s: float = 0.2, *,
                 timeout_s: float = 5.0, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        _check_webhook(url, secret_env, env)
        super().__init__(store_dir, poll_s, environ=env)
        self.url, self.secret_env, self.timeout_s = url, secret_env, timeout_s
        self._env = env
        self.deliveries: list[Delivery] = []

    def _announce(self, record: Mapping[str, Any], deadline: float | None) -> None:
        """Post the notice in a thread of its own, so that a slow receiver never holds
        the wait for a decision, and the gate's deadline still ends the run on time."""
        secret = self._env.get(self.secret_env, "")  # read per notice, never kept
        if not secret:
            self._delivered(Delivery(False, _shown(self.url), None,
                                     f"{self.secret_env} is not set"), record, deadline)
            return
        threading.Thread(target=self._post, args=(record, secret, deadline), daemon=True,
                         name=f"meshflow-webhook-{record.get('run_id')}").start()

    def _post(self, record: Mapping[str, Any], secret: str, deadline: float | None) -> None:
        """POST, waiting no longer than the webhook's timeout or the time the gate has left."""
        timeout = self.timeout_s if deadline is None else min(self.timeout_s,
                                                              deadline - time.monotonic())
        if timeout <= 0:
            delivery = Delivery(False, _shown(self.url), None, "the gate's timeout passed "
                                "before the notice could be sent")
        else:
            delivery = post_notice(self.url, build_notice(record), secret, timeout)
        self._delivered(delivery, record, deadline)

    def _delivered(self, delivery: Delivery, record: Mapping[str, Any],
                   deadline: float | None) -> None:
        """Keep how the notice went; a failure is a warning, since the store still decides."""
        self.deliveries.append(delivery)
        if not delivery.ok:
            late = deadline is not None and time.monotonic() >= deadline
            log.warning("%s; run %s %s", delivery.describe(), record.get("run_id"),
                        "stopped waiting at the gate's timeout" if late
                        else "still waits for 'meshflow-nb approve'")

    def __repr__(self) -> str:
        return f"WebhookApprover({_shown(self.url)!r}, store={str(self.dir)!r})"


