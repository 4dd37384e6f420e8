"""Which approver a run uses when none is given (docs/approvals.md has the order)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .local import headless_approver, terminal_approver
from .requests import STORE_SETTING, Approver
from .store import StoreApprover
from .webhook import WebhookApprover

if TYPE_CHECKING:
    from ..policy.config import Policy


def resolve_approver(policy: Policy | None, explicit: Approver | None,
                     environ: Mapping[str, str] | None = None) -> Approver:
    """The approver a run uses, first match wins.

    1. ``explicit`` (``approver=`` given to the run);
    2. a `WebhookApprover` when the policy's human_in_loop is on and has an approval_webhook;
    3. ``MESHFLOW_HITL=store``: a `StoreApprover` (wait for ``meshflow-nb approve``);
    4. any other ``MESHFLOW_HITL``: the headless approver (approve/reject);
    5. a terminal prompt when stdin and stdout are both terminals;
    6. the headless default, approve (papermill, CI, notebooks: no terminal to ask).

    A setting that cannot work raises `ApprovalConfigError` (a pre-flight problem, S019).
    """
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    hitl = getattr(policy, "human_in_loop", None)
    if hitl is not None and hitl.enabled and hitl.approval_webhook:
        return WebhookApprover(hitl.approval_webhook, hitl.webhook_secret_env, environ=env)
    setting = env.get("MESHFLOW_HITL")
    if setting is not None and setting.strip().lower() == STORE_SETTING:
        return StoreApprover(environ=env)
    if setting is None and _interactive():
        return terminal_approver()
    return headless_approver(env)


def _interactive() -> bool:
    """Both ends are a terminal: someone can see the question and type an answer."""
    try:
        return bool(sys.stdin and sys.stdin.isatty() and sys.stdout and sys.stdout.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


