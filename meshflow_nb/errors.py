"""The one error hierarchy: every exception meshflow_nb raises on purpose is a `MeshflowError`.

Each layer defines its own subclasses beside the code that raises them (`LedgerError`
in the ledger, `ConditionError` in the condition language, ...); this module holds the
root and the few errors that every layer raises.
"""

from __future__ import annotations

import os
import re

__all__ = ["ConfigError", "MeshflowError", "UnknownNodeError"]

_SHOWN_CHARS = 80
"""How much of a bad value an error message repeats."""


class MeshflowError(Exception):
    """Root of every error meshflow_nb raises on purpose: ``except MeshflowError`` catches all."""


class ConfigError(MeshflowError, ValueError, TypeError):
    """A bad argument or setting: names it (``argument``) and says how to fix it (``fix``).

    It is a ValueError and a TypeError too, so code that guards a call with either
    keeps working whether the value had the wrong type or the wrong range. Retrying
    cannot mend a bad setting, so the circuit breaker never retries one (``retryable``).
    """

    retryable = False

    def __init__(self, message: str, *, argument: str | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message}; {fix}")
        self.message = message
        """What is wrong, without the fix (a pre-flight problem shows the two apart)."""
        self.argument = argument
        self.fix = fix


class UnknownNodeError(MeshflowError, KeyError):
    """No node has that id; the message lists the ids there are."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


def shown(value: object) -> str:
    """``repr(value)``, cut short so that a 1 MB argument never fills an error message."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}… ({len(text) - _SHOWN_CHARS} more characters)"


SECRET_VARS = ("ANTHROPIC_API_KEY",)
"""Environment variables whose values no message, event, log or file of ours may repeat."""
_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")


def redacted(text: str) -> str:
    """``text`` with every secret of `SECRET_VARS`, and anything shaped like an Anthropic
    key, replaced by ``[redacted]``: the one place a secret is scrubbed before it is shown
    or stored."""
    for name in SECRET_VARS:
        secret = os.environ.get(name, "")
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return _KEY_SHAPE.sub("[redacted]", text)
