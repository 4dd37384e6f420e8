"""Opening a ledger's store from its location: which database, and its tables made."""

from __future__ import annotations

import os
from contextlib import suppress

from ..errors import LedgerError
from .base import Store
from .duckdb import DuckDBStore
from .postgres import PostgresStore


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
