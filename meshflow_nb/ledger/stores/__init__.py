"""Where ledger rows live: a DuckDB file (default) or a PostgreSQL database.

`base` is what both stores share (the append recipe, the run records, turning driver
errors into `LedgerError`); `duckdb` and `postgres` are the dialects, the only modules
of the ledger that import a database driver, each when its first store opens;
`opening` picks one for a location.
"""

from __future__ import annotations

from .base import Store, is_read_only
from .duckdb import DuckDBStore
from .opening import open_store
from .postgres import PostgresStore

__all__ = ["DuckDBStore", "PostgresStore", "Store", "is_read_only", "open_store"]
