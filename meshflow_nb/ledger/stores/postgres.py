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
from ..location import UNSEALABLE
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

_TRIGGERS = {**{f"{t}_immutable": (t, 27) for t in _SEALED_TABLES},
             **{f"{t}_no_truncate": (t, 34) for t in _SEALED_TABLES}}
"""Each sealing trigger's table and ``pg_trigger.tgtype``: 27 is FOR EACH ROW, BEFORE,
DELETE and UPDATE; 34 is BEFORE TRUNCATE (FOR EACH STATEMENT)."""

_INSTALLED_TRIGGERS = """
SELECT t.tgname, c.relname, t.tgtype, p.prosrc FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid IN (SELECT to_regclass(name) FROM unnest(?::text[]) AS name)
  AND t.tgenabled IN ('O', 'A') AND p.proname = 'meshflow_reject_change'
"""
"""The enabled triggers on the sealed tables that call the refusing function."""

_OWNER = "SELECT current_user, pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(?)"
"""This session's role and the owner of the entries table, for a refusal to seal."""

_FLOATS = frozenset({"numeric", "float4", "float8"})
_INTEGERS = {"int2": "int16", "int4": "int32", "int8": "int64"}
"""PostgreSQL types read as DuckDB's frames have them: numbers as float64, integers as
numpy integers (pandas' nullable ones when a value is NULL)."""


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
        """The statement's rows as a DataFrame with the dtypes DuckDB gives the same table."""
        with self.transaction(running(sql)) as cur:
            cur.execute(sql, list(params))
            if cur.description is None:  # a statement that returns no rows
                return pd.DataFrame()
            return _frame(cur.fetchall(), cur.description)

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
        """Have triggers reject UPDATE, DELETE and TRUNCATE on the entries, the recipe
        marker and the checkpoints (the run records are updated as runs end, so they
        stay open).

        Triggers already installed and enabled are only checked, so a role that may
        append but not own the tables (a learner on a shared ledger) runs sealed; when
        some are missing and this role may not install them, a LedgerError names them
        and the tables' owner. Never undone by the toolkit: opening the ledger without
        immutable audit must not weaken a database another process sealed.
        """
        missing = self._missing_triggers()
        if not missing:
            return
        import psycopg

        try:
            self._install_triggers()
        except LedgerError as err:
            if isinstance(err.__cause__, psycopg.errors.InsufficientPrivilege):
                raise self._unsealable(missing, err.__cause__) from err
            raise

    def _missing_triggers(self) -> list[str]:
        """The sealing triggers that are not installed, not enabled, or do not refuse."""
        with self.transaction("read the immutability triggers", changes=False) as cur:
            cur.execute(_INSTALLED_TRIGGERS, [list(_SEALED_TABLES)])
            found = {(name, table, kind) for name, table, kind, body in cur.fetchall()
                     if APPEND_ONLY in body}
        return [name for name, (table, kind) in _TRIGGERS.items()
                if (name, table, kind) not in found]

    def _unsealable(self, missing: list[str], err: Exception) -> LedgerError:
        """Why this role cannot seal the ledger, and who can."""
        with self.transaction("read the owner of the ledger tables", changes=False) as cur:
            cur.execute(_OWNER, ["ledger_entries"])
            role, owner = cur.fetchall()[0]
        verb = "is" if len(missing) == 1 else "are"
        return LedgerError(
            f"cannot install the immutability triggers on {self.where}, so it {UNSEALABLE} "
            f"by role {role}: {', '.join(missing)} {verb} missing or disabled, and only the "
            f"owner of the tables may install them ({reason(err)}). Have {owner} open the "
            "ledger once under immutable audit (docs/postgres-classroom.md, step 2), then "
            "run again")

    def _install_triggers(self) -> None:
        """Install (again) the refusing function and every sealing trigger, as the owner."""
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


def _frame(rows: list[tuple], description: Any) -> pd.DataFrame:
    """Rows as a DataFrame typed by their PostgreSQL columns (see `_INTEGERS`)."""
    from psycopg.postgres import types

    frame = pd.DataFrame(rows, columns=[d.name for d in description], dtype=object)
    for index, column in enumerate(description):
        info = types.get(column.type_code)
        kind = info.name if info else ""
        values = frame.iloc[:, index]
        if kind in _FLOATS:
            frame.isetitem(index, values.astype("float64"))
        elif kind in _INTEGERS:
            dtype = _INTEGERS[kind]
            frame.isetitem(index, values.astype(dtype.capitalize() if values.isna().any()
                                                else dtype))
    return frame.infer_objects()  # the other columns as pandas would read them


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

