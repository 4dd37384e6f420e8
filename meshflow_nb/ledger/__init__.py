"""The audit ledger: every event of every run, hash-chained, on DuckDB or PostgreSQL."""

from .anchor import Anchor, save_anchors
from .forensics import Damage, Problem
from .replay import DEFAULT_LEDGER, ReplayLedger, default_location
from .schema import GENESIS
from .stores import ImmutableLedgerError, LedgerBusyError, LedgerError, LedgerWriteError
from .verify import VerificationResult
from .writer import Durability

__all__ = [
    "DEFAULT_LEDGER", "GENESIS", "Anchor", "Damage", "Durability", "ImmutableLedgerError",
    "LedgerBusyError", "LedgerError", "LedgerWriteError", "Problem", "ReplayLedger",
    "VerificationResult", "default_location", "save_anchors",
]
