"""The tracer provider of the node running here, for an agent that makes its own spans.

The run's tracer sets it when a node starts, in that node's own task, so it holds for
exactly that execution (and for what the agent starts from it); nothing else sets it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_provider: ContextVar[Any] = ContextVar("meshflow_tracer_provider", default=None)


def tracer_provider() -> Any:
    """The OpenTelemetry tracer provider of the current node's run, or None (no export)."""
    return _provider.get()


def use_tracer_provider(provider: Any) -> None:
    """Make ``provider`` the current node's for the rest of this task (or thread)."""
    _provider.set(provider)
