"""Human-in-the-loop decisions: what a gate asks and what an approver answers.

An approver is any function (or coroutine function) taking a `GateRequest` and
returning a `Decision`. With no approver given, the decision comes from the
environment (``MESHFLOW_HITL=approve|reject``), which is how headless runs decide.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import utc_now
from .roles import RiskTier


class ApprovalConfigError(ValueError):
    """The headless approval setting cannot be understood."""


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

_VERDICTS = {"approve": True, "approved": True, "yes": True,
             "reject": False, "rejected": False, "no": False}


def headless_approver(environ: Mapping[str, str] | None = None) -> Approver:
    """Approver that decides from ``MESHFLOW_HITL`` (default: approve).

    ``MESHFLOW_REVIEWER`` names the reviewer recorded with the decision.
    """
    env = os.environ if environ is None else environ
    setting = env.get("MESHFLOW_HITL", "approve").strip().lower()
    if setting not in _VERDICTS:
        raise ApprovalConfigError(
            f"MESHFLOW_HITL={env.get('MESHFLOW_HITL')!r} is not understood; "
            "set it to 'approve' or 'reject'."
        )
    reviewer = env.get("MESHFLOW_REVIEWER", "headless")
    reason = (f"MESHFLOW_HITL={setting}" if "MESHFLOW_HITL" in env
              else "no approver configured: default approve")
    return fixed_approver(_VERDICTS[setting], reviewer, reason)


def fixed_approver(approved: bool, reviewer: str, reason: str = "",
                   channel: str = "headless") -> Approver:
    """Approver that gives the same decision at every gate (scripts, tests, CI)."""

    async def decide(request: GateRequest) -> Decision:
        return Decision(approved, reviewer, reason, channel=channel, node_id=request.node_id)

    return decide
