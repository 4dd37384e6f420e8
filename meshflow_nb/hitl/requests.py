"""Human-in-the-loop decisions: what a gate asks and what an approver answers.

An approver is any function (or coroutine function) taking a `GateRequest` and
returning a `Decision`. Every channel is one of these: a fixed answer, the environment
(``MESHFLOW_HITL``), a prompt on the terminal (`local`), or a decision store that
another process writes to (`store.StoreApprover`, `webhook.WebhookApprover`).
`resolve.resolve_approver` picks the one a run uses when none is given.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigError, MeshflowError
from ..events import utc_now
from ..model.roles import RiskTier

PREVIEW_CHARS = 2000
"""Characters of a gate's content shown to a reviewer outside the notebook."""


class ApprovalError(MeshflowError):
    """A decision cannot be recorded: nothing waits there, or the target is ambiguous."""


class ApprovalConfigError(ConfigError):
    """The approval setting (environment or policy) cannot be used; says how to fix it."""

    def __init__(self, message: str,
                 fix: str = "unset MESHFLOW_HITL or set it to approve, reject or store, "
                            "or pass approver=...",
                 field: str = "MESHFLOW_HITL") -> None:
        super().__init__(message, argument=field, fix=fix)
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
    reason: str = "gate"
    """Why it asks: ``gate`` (a human gate node), ``risk_tier`` (a node at or above the
    policy's tier threshold with no gate) or ``uncertainty`` (an agent unsure of its answer)."""


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
"""Anything that answers a gate: a function or coroutine function from request to decision."""

_A = TypeVar("_A", bound=Callable)
_UNATTENDED = "meshflow_unattended"


def unattended(approver: _A) -> _A:
    """Mark ``approver`` as answering with no person to wait for (a script, a CI setting),
    so a run does not commit its pause before asking it; returns ``approver``."""
    setattr(approver, _UNATTENDED, True)
    return approver


def asks_a_person(approver: Approver | None) -> bool:
    """Whether a gate's question may wait for a person: any approver not marked
    `unattended` (a panel, a prompt, a webhook, the approvals store, a function)."""
    return approver is not None and not getattr(approver, _UNATTENDED, False)

VERDICTS = {"approve": True, "approved": True, "yes": True,
            "reject": False, "rejected": False, "no": False}
"""The words a headless decision may use (``MESHFLOW_HITL``, a notebook parameter)."""
STORE_SETTING = "store"
"""``MESHFLOW_HITL=store``: wait for a decision written by ``meshflow-nb approve``."""


def parse_verdict(value: str, name: str = "MESHFLOW_HITL") -> bool:
    """True for approve, False for reject, from a headless setting (``MESHFLOW_HITL``, a
    notebook ``decision`` parameter); `ApprovalConfigError` naming ``name`` otherwise."""
    key = str(value).strip().lower()
    if key not in VERDICTS:
        raise ApprovalConfigError(
            f"{name}={value!r} is not a decision",
            fix=f"set {name} to 'approve' or 'reject'"
                + (", or to 'store' to wait for 'meshflow-nb approve' from another terminal"
                   if name == "MESHFLOW_HITL" else ""),
            field=name)
    return VERDICTS[key]


def content_preview(content: Any, limit: int = PREVIEW_CHARS) -> tuple[str, bool]:
    """Text shown to a reviewer outside the notebook, and whether it was cut."""
    if isinstance(content, str):
        text = content
    else:
        try:
            text = json.dumps(content, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(content)
    return (text[:limit], True) if len(text) > limit else (text, False)
