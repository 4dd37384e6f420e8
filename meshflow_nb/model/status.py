"""How a run ended (or that it is still going): shared by the engine and the policy layers."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """The status of a run; a governance layer that stops a run names one of these."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED_PREFLIGHT = "rejected_preflight"
    REJECTED_AT_GATE = "rejected_at_gate"
    BLOCKED = "blocked"
    BUDGET_EXCEEDED = "budget_exceeded"
    CANCELLED = "cancelled"
    AUDIT_FAILED = "audit_failed"
    """The policy requires an audit trail and an entry could not be recorded."""
