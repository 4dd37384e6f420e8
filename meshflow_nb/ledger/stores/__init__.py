"""Where ledger rows live: a DuckDB file (default) or a PostgreSQL database.

`base` is what both stores share (the append recipe, the run records, turning driver
errors into `LedgerError`); `duckdb` and `postgres` are the dialects. They are the only
modules of the ledger that import a database driver, each when its first store opens.
"""

from __future__ import annotations

import os
from contextlib import suppress

from ..errors import LedgerError
from .base import Store, is_read_only, redact
from .duckdb import DuckDBStore
from .postgres import PostgresStore

__all__ = ["DuckDBStore", "PostgresStore", "Store", "is_read_only", "open_store", "redact"]


def open_store(location: str | os.PathLike) -> Store:
    """A PostgreSQL store for ``postgresql://`` URIs, else a DuckDB file; tables made."""
    text = str(location)
    store: Store
    if text.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(text)
    else:
        store = DuckDBStore(text)
    try:
        store.ensure_schema()
    except LedgerError:
        with suppress(LedgerError):
            store.close()  # a store that cannot hold a ledger keeps nothing open
        raise
    return store
