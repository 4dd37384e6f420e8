"""Where ledger rows live: a DuckDB file (default) or a PostgreSQL database.

Both stores append the same way, inside one transaction: take the store's write lock,
read the ledger's next position and the heads of the runs in the batch, chain and hash
the rows, insert them, and update each run's record. The primary key on ``seq`` and the
uniqueness of ``(run_id, run_seq)`` are the backstop if anything else writes.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..events import EventType
from .hashing import Row, chain_rows, to_json_text
from .schema import ENTRY_COLUMNS, RUN_COLUMNS, create_statements

ENTRY_NAMES = [name for name, _ in ENTRY_COLUMNS]
_SELECT_ENTRIES = ", ".join(
    f"CAST({n} AS DECIMAL(18, 9)) AS {n}" if kind.startswith("DECIMAL") else n
    for n, kind in ENTRY_COLUMNS)


class LedgerError(Exception):
    """Base class of the ledger's errors."""


class LedgerBusyError(LedgerError):
    """Another process holds the DuckDB file: the message says who and what to do."""


class LedgerWriteError(LedgerError):
    """A batch could not be written; its events are kept and retried."""


class ImmutableLedgerError(LedgerError):
    """An update or delete was attempted on an immutable ledger."""


class Store:
    """What the ledger needs from a database; subclasses supply the dialect."""

    dialect = ""
    location = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # subclass hooks -------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        raise NotImplementedError

    def _lock_ledger(self, cur: Any) -> None:
        """Serialise appends across connections (a no-op where the file is exclusive)."""

    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # shared ---------------------------------------------------------------------

    def ensure_schema(self) -> None:
        with self.transaction() as cur:
            for statement in create_statements():
                cur.execute(statement)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction() as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()

    def append(self, batch: list[Row]) -> list[Row]:
        """Chain, hash and insert a batch of event rows in one transaction."""
        with self.transaction() as cur:
            self._lock_ledger(cur)
            cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM ledger_entries")
            next_seq = cur.fetchall()[0][0]
            heads = self._heads(cur, {r["run_id"] for r in batch if r["run_seq"] > 1})
            chained = chain_rows(batch, next_seq, heads)
            self._insert_rows(cur, chained)
            self._record_runs(cur, chained)
        return chained

    def import_run(self, entries: list[Row], run: Row | None) -> None:
        """Insert an exported run exactly as it was stored (no re-chaining)."""
        rows = [{n: _typed(n, e[n]) for n in ENTRY_NAMES} for e in entries]
        seqs = [r["seq"] for r in rows]
        run_id = rows[0]["run_id"]
        with self.transaction() as cur:
            self._lock_ledger(cur)
            cur.execute("SELECT count(*) FROM ledger_entries WHERE run_id = ? "
                        "OR seq BETWEEN ? AND ?", [run_id, min(seqs), max(seqs)])
            if cur.fetchall()[0][0]:
                raise LedgerError(f"cannot import run {run_id}: the ledger already has this "
                                  "run or entries at the same positions; import into an "
                                  "empty ledger")
            self._insert_rows(cur, rows)
            if run:
                names = [n for n, _ in RUN_COLUMNS]
                cur.execute(f"INSERT INTO ledger_runs ({', '.join(names)}) VALUES "
                            f"({', '.join('?' for _ in names)})", [run.get(n) for n in names])

    def _heads(self, cur: Any, run_ids: set[str]) -> dict[str, str]:
        heads = {}
        for run_id in run_ids:
            cur.execute("SELECT hash FROM ledger_entries WHERE run_id = ? "
                        "ORDER BY run_seq DESC LIMIT 1", [run_id])
            found = cur.fetchall()  # fetch everything: DuckDB keeps partial results open
            if found:
                heads[run_id] = found[0][0]
        return heads

    def _record_runs(self, cur: Any, rows: list[Row]) -> None:
        """Insert or update each run's record: status, times, entry count, head."""
        last: dict[str, Row] = {}
        for row in rows:
            if row["event_type"] == EventType.RUN_START.value:
                self._start_run(cur, row)
            last[row["run_id"]] = row
        for run_id, row in last.items():
            ended = row["event_type"] == EventType.RUN_COMPLETE.value
            status = _payload_status(row) if ended else None
            cur.execute(
                "UPDATE ledger_runs SET entry_count = ?, head_hash = ?, "
                "status = coalesce(?, status), ended_at = coalesce(?, ended_at) "
                "WHERE run_id = ?",
                [row["run_seq"], row["hash"], status, row["ts"] if ended else None, run_id])

    def _start_run(self, cur: Any, row: Row) -> None:
        payload = _payload(row)
        cur.execute(
            "INSERT INTO ledger_runs (run_id, workflow, task, status, started_at, entry_count, "
            "head_hash, policy) VALUES (?, ?, ?, 'running', ?, 0, NULL, ?) "
            "ON CONFLICT (run_id) DO NOTHING",
            [row["run_id"], payload.get("workflow"), payload.get("task"), row["ts"],
             to_json_text(payload.get("policy"))])


