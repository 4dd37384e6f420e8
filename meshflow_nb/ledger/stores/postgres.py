"""The ledger in a PostgreSQL database, reached by a ``postgresql://`` URI (psycopg 3).

PostgreSQL is shared by many processes: every append reads the next position and the
runs' heads inside its transaction, under an advisory lock. psycopg is an optional
dependency (``meshflow-nb[postgres]``), imported only when such a ledger is opened.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from ..errors import ImmutableLedgerError, LedgerError
from ..rows import Row
from ..schema import CHECKPOINTS, CREATE_CHECKPOINTS
from .base import ENTRY_NAMES, Store, reason, running

APPEND_ONLY = "ledger_entries is append-only (immutable_audit)"
"""How the immutability triggers refuse a change (and how that refusal is recognised)."""

_IMMUTABLE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION meshflow_reject_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY}: % is not allowed', TG_OP;
END $$ LANGUAGE plpgsql
"""


_SEALED_TABLES = ("ledger_entries", "ledger_meta", CHECKPOINTS)
"""The tables immutable audit closes to changes: the entries, the recipe marker and the
verified checkpoints (new ones are still added)."""


class PostgresStore(Store):
    """A PostgreSQL database reached by a ``postgresql://`` URI (psycopg 3)."""

    dialect = "postgresql"
    title = "PostgreSQL"
    _APPEND_LOCK = 0x4D455348  # advisory lock key serialising appends ("MESH")

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.location = uri
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise LedgerError(f"{self.where} needs psycopg, which is not installed: "
                              "pip install 'meshflow-nb[postgres]'") from None
        self._con = self._connect()

    def _connect(self) -> Any:
        """A new connection to the database, or a LedgerError saying why there is none."""
        import psycopg

        try:
            return psycopg.connect(self.location)
        except psycopg.Error as err:
            raise LedgerError(f"cannot connect to {self.where}: {reason(err)}") from err

    def _connection(self) -> Any:
        """The connection, made again if the server dropped it (a restart, a failover):
        one lost connection must not fail every later write of the process."""
        if self._con.closed or self._con.broken:
            self._con = self._connect()
        return self._con

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)

    def _ledger_error(self, action: str, err: Exception) -> LedgerError:
        """A change the immutability triggers refused is an ImmutableLedgerError."""
        if APPEND_ONLY in str(err):
            return ImmutableLedgerError(f"cannot {action} on {self.where}: {reason(err)}")
        return super()._ledger_error(action, err)

    @contextmanager
    def _begin(self, changes: bool = True) -> Iterator[Any]:
        """A transaction on the one connection (positions are always read in it)."""
        with self._lock:
            con = self._connection()
            with con.transaction(), con.cursor() as cur:
                yield _QmarkCursor(cur)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.transaction(running(sql)) as cur:
            cur.execute(sql, list(params))
            names = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)

    def close(self) -> None:
        with self.failing("close the connection"):
            self._con.close()

    def warm(self) -> None:
        """Nothing to do: the connection is made when the store opens (and again by the
        next write if the server dropped it)."""

    def _lock_ledger(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", [self._APPEND_LOCK])

    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        columns = ", ".join(ENTRY_NAMES)
        with cur.raw.copy(f"COPY ledger_entries ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in ENTRY_NAMES])

    def make_immutable(self) -> None:
        """Install triggers that reject UPDATE, DELETE and TRUNCATE on the entries and on
        the recipe marker (the run records are updated as runs end, so they stay open).

        Idempotent, and never undone by the toolkit: opening the ledger without
        immutable audit must not weaken a database another process sealed.
        """
        with self.transaction("install the immutability triggers") as cur:
            self._lock_ledger(cur)
            cur.execute(_IMMUTABLE_FUNCTION)
            cur.execute(CREATE_CHECKPOINTS)
            for table in _SEALED_TABLES:
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
                cur.execute(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE "
                            f"ON {table} FOR EACH ROW EXECUTE FUNCTION meshflow_reject_change()")
                cur.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                            "FOR EACH STATEMENT EXECUTE FUNCTION meshflow_reject_change()")


class _QmarkCursor:
    """Lets the shared SQL use ``?`` placeholders on psycopg, which expects ``%s``."""

    def __init__(self, cur: Any) -> None:
        self.raw = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if params:  # psycopg reads %-placeholders only when there are parameters
            self.raw.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
        else:
            self.raw.execute(sql)

    def fetchall(self) -> list[tuple]:
        return self.raw.fetchall()

    @property
    def description(self) -> Any:
        return self.raw.description

