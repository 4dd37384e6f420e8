"""Human-in-the-loop decisions: what a gate asks and what an approver answers.

An approver is any function (or coroutine function) taking a `GateRequest` and
returning a `Decision`. Every channel is one of these: a fixed answer, the environment
(``MESHFLOW_HITL``), a prompt on the terminal, or a decision store that another process
writes to (`approvals.StoreApprover`, `approvals.WebhookApprover`). `resolve_approver`
picks the one a run uses when none is given (docs/approvals.md has the order).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .events import utc_now
from .roles import RiskTier

if TYPE_CHECKING:
    from .policy.config import Policy


class ApprovalConfigError(ValueError):
    """The approval setting (environment or policy) cannot be used; says how to fix it."""

    def __init__(self, message: str,
                 fix: str = "unset MESHFLOW_HITL or set it to approve, reject or store, "
                            "or pass approver=...",
                 field: str = "MESHFLOW_HITL") -> None:
        super().__init__(message)
        self.fix = fix
        self.field = field


@dataclass(frozen=True)
class GateRequest:
    """What a human is asked to approve."""

    run_id: str
    node_id: str
    content: Any
    prompt: str
    protects: tuple[str, ...]
    """Nodes that run only if this gate approves."""
    risk_tier: RiskTier
    """Highest risk tier among the protected nodes."""
    timeout_s: float | None = None
    checkpoint: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The run's state at this gate, so that it can be resumed in another process."""


@dataclass(frozen=True)
class Decision:
    """An approval or rejection: who decided, when, why and through which channel."""

    approved: bool
    reviewer: str
    reason: str = ""
    channel: str = "headless"
    node_id: str = ""
    decided_at: str = field(default_factory=utc_now)

    def describe(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        why = f": {self.reason}" if self.reason else ""
        return f"{verdict} by {self.reviewer} via {self.channel}{why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved, "reviewer": self.reviewer, "reason": self.reason,
            "channel": self.channel, "decided_at": self.decided_at,
        }


Approver = Callable[[GateRequest], "Decision | Awaitable[Decision]"]

VERDICTS = {"approve": True, "approved": True, "yes": True,
            "reject": False, "rejected": False, "no": False}
"""The words a headless decision may use (``MESHFLOW_HITL``, a notebook parameter)."""
STORE_SETTING = "store"
"""``MESHFLOW_HITL=store``: wait for a decision written by ``meshflow-nb approve``."""


def headless_approver(environ: Mapping[str, str] | None = None) -> Approver:
    """Approver that decides from ``MESHFLOW_HITL`` (default: approve).

    ``MESHFLOW_REVIEWER`` names the reviewer recorded with the decision.
    """
    env = os.environ if environ is None else environ
    setting = env.get("MESHFLOW_HITL", "approve").strip().lower()
    if setting not in VERDICTS:
        raise ApprovalConfigError(
            f"MESHFLOW_HITL={env.get('MESHFLOW_HITL')!r} is not understood; "
            "set it to 'approve' or 'reject', or to 'store' to wait for "
            "'meshflow-nb approve' from another terminal."
        )
    reviewer = env.get("MESHFLOW_REVIEWER", "headless")
    reason = (f"MESHFLOW_HITL={setting}" if "MESHFLOW_HITL" in env
              else "no approver configured: default approve")
    return fixed_approver(VERDICTS[setting], reviewer, reason)


def fixed_approver(approved: bool, reviewer: str, reason: str = "",
                   channel: str = "headless") -> Approver:
    """Approver that gives the same decision at every gate (scripts, tests, CI)."""

    async def decide(request: GateRequest) -> Decision:
        return Decision(approved, reviewer, reason, channel=channel, node_id=request.node_id)

    return decide


# --- choosing the approver of a run ----------------------------------------------------


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
    from .approvals import StoreApprover, WebhookApprover  # approvals imports this module

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


# --- the terminal prompt ---------------------------------------------------------------

_YES = {"y", "yes"}


def terminal_approver(read: Callable[[str], str] | None = None) -> Approver:
    """Approver that asks on the terminal: ``Approve <node> (<tier>) for run <id>? [y/N]``.

    Then it asks the reviewer's name and a reason. Anything but y/yes rejects; end of
    input rejects with a reason saying so. The blocking ``input()`` runs in a daemon
    thread, so the event loop (and every other branch of the run) keeps going, and a
    gate timeout is never held up by an unanswered prompt. ``read`` replaces ``input``.
    """
    lock = threading.Lock()  # one question at a time, even with parallel gates

    async def decide(request: GateRequest) -> Decision:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Decision] = loop.create_future()
        cancelled = threading.Event()

        def ask() -> None:
            try:
                decision = _ask(request, read or input, lock, cancelled)
            except Exception as exc:  # handed to the waiting coroutine
                _deliver(loop, answer, None, exc)
            else:
                _deliver(loop, answer, decision, None)

        threading.Thread(target=ask, name=f"meshflow-prompt-{request.node_id}",
                         daemon=True).start()
        try:
            return await answer
        except asyncio.CancelledError:
            cancelled.set()
            print(f"\n(no decision in time for {request.node_id}: the gate is rejected; "
                  "press Enter to dismiss the prompt)", flush=True)
            raise

    return decide


def _ask(request: GateRequest, read: Callable[[str], str], lock: threading.Lock,
         cancelled: threading.Event) -> Decision | None:
    """The questions, in the prompt thread; None when the gate stopped waiting."""
    with lock:
        if cancelled.is_set():
            return None
        tier = getattr(request.risk_tier, "name", request.risk_tier)
        print(f"\n{request.prompt}\n{_preview(request.content)}", flush=True)
        default_reviewer = _default_reviewer()
        try:
            answer = read(f"Approve {request.node_id} ({tier}) for run {request.run_id}? "
                          "[y/N] ").strip()
            if cancelled.is_set():
                return None
            reviewer = read(f"Reviewer [{default_reviewer}]: ").strip() or default_reviewer
            reason = read("Reason: ").strip()
        except EOFError:
            return Decision(False, default_reviewer,
                            "end of input on the terminal before a decision: rejected",
                            channel="terminal", node_id=request.node_id)
        approved = answer.lower() in _YES
        if not approved and not reason:
            reason = ("empty answer: rejected (the default is N)" if not answer
                      else f"answered {answer!r}, not y: rejected")
        return Decision(approved, reviewer, reason, channel="terminal", node_id=request.node_id)


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Decision],
             value: Decision | None, error: BaseException | None) -> None:
    """Hand the prompt thread's outcome to the event loop (if it is still there)."""

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # a closed loop: the run ended without it
        loop.call_soon_threadsafe(settle)


def _default_reviewer() -> str:
    try:
        return os.environ.get("MESHFLOW_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):  # no user name on this system
        return "terminal"


def _preview(content: Any, limit: int = 800) -> str:
    text = content if isinstance(content, str) else repr(content)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more chars)"
