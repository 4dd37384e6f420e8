"""Human-in-the-loop: what a gate asks, who answers it, and how.

`requests` holds the request and decision types; `local` the approvers that decide in
this process (fixed, ``MESHFLOW_HITL``, the terminal); `store` the decision store that
another process writes to; `webhook` the signed notice; `resolve` which approver a run
uses when none is given.
"""

from .local import fixed_approver, headless_approver, terminal_approver
from .requests import (
    VERDICTS,
    ApprovalConfigError,
    ApprovalError,
    Approver,
    Decision,
    GateRequest,
    parse_verdict,
    unattended,
)
from .resolve import resolve_approver
from .store import StoreApprover, approvals_dir, pending_requests, submit_decision
from .webhook import WebhookApprover, verify_signature

__all__ = ["VERDICTS", "ApprovalConfigError", "ApprovalError", "Approver", "Decision",
           "GateRequest", "StoreApprover", "WebhookApprover", "approvals_dir", "fixed_approver",
           "headless_approver", "parse_verdict", "pending_requests", "resolve_approver",
           "submit_decision", "terminal_approver", "unattended", "verify_signature"]
