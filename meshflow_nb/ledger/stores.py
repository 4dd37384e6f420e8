"""Where ledger rows live: a DuckDB file (default) or a PostgreSQL database.

Both stores append the same way, inside one transaction: take the store's write lock,
read the ledger's next position and the heads of the runs in the batch, chain and hash
the rows, insert them, and update each run's record. The primary key on ``seq`` and the
uniqueness of ``(run_id, run_seq)`` are the backstop if anything else writes.

A DuckDB file is open in one process at a time (DuckDB locks it), so that store keeps
the next position and the heads of the runs it is writing in memory instead of reading
them for every batch; anything that may have changed the table behind it (an append
that failed, SQL other than a SELECT, an import, closing the file) makes it read them
again. PostgreSQL is shared by many processes: it reads both inside the transaction,
under an advisory lock.
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
from .errors import LedgerBusyError, LedgerError
from .hashing import Row, chain_rows, to_json_text
from .schema import ENTRY_COLUMNS, RUN_COLUMNS, create_statements

ENTRY_NAMES = [name for name, _ in ENTRY_COLUMNS]
_SELECT_ENTRIES = ", ".join(
    f"CAST({n} AS DECIMAL(18, 9)) AS {n}" if kind.startswith("DECIMAL") else n
    for n, kind in ENTRY_COLUMNS)


class Store:
    """What the ledger needs from a database; subclasses supply the dialect."""

    dialect = ""
    location = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # subclass hooks -------------------------------------------------------------

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Keep the connection open across several operations (a no-op by default)."""
        yield

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
            self._lock_ledger(cur)  # processes opening one database at once take turns
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
            next_seq, heads = self._positions(cur, batch)
            chained = chain_rows(batch, next_seq, heads)
            self._insert_rows(cur, chained)
            self._record_runs(cur, chained)
        return chained

    def _positions(self, cur: Any, batch: list[Row]) -> tuple[int, dict[str, str]]:
        """The ledger's next ``seq`` and the head hash of each continuing run, from SQL."""
        cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM ledger_entries")
        next_seq = cur.fetchall()[0][0]
        return next_seq, self._heads(cur, _continuing(batch))

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
        """The hash of each run's last stored entry (runs without entries are left out)."""
        if not run_ids:
            return {}
        ids = sorted(run_ids)
        if len(ids) == 1:
            sql = ("SELECT run_id, hash FROM ledger_entries WHERE run_id = ? "
                   "ORDER BY run_seq DESC LIMIT 1")
        else:
            sql = ("SELECT run_id, hash FROM (SELECT run_id, hash, row_number() OVER "
                   "(PARTITION BY run_id ORDER BY run_seq DESC) AS newest FROM ledger_entries "
                   f"WHERE run_id IN ({', '.join('?' for _ in ids)})) AS runs WHERE newest = 1")
        cur.execute(sql, ids)
        return dict(cur.fetchall())  # fetch everything: DuckDB keeps partial results open

    def _record_runs(self, cur: Any, rows: list[Row], careful: bool = True) -> None:
        """Insert or update each run's record: status, times, entry count, head.

        Runs that start in the batch get their record as of their last entry in it: one
        plain insert for all of them when not ``careful`` (the caller knows none exists;
        it fails otherwise), else an upsert each (what inserting, then updating, did).
        Runs that continue are updated in one statement.
        """
        starts: dict[str, Row] = {}
        last: dict[str, Row] = {}
        for row in rows:
            if row["event_type"] == EventType.RUN_START.value:
                starts.setdefault(row["run_id"], row)
            last[row["run_id"]] = row
        new = [_record_values(starts[r], row) for r, row in last.items() if r in starts]
        old = [_update_values(row) for r, row in last.items() if r not in starts]
        if new and careful:
            for values in new:
                cur.execute(_UPSERT_RUN, values)
        elif new:
            cur.execute(_insert_runs_sql(len(new)), [v for vals in new for v in vals[:-1]])
        if len(old) == 1:
            run_id, *changes = old[0]
            cur.execute(_UPDATE_RUN, [*changes, run_id])
        elif old:
            cur.execute(_update_runs_sql(len(old)), [v for values in old for v in values])


