"""The ledger in a DuckDB file (the default).

A DuckDB file is open in one process at a time (DuckDB locks it), so this store keeps
the next position and the heads of the runs it is writing in memory instead of reading
them for every batch; anything that may have changed the table behind it (an append
that failed, SQL other than a SELECT, an import, closing the file) makes it read them
again. The driver is imported when the file is first opened, so that loading the ledger
package costs nothing until a ledger is used.
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

from ...events import EventType
from ..errors import LedgerBusyError, LedgerError
from ..rows import Row
from ..schema import ENTRY_COLUMNS
from .base import ENTRY_NAMES, Store, appending, continuing, is_read_only, reason, running

_SELECT_ENTRIES = ", ".join(
    f"CAST({n} AS DECIMAL(18, 9)) AS {n}" if kind.startswith("DECIMAL") else n
    for n, kind in ENTRY_COLUMNS)

_LOCKED = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)
"""DuckDB's words for a file another process holds (the path itself may say "lock")."""

OPEN_HINT = "a ledger file must be a DuckDB database, or not exist yet"


class DuckDBStore(Store):
    """A DuckDB file. The connection is opened when needed and closed once it has been
    idle for ``IDLE_CLOSE_S``, so that other processes (the duckdb CLI) can open the file
    between runs while back-to-back runs reuse one connection."""

    dialect = "duckdb"
    title = "DuckDB"
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

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        import duckdb

        return (duckdb.Error,)

    def make_immutable(self) -> None:
        """DuckDB has no triggers: the toolkit's own refusal (`ReplayLedger.sql`, `seal`)
        is all there is, which docs/ledger.md says."""

    def _lock_ledger(self, cur: Any) -> None:
        """Nothing to do: one process holds a DuckDB file, and the store's lock is held."""

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

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.failing(running(sql)), self.lease(), self._lock:
            if not is_read_only(sql):
                self._forget()
            return self._con.execute(sql, list(params)).df()

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A second connection to the open database, for reading from another thread."""
        with self.failing("read the entries"), self.lease():
            with self._lock:
                cur = self._con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        """Close the file now (queued events are the writer's; see `ReplayLedger.flush`)."""
        with self.failing("close the file"), self._lock:
            self._leases = 0
            self._close()

    # appending with remembered positions ----------------------------------------

    def append(self, batch: list[Row]) -> list[Row]:
        """Chain, hash and insert a batch in one transaction, from remembered positions."""
        with self._lock:
            try:
                with self.transaction(appending(batch), changes=False) as cur:
                    known = self._next_seq is not None  # nothing changed since our commit
                    chained, heads = self._chain_and_insert(cur, batch, careful=not known)
            except BaseException:
                self._forget()
                raise
            self._remember(chained, heads)
        return chained

    def _positions(self, cur: Any, batch: list[Row]) -> tuple[int, dict[str, str]]:
        """Next seq and heads from memory; only unknown runs' heads are read (if any)."""
        if self._next_seq is None:
            return super()._positions(cur, batch)
        wanted = continuing(batch)
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
                                     schema=arrow_schema())
        cur.register("meshflow_batch", batch)
        try:
            cur.execute(f"INSERT INTO ledger_entries SELECT {_SELECT_ENTRIES} FROM meshflow_batch")
        finally:
            cur.unregister("meshflow_batch")

    # the connection ----------------------------------------------------------------

    @contextmanager
    def _begin(self, changes: bool = True) -> Iterator[Any]:
        """A transaction on the shared connection; ``changes``: read positions again."""
        with self.lease(), self._lock:
            if changes:
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
        """Connect, waiting up to ``wait_s`` while another process holds the file."""
        if self._con is not None:
            return
        import duckdb

        self._forget()  # another process may have written while the file was closed
        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                self._con = duckdb.connect(self.location)
                return
            except duckdb.Error as err:
                if not _LOCKED.search(str(err)):
                    raise LedgerError(f"cannot open {self.where}: {reason(err)} "
                                      f"({OPEN_HINT})") from err
                if time.monotonic() >= deadline:
                    raise LedgerBusyError(_busy_message(self.location, str(err),
                                                        self._wait_s)) from err
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
            con, self._con = self._con, None
            self._forget()
            con.close()


def arrow_schema() -> Any:
    """The entries' columns as an Arrow schema (BIGINT as int64, the rest as text)."""
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
