"""The ledger's errors. Database driver errors never leave the ledger unwrapped: the
stores re-raise them as one of these, with the driver's message kept as the cause."""

from __future__ import annotations

from ..errors import MeshflowError


class LedgerError(MeshflowError):
    """Base class of the ledger's errors."""


class LedgerBusyError(LedgerError):
    """Another process holds the DuckDB file: the message says who and what to do."""


class LedgerValueError(LedgerError):
    """An event holds a value no column of the ledger can store (a NaN cost, a token
    count beyond BIGINT): it is refused when recorded, and nothing is queued for it."""


class LedgerWriteError(LedgerError):
    """Entries could not be committed: the writer gave up on them after bounded retries
    (the message says why), or waiting for the commit timed out."""

    def __init__(self, message: str, *, first_lost: int | None = None) -> None:
        super().__init__(message)
        self.first_lost = first_lost
        """The run's first entry not in the ledger, from which on all are lost (or None)."""


class LedgerGapError(LedgerWriteError):
    """A run lost an entry earlier (refused, or given up by the writer), so its later
    entries are refused too: what is stored of the run stays a whole chain."""


class ImmutableLedgerError(LedgerError):
    """An update or delete was attempted on an immutable ledger."""
