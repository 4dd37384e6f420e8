"""meshflow_nb: governed multi-agent workflows you can watch, gate and audit.

The engine (graph, conditions, runner, events, ledger, policy) runs without Jupyter;
`%load_ext meshflow_nb` adds the notebook layer on top.
"""

from __future__ import annotations

from typing import Any

from .agents.base import AgentResult, NodeContext
from .events import EventType, MeshEvent
from .graph import Edge, HumanGate, Node
from .hitl import Decision, GateRequest
from .launch import RunHandle
from .policy import CircuitBreakerConfig, HumanInLoopConfig, Policy, PolicyMode
from .preflight import PreflightReport, Problem
from .results import NodeRun, RunResult, RunStatus
from .roles import RiskTier, Role
from .workflow import WorkflowDefinition

__version__ = "0.1.0"

__all__ = [
    "AgentResult", "CircuitBreakerConfig", "Decision", "Edge", "EventType", "GateRequest",
    "HumanGate", "HumanInLoopConfig", "MeshEvent", "Node", "NodeContext", "NodeRun", "Policy",
    "PolicyMode", "PreflightReport", "Problem", "ReplayLedger", "RiskTier", "Role", "RunHandle",
    "RunResult", "RunStatus", "WorkflowDefinition", "__version__",
]


def __getattr__(name: str) -> Any:
    """``ReplayLedger`` is imported on first use: it brings pandas and DuckDB, which a
    workflow that keeps no ledger does not need at import time."""
    if name == "ReplayLedger":
        from .ledger import ReplayLedger

        return ReplayLedger
    raise AttributeError(f"module 'meshflow_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext meshflow_nb``: register the notebook magics (imported only now)."""
    from .notebook.magics import MeshflowMagics

    ipython.register_magics(MeshflowMagics)
