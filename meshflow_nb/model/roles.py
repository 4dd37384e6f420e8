"""Roles an agent plays and the risk tier of what it does.

`RiskTier` is ordered (READ_ONLY < INTERNAL < EXTERNAL_IO < IRREVERSIBLE) so that a
policy can say "every node at or above EXTERNAL_IO needs a human gate".
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from ..errors import ConfigError, shown


class Role(StrEnum):
    """What kind of work a node does; shapes mock output and the graph drawing."""

    RESEARCHER = "researcher"
    PLANNER = "planner"
    EXECUTOR = "executor"
    CRITIC = "critic"
    ORCHESTRATOR = "orchestrator"
    GUARDIAN = "guardian"
    HUMAN = "human"

    @classmethod
    def of(cls, value: object, argument: str) -> Role:
        """``value`` as a Role: a Role, or its value as text in any case ("Critic"); a
        ConfigError naming ``argument`` and every role otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.strip().lower() in cls._value2member_map_:
            return cls(value.strip().lower())
        raise ConfigError(f"{argument} {shown(value)} is not a Role", argument=argument,
                          fix=f"use one of {', '.join('Role.' + r.name for r in cls)}")



class RiskTier(IntEnum):
    """How much harm a node's action can do, lowest first."""

    READ_ONLY = 0
    INTERNAL = 1
    EXTERNAL_IO = 2
    IRREVERSIBLE = 3

    def __str__(self) -> str:
        return self.name
