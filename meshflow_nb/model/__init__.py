"""What a workflow is, as data: roles and risk tiers, nodes and edges, conditions,
run statuses and the structural pre-flight rules. Imports nothing above `events`."""

from .conditions import ConditionError, ConditionEvalError, ConditionSyntaxError, parse_condition
from .graph import Blueprint, Edge, HumanGate, Node, Topology
from .preflight import PreflightReport, Problem, check_structure
from .roles import RiskTier, Role
from .status import RunStatus

__all__ = ["Blueprint", "ConditionError", "ConditionEvalError", "ConditionSyntaxError", "Edge",
           "HumanGate", "Node", "PreflightReport", "Problem", "RiskTier", "Role", "RunStatus",
           "Topology", "check_structure", "parse_condition"]
