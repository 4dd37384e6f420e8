"""Pre-flight for a run: every problem that would stop it, found before any node runs.

The structural rules (model), the policy's rules (policy) and the approval setting are
reported together. Checking is free of side effects: it opens, seals and creates
nothing, so ``wf.preflight()`` can be called at any time; only a run that is about to
start seals its ledger (`audit_damage` with ``seal=True``).
"""

from __future__ import annotations

from typing import Protocol

from ..errors import MeshflowError
from ..events import MeshEvent
from ..hitl.requests import ApprovalConfigError, Approver
from ..hitl.resolve import resolve_approver
from ..model.graph import Blueprint
from ..model.preflight import PreflightReport, Problem, check_structure
from ..policy.config import Policy
from ..policy.rules import audit_problems, check_policy


class Verification(Protocol):
    """The outcome of verifying a ledger: truthy ``valid``, and a report for people."""

    valid: bool

    def report(self) -> str: ...


class Recorder(Protocol):
    """What the engine needs of a ledger: record an event (raising a `MeshflowError`
    when it cannot), wait until what it recorded is committed (`flush`, raising the
    same way), and verify, or verify and seal, before a run under audit."""

    location: str

    def record(self, event: MeshEvent) -> None: ...

    def flush(self, *, run_id: str) -> None: ...

    def verify_chain(self) -> Verification: ...

    def seal(self) -> Verification: ...


def audit_required(policy: Policy | None) -> bool:
    """Whether the policy demands a verified, append-only audit trail."""
    return policy is not None and bool(policy.immutable_audit)


def audit_damage(ledger: Recorder, *, seal: bool) -> str | None:
    """None when the ledger verifies, else the verifier's report (or why it could not
    verify). With ``seal``, the ledger also stops accepting changes (a run starting)."""
    try:
        check = ledger.seal() if seal else ledger.verify_chain()
    except MeshflowError as err:
        return f"the ledger could not be checked or sealed: {err}"
    return None if check.valid else check.report()


def check_run(definition: Blueprint, policy: Policy | None, *, ledger: Recorder | None,
              damage: str | None = None) -> PreflightReport:
    """Structure plus policy rules; ``damage`` is `audit_damage` when audit is required."""
    report = check_structure(definition)
    if policy is not None:
        report.problems.extend(check_policy(policy, definition))
        if audit_required(policy):
            location = ledger.location if ledger is not None else None
            report.problems.extend(audit_problems(location, damage))
    return report


def choose_approver(definition: Blueprint, policy: Policy | None, explicit: Approver | None
                    ) -> tuple[Approver | None, list[Problem]]:
    """The run's approver when it may ask someone (a gate, or a policy), with the S019
    problem when the approval setting cannot work."""
    may_ask = policy is not None or any(n.is_gate for n in definition.nodes)
    if explicit is not None or not may_ask:
        return explicit, []
    try:
        return resolve_approver(policy, None), []
    except ApprovalConfigError as err:
        return None, [Problem("S019", "invalid-approval-setting", "environment", err.message,
                              err.fix, field=err.field)]


def preflight(definition: Blueprint, policy: Policy | None, *, ledger: Recorder | None = None,
              approver: Approver | None = None) -> PreflightReport:
    """Every problem of ``definition`` under ``policy``, without running or changing
    anything (what ``WorkflowDefinition.preflight`` returns)."""
    damage = audit_damage(ledger, seal=False) \
        if audit_required(policy) and ledger is not None else None
    report = check_run(definition, policy, ledger=ledger, damage=damage)
    report.problems.extend(choose_approver(definition, policy, approver)[1])
    return report
