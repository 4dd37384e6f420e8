"""meshflow_nb: governed multi-agent workflows you can watch, gate and audit.

The engine (model, engine, policy, hitl, ledger) runs without Jupyter;
`%load_ext meshflow_nb` adds the notebook layer on top. docs/architecture.md draws the
layers; docs/api.md lists every public name below.
"""

from __future__ import annotations

from typing import Any

from .agents.base import AgentResult, NodeContext
from .agents.by_role import agent_for
from .agents.claude import AnthropicAgent, live_model
from .agents.errors import (
    MissingKeyError,
    ModelAuthError,
    ModelCallError,
    ModelOutputError,
    ModelOverloadedError,
    ModelRequestError,
    ReplayMissError,
    RetiredModelError,
)
from .agents.estimate import CostCapError, CostEstimate, check_cost, estimate_cost
from .agents.mock import MockAgent, MockCritic
from .agents.pricing import PRICES, ModelPrice, UnknownModelError, current_prices
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
from .localapi import Cassette, CassetteError, Fault, LocalMessagesServer
from .model.conditions import ConditionError, ConditionEvalError, ConditionSyntaxError
from .model.graph import Edge, HumanGate, Node
from .model.preflight import PreflightReport, Problem
from .model.roles import RiskTier, Role
from .model.status import RunStatus
from .policy.circuit import CircuitBreakerConfig, CircuitOpenError
from .policy.config import HumanInLoopConfig, Policy, PolicyMode
from .policy.guardian import Guardian
from .version import __version__
from .workflow import WorkflowDefinition

__all__ = [
    "PRICES", "AgentResult", "AnthropicAgent", "ApprovalConfigError", "ApprovalError",
    "Cassette", "CassetteError", "CircuitBreakerConfig", "CircuitOpenError", "ConditionError",
    "ConditionEvalError", "ConditionSyntaxError", "ConfigError", "CostCapError",
    "CostEstimate", "Decision", "Edge", "EventType", "Fault", "GateRequest", "Guardian",
    "HumanGate",
    "HumanInLoopConfig", "ImmutableLedgerError", "LedgerBusyError", "LedgerError",
    "LedgerGapError", "LedgerValueError", "LedgerWriteError", "LocalMessagesServer",
    "MeshEvent", "MeshflowError", "MissingKeyError", "MockAgent", "MockCritic",
    "ModelAuthError", "ModelCallError", "ModelOutputError", "ModelOverloadedError",
    "ModelPrice", "ModelRequestError", "Node",
    "NodeContext", "NodeRun", "Policy", "PolicyMode", "PreflightReport", "Problem",
    "ReplayLedger", "ReplayMissError", "RetiredModelError", "RiskTier", "Role", "RunHandle",
    "RunResult", "RunStatus", "ScriptParser", "Totals", "UnknownModelError", "UnknownNodeError",
    "WorkflowDefinition", "__version__", "agent_for", "check_cost", "current_prices",
    "estimate_cost", "fixed_approver", "live_model", "run_and_print",
]


def __getattr__(name: str) -> Any:
    """``ReplayLedger`` is imported on first use: it brings pandas and DuckDB, which a
    workflow that keeps no ledger does not need at import time (``ScriptParser``,
    argparse, likewise)."""
    if name == "ReplayLedger":
        from .ledger.replay import ReplayLedger

        return ReplayLedger
    if name == "ScriptParser":  # argparse, for the hands-on scripts only
        from .cli.script import ScriptParser

        return ScriptParser
    raise AttributeError(f"module 'meshflow_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext meshflow_nb``: register the notebook magics (imported only now)."""
    from .notebook.magics import MeshflowMagics

    ipython.register_magics(MeshflowMagics)
