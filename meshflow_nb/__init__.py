"""meshflow_nb: governed multi-agent workflows you can watch, gate and audit.

The engine (model, engine, policy, hitl, ledger) runs without Jupyter;
`%load_ext meshflow_nb` adds the notebook layer on top. docs/architecture.md draws the
layers; docs/api.md lists every public name below.
"""

from __future__ import annotations

from typing import Any

from .agents.base import AgentResult, NodeContext
from .agents.pricing import UnknownModelError
from .cli.console import run_and_print
from .engine.launch import RunHandle
from .engine.results import NodeRun, RunResult, Totals
from .errors import ConfigError, MeshflowError, UnknownNodeError
from .events import EventType, MeshEvent
from .hitl.local import fixed_approver
from .hitl.requests import ApprovalConfigError, ApprovalError, Decision, GateRequest
from .ledger.errors import (
    ImmutableLedgerError,
    LedgerBusyError,
    LedgerError,
    LedgerGapError,
    LedgerValueError,
    LedgerWriteError,
)
from .model.conditions import ConditionError, ConditionEvalError, ConditionSyntaxError
from .model.graph import Edge, HumanGate, Node
from .model.preflight import PreflightReport, Problem
from .model.roles import RiskTier, Role
from .model.status import RunStatus
from .policy.circuit import CircuitBreakerConfig, CircuitOpenError
from .policy.config import HumanInLoopConfig, Policy, PolicyMode
from .version import __version__
from .workflow import WorkflowDefinition

__all__ = [
    "AgentResult", "ApprovalConfigError", "ApprovalError", "CircuitBreakerConfig",
    "CircuitOpenError", "ConditionError", "ConditionEvalError", "ConditionSyntaxError",
    "ConfigError", "Decision", "Edge", "EventType", "GateRequest", "HumanGate",
    "HumanInLoopConfig", "ImmutableLedgerError", "LedgerBusyError", "LedgerError",
    "LedgerGapError", "LedgerValueError", "LedgerWriteError", "MeshEvent", "MeshflowError",
    "Node", "NodeContext", "NodeRun",
    "Policy", "PolicyMode", "PreflightReport", "Problem", "ReplayLedger", "RiskTier", "Role",
    "RunHandle", "RunResult", "RunStatus", "Totals", "UnknownModelError", "UnknownNodeError",
    "WorkflowDefinition", "__version__", "fixed_approver", "run_and_print",
]


def __getattr__(name: str) -> Any:
    """``ReplayLedger`` is imported on first use: it brings pandas and DuckDB, which a
    workflow that keeps no ledger does not need at import time."""
    if name == "ReplayLedger":
        from .ledger.replay import ReplayLedger

        return ReplayLedger
    raise AttributeError(f"module 'meshflow_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext meshflow_nb``: register the notebook magics (imported only now)."""
    from .notebook.magics import MeshflowMagics

    ipython.register_magics(MeshflowMagics)
