"""`agent_for`: the agent that plays a role, mock or live as the environment says.

    researcher = agent_for(Role.RESEARCHER)                # MockAgent with MESHFLOW_MOCK=1
    writer = agent_for(Role.EXECUTOR, angle="writer")      # AnthropicAgent with a key

A hand-built workflow gets its agents the way the ready-made pipelines do: with
``MESHFLOW_MOCK=1`` a deterministic mock agent (no key, no network, no cost), else a
live Claude agent when live calls have somewhere to go (``ANTHROPIC_API_KEY``, a local
server, a cassette to replay), else `MissingKeyError`, one line naming both ways on.
The choice is made when the agent is made, so one cell builds either kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, shown
from ..model.roles import Role
from .claude import AnthropicAgent, live_model
from .client import live_target
from .mock import MockAgent, MockCritic, mock_enabled

__all__ = ["agent_for"]


def agent_for(role: Role | str, angle: str | None = None, *, model: str | None = None,
              environ: Mapping[str, str] | None = None) -> MockAgent | AnthropicAgent:
    """The agent that plays ``role``: a mock one with ``MESHFLOW_MOCK=1``, else a live
    Claude agent (``model``, else ``MESHFLOW_MODEL``), else `MissingKeyError`.

    ``angle`` is an executor's: "writer" (or None) drafts, any other angle ("technical",
    "business") analyses from it. ``environ`` is read instead of ``os.environ``.
    """
    chosen = Role.of(role, "role")
    angle = _angle(angle)
    if mock_enabled(environ):
        return MockCritic() if chosen is Role.CRITIC else MockAgent(chosen, angle=angle)
    live_target(environ)  # MissingKeyError: neither mock mode nor anywhere to call
    settings: dict[str, Any] = {"model": model or live_model(environ)}
    if chosen is Role.CRITIC:
        return AnthropicAgent.critic(**settings)
    return AnthropicAgent(chosen, angle=angle, **settings)


def _angle(angle: object) -> str | None:
    """``angle`` when it is None or text; a ConfigError else."""
    if angle is None or (isinstance(angle, str) and angle.strip()):
        return angle
    raise ConfigError(f"agent_for: angle must be text such as 'writer', not {shown(angle)}",
                      argument="angle", fix="leave it out (None) or name the angle in words")
