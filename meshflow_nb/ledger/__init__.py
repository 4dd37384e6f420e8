"""The audit ledger: every event of every run, hash-chained, on DuckDB or PostgreSQL.

The names are loaded on first use: the ledger brings pandas and DuckDB, which the
engine (and ``import meshflow_nb``) must not pay for when no ledger is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    ImmutableLedgerError,
    LedgerBusyError,
    LedgerError,
    LedgerGapError,
    LedgerValueError,
    LedgerWriteError,
)
from .location import DEFAULT_LEDGER, default_location, ledger_folder, redacted_location

_LAZY = {
    "Anchor": "anchor", "save_anchors": "anchor", "Checkpoint": "checkpoint",
    "Damage": "forensics", "Finding": "forensics",
    "ReplayLedger": "replay", "GENESIS": "schema", "VerificationResult": "verify",
    "Durability": "writer",
}

__all__ = [
    "DEFAULT_LEDGER", "GENESIS", "Anchor", "Checkpoint", "Damage", "Durability", "Finding",
    "ImmutableLedgerError", "LedgerBusyError", "LedgerError", "LedgerGapError", "LedgerValueError",
    "LedgerWriteError", "ReplayLedger", "VerificationResult", "default_location", "ledger_folder",
    "redacted_location", "save_anchors",
]

def __getattr__(name: str) -> Any:
    """Load a public name's submodule on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