class DuckDBStore(Store):
    """A DuckDB file. The connection is opened when needed and closed when idle, so
    that other processes (the duckdb CLI) can open the file between runs."""

    dialect = "duckdb"

    def __init__(self, path: str | os.PathLike, wait_s: float | None = None) -> None:
        super().__init__()
        self.location = str(Path(path))
        self._wait_s = float(os.environ.get("MESHFLOW_LEDGER_WAIT_S", "10")) \
            if wait_s is None else wait_s
        self._con: Any = None
        self._leases = 0

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Keep the connection open across several operations (e.g. a run)."""
        with self._lock:
            self._open()
            self._leases += 1
        try:
            yield
        finally:
            with self._lock:
                self._leases -= 1
                self._close_if_idle()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.lease(), self._lock:
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.lease(), self._lock:
            return self._con.execute(sql, list(params)).df()

    def arrow(self, sql: str) -> Any:
        with self.lease(), self._lock:
            return self._con.sql(sql).to_arrow_table()

    def close(self) -> None:
        with self._lock:
            self._leases = 0
            self._close_if_idle()

    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        import pyarrow as pa

        batch = pa.Table.from_pylist([{n: r[n] for n in ENTRY_NAMES} for r in rows],
                                     schema=_arrow_schema())
        cur.register("meshflow_batch", batch)
        try:
            cur.execute(f"INSERT INTO ledger_entries SELECT {_SELECT_ENTRIES} FROM meshflow_batch")
        finally:
            cur.unregister("meshflow_batch")

    def _open(self) -> None:
        if self._con is not None:
            return
        import duckdb

        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                self._con = duckdb.connect(self.location)
                return
            except duckdb.IOException as err:
                if "lock" not in str(err).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise LedgerBusyError(_busy_message(self.location, str(err),
                                                        self._wait_s)) from None
                time.sleep(0.1)

    def _close_if_idle(self) -> None:
        if self._leases == 0 and self._con is not None:
            self._con.close()
            self._con = None


class PostgresStore(Store):
    """A PostgreSQL database reached by a ``postgresql://`` URI (psycopg 3)."""

    dialect = "postgresql"
    _APPEND_LOCK = 0x4D455348  # advisory lock key serialising appends ("MESH")

    def __init__(self, uri: str) -> None:
        super().__init__()
        import psycopg

        self.location = uri
        try:
            self._con = psycopg.connect(uri)
        except psycopg.OperationalError as err:
            raise LedgerError(f"cannot connect to the PostgreSQL ledger at "
                              f"{_redact(uri)}: {err}".strip()) from None

    @contextmanager
    def lease(self) -> Iterator[None]:
        yield

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock, self._con.transaction(), self._con.cursor() as cur:
            yield _QmarkCursor(cur)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.transaction() as cur:
            cur.execute(sql, list(params))
            names = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)

    def close(self) -> None:
        self._con.close()

    def _lock_ledger(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", [self._APPEND_LOCK])

    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        columns = ", ".join(ENTRY_NAMES)
        with cur.raw.copy(f"COPY ledger_entries ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[n] for n in ENTRY_NAMES])

    def set_immutable(self, on: bool) -> None:
        """Install (or drop) triggers that reject UPDATE, DELETE and TRUNCATE."""
        with self.transaction() as cur:
            cur.execute(_IMMUTABLE_FUNCTION)
            cur.execute("DROP TRIGGER IF EXISTS ledger_entries_immutable ON ledger_entries")
            cur.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
            if on:
                cur.execute("CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE "
                            "ON ledger_entries FOR EACH ROW EXECUTE FUNCTION "
                            "meshflow_reject_change()")
                cur.execute("CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE "
                            "ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION "
                            "meshflow_reject_change()")


_IMMUTABLE_FUNCTION = """
CREATE OR REPLACE FUNCTION meshflow_reject_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (immutable_audit): % is not allowed', TG_OP;
END $$ LANGUAGE plpgsql
"""


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


def open_store(location: str | os.PathLike) -> Store:
    """A PostgreSQL store for ``postgresql://`` URIs, else a DuckDB file."""
    text = str(location)
    store: Store
    if text.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(text)
    else:
        store = DuckDBStore(text)
    store.ensure_schema()
    return store


def _typed(name: str, value: Any) -> Any:
    """Exported text back to the stored type (BIGINT columns need ints)."""
    return int(value) if value is not None and name in _BIGINT_COLUMNS else value


_BIGINT_COLUMNS = frozenset(n for n, kind in ENTRY_COLUMNS if kind.startswith("BIGINT"))


def _payload(row: Row) -> dict[str, Any]:
    import json

    return json.loads(row["payload"]) if row["payload"] else {}


def _payload_status(row: Row) -> str | None:
    return _payload(row).get("status")


def _arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {"BIGINT": pa.int64()}
    return pa.schema([(n, kinds.get(k.split()[0], pa.string())) for n, k in ENTRY_COLUMNS])


def _busy_message(path: str, error: str, waited: float) -> str:
    pid = re.search(r"PID (\d+)", error)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return (f"The ledger file {path} is in use by {holder} (a run or a duckdb shell is "
            f"writing to it); waited {waited:g} s. Try again when it has finished, close "
            "that program, or set MESHFLOW_LEDGER_DB to another file. "
            "(MESHFLOW_LEDGER_WAIT_S sets how long to wait.)")


def _redact(uri: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)
