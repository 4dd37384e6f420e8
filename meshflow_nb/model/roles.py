"""Roles an agent plays and the risk tier of what it does.

`RiskTier` is ordered (READ_ONLY < INTERNAL < EXTERNAL_IO < IRREVERSIBLE) so that a
policy can say "every node at or above EXTERNAL_IO needs a human gate".
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(StrEnum):
    """What kind of work a node does; shapes mock output and the graph drawing."""

    RESEARCHER = "researcher"
    PLANNER = "planner"
    EXECUTOR = "executor"
    CRITIC = "critic"
    ORCHESTRATOR = "orchestrator"
    GUARDIAN = "guardian"
    HUMAN = "human"



class RiskTier(IntEnum):
    """How much harm a node's action can do, lowest first."""

    READ_ONLY = 0
    INTERNAL = 1
    EXTERNAL_IO = 2
    IRREVERSIBLE = 3

    def __str__(self) -> str:
        return self.name
