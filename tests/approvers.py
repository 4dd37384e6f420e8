"""Approvers for tests that need a run to treat its gate as a person's question."""

from __future__ import annotations

from meshflow_nb.hitl import Decision, GateRequest


def a_person(request: GateRequest) -> Decision:
    """An approver not marked unattended: the run commits its pause before asking it."""
    return Decision(True, "ana", "read it", node_id=request.node_id)