class DuckDBStore(Store):
    """A DuckDB file. The connection is opened when needed and closed once it has been
    idle for ``IDLE_CLOSE_S``, so that other processes (the duckdb CLI) can open the file
    between runs while back-to-back runs reuse one connection."""

    dialect = "duckdb"
    IDLE_CLOSE_S = 0.25
    """How long the file stays open after its last use (reopening costs ~10-30 ms)."""
    HEADS_LIMIT = 10_000
    """Remembered run heads beyond this are dropped (and read from the table if needed)."""

    def __init__(self, path: str | os.PathLike, wait_s: float | None = None) -> None:
        super().__init__()
        self.location = str(Path(path))
        self._wait_s = float(os.environ.get("MESHFLOW_LEDGER_WAIT_S", "10")) \
            if wait_s is None else wait_s
        self._con: Any = None
        self._leases = 0
        self._idle_since = 0.0
        self._closer: threading.Timer | None = None
        self._appender: Any = None
        self._next_seq: int | None = None  # None: read positions from the table
        self._known_heads: dict[str, str] = {}

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
        """A transaction that may change anything: positions are read again after it."""
        with self._transaction(forget=True) as cur:
            yield cur

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._transaction(forget=not is_read_only(sql)) as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.lease(), self._lock:
            if not is_read_only(sql):
                self._forget()
            return self._con.execute(sql, list(params)).df()

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A second connection to the open database, for reading from another thread."""
        with self.lease():
            with self._lock:
                cur = self._con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        """Close the file now (queued events are the writer's; see `ReplayLedger.flush`)."""
        with self._lock:
            self._leases = 0
            self._close()

    # appending with remembered positions ----------------------------------------

    def append(self, batch: list[Row]) -> list[Row]:
        """Chain, hash and insert a batch in one transaction, from remembered positions."""
        with self._lock:
            try:
                with self._transaction(forget=False) as cur:
                    known = self._next_seq is not None  # nothing changed since our commit
                    next_seq, heads = self._positions(cur, batch)
                    chained = chain_rows(batch, next_seq, heads)
                    self._insert_rows(cur, chained)
                    self._record_runs(cur, chained, careful=not known)
            except BaseException:
                self._forget()
                raise
            self._remember(chained, heads)
        return chained

    def _positions(self, cur: Any, batch: list[Row]) -> tuple[int, dict[str, str]]:
        """Next seq and heads from memory; only unknown runs' heads are read (if any)."""
        if self._next_seq is None:
            return super()._positions(cur, batch)
        wanted = _continuing(batch)
        heads = {r: self._known_heads[r] for r in wanted if r in self._known_heads}
        heads.update(self._heads(cur, wanted - heads.keys()))
        return self._next_seq, heads

    def _remember(self, chained: list[Row], heads: dict[str, str]) -> None:
        """After a commit: the next seq, and the heads of runs that may continue."""
        self._next_seq = chained[-1]["seq"] + 1 if chained else self._next_seq
        self._known_heads.update(heads)
        for row in chained:
            if row["event_type"] == EventType.RUN_COMPLETE.value:
                self._known_heads.pop(row["run_id"], None)
        if len(self._known_heads) > self.HEADS_LIMIT:
            self._known_heads.clear()

    def _forget(self) -> None:
        """The table may have changed behind us: read positions from it next time."""
        self._next_seq = None
        self._known_heads.clear()

    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        """Insert through DuckDB's appender (one statement), or Arrow where it is missing."""
        if cur is self._con and hasattr(cur, "appender"):
            appender = self._entry_appender()
            appender.clear()
            try:
                appender.append_rows([[r[n] for n in ENTRY_NAMES] for r in rows])
                appender.flush()
            except BaseException:
                self._appender = None  # a failed flush may leave it unusable
                raise
            return
        self._insert_arrow(cur, rows)

    def _entry_appender(self) -> Any:
        if self._appender is None:
            self._appender = self._con.appender("ledger_entries")
        return self._appender

    def _insert_arrow(self, cur: Any, rows: list[Row]) -> None:
        import pyarrow as pa

        batch = pa.Table.from_pylist([{n: r[n] for n in ENTRY_NAMES} for r in rows],
                                     schema=_arrow_schema())
        cur.register("meshflow_batch", batch)
        try:
            cur.execute(f"INSERT INTO ledger_entries SELECT {_SELECT_ENTRIES} FROM meshflow_batch")
        finally:
            cur.unregister("meshflow_batch")

    # the connection ----------------------------------------------------------------

    @contextmanager
    def _transaction(self, forget: bool) -> Iterator[Any]:
        with self.lease(), self._lock:
            if forget:
                self._forget()
            cur = self._con
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _open(self) -> None:
        if self._con is not None:
            return
        import duckdb

        self._forget()  # another process may have written while the file was closed
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
        """Close after ``IDLE_CLOSE_S`` without a lease (a timer thread does it)."""
        if self._leases or self._con is None:
            return
        self._idle_since = time.monotonic()
        if self._closer is None:
            self._schedule_close(self.IDLE_CLOSE_S)

    def _schedule_close(self, delay: float) -> None:
        self._closer = threading.Timer(delay, self._close_when_idle)
        self._closer.daemon = True
        self._closer.start()

    def _close_when_idle(self) -> None:
        with self._lock:
            self._closer = None
            if self._leases or self._con is None:
                return
            left = self._idle_since + self.IDLE_CLOSE_S - time.monotonic()
            if left > 0:
                self._schedule_close(left)
            else:
                self._close()

    def _close(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self._leases == 0 and self._con is not None:
            self._appender = None
            self._con.close()
            self._con = None
            self._forget()


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

    def make_immutable(self) -> None:
        """Install triggers that reject UPDATE, DELETE and TRUNCATE on the entries.

        Idempotent, and never undone by the toolkit: opening the ledger without
        immutable audit must not weaken a database another process sealed.
        """
        with self.transaction() as cur:
            self._lock_ledger(cur)
            cur.execute(_IMMUTABLE_FUNCTION)
            cur.execute("DROP TRIGGER IF EXISTS ledger_entries_immutable ON ledger_entries")
            cur.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
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


_RUN_FIELDS = ("run_id, workflow, task, status, started_at, ended_at, entry_count, "
               "head_hash, policy")


def _record_values(start: Row, last: Row) -> list[Any]:
    """A new run's record as of ``last``, then its status again (for the upsert)."""
    payload = _payload(start)
    status, ended_at = _ending(last)
    return [start["run_id"], payload.get("workflow"), payload.get("task"), status,
            start["ts"], ended_at, last["run_seq"], last["hash"],
            to_json_text(payload.get("policy")), status]


def _update_values(last: Row) -> list[Any]:
    status, ended_at = _ending(last)
    return [last["run_id"], last["run_seq"], last["hash"], status, ended_at]


def _ending(last: Row) -> tuple[str | None, str | None]:
    """Status and end time when ``last`` ends its run, else (None, None)."""
    if last["event_type"] != EventType.RUN_COMPLETE.value:
        return None, None
    return _payload_status(last), last["ts"]


_RUN_ROW = "(?, ?, ?, coalesce(?, 'running'), ?, ?, CAST(? AS BIGINT), ?, ?)"

_UPSERT_RUN = (
    f"INSERT INTO ledger_runs ({_RUN_FIELDS}) VALUES {_RUN_ROW} "
    "ON CONFLICT (run_id) DO UPDATE SET entry_count = excluded.entry_count, "
    "head_hash = excluded.head_hash, status = coalesce(?, ledger_runs.status), "
    "ended_at = coalesce(excluded.ended_at, ledger_runs.ended_at)")
"""A new run's record, or the update of one that exists after all (what inserting with
ON CONFLICT DO NOTHING and then updating did)."""

_UPDATE_RUN = ("UPDATE ledger_runs SET entry_count = ?, head_hash = ?, "
               "status = coalesce(?, status), ended_at = coalesce(?, ended_at) "
               "WHERE run_id = ?")


def _insert_runs_sql(count: int) -> str:
    """Plain insert of ``count`` new records (fails if one exists)."""
    return f"INSERT INTO ledger_runs ({_RUN_FIELDS}) VALUES {', '.join([_RUN_ROW] * count)}"


def _update_runs_sql(count: int) -> str:
    """One statement updating ``count`` records from (run_id, count, head, status, end)."""
    rows = ", ".join(["(?, CAST(? AS BIGINT), ?, ?, ?)"] * count)
    return ("UPDATE ledger_runs SET entry_count = v.entry_count, head_hash = v.head_hash, "
            "status = coalesce(v.status, ledger_runs.status), "
            "ended_at = coalesce(v.ended_at, ledger_runs.ended_at) "
            f"FROM (VALUES {rows}) AS v(run_id, entry_count, head_hash, status, ended_at) "
            "WHERE ledger_runs.run_id = v.run_id")


def _continuing(batch: list[Row]) -> set[str]:
    """Runs whose first entry in the batch links to a stored head (is not their first)."""
    first: dict[str, int] = {}
    for row in batch:
        first.setdefault(row["run_id"], row["run_seq"])
    return {run for run, run_seq in first.items() if run_seq > 1}


_READING = re.compile(r"(?:\s*--[^\n]*\n)*\s*(select|from|with|show|describe|explain)\b",
                      re.IGNORECASE)
_CHANGING = re.compile(r"\b(insert|update|delete|merge|drop|alter|truncate|create|copy)\b",
                       re.IGNORECASE)


def is_read_only(sql: str) -> bool:
    """Whether every statement in ``sql`` only reads. Errs towards "it writes": that
    answer merely refuses the query under immutable audit, or drops a cache."""
    statements = [s for s in sql.split(";") if s.strip()]
    return all(_READING.match(s) and not _CHANGING.search(s) for s in statements)


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
