"""The ledger in a DuckDB file (the default).

A DuckDB file is open in one process at a time (DuckDB locks it), so this store keeps
the next position and the heads of the runs it is writing in memory instead of reading
them for every batch; anything that may have changed the table behind it (an append
that failed, SQL other than a SELECT, an import, closing the file) makes it read them
again. The driver is imported when the file is first opened, so that loading the ledger
package costs nothing until a ledger is used.

Processes share a file by taking turns. The file is open while this process uses it and
for ``IDLE_CLOSE_S`` after. A process that finds it busy says it is waiting, through a
shared lock on ``<file>.waiters``, and tries again whenever the file changes hands (the
process letting go of it touches that file) or every ``RETRY_S``; it gives up with
`LedgerBusyError` once the file has not changed hands for ``wait_s``. A holder that
finishes using the file while another process waits, and has had it for ``TURN_S``,
closes it at once and stays away for ``YIELD_S``: a process writing run after run cannot
starve the others.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import fcntl
except ImportError:  # no flock (Windows): processes still take turns, just less fairly
    fcntl = None

from ...events import EventType
from ..errors import LedgerBusyError, LedgerError
from ..location import is_file_location
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
    POLL_S = 0.01
    """How often a waiting process looks whether the file changed hands (a stat call)."""
    RETRY_S = 0.25
    """How often it tries the file regardless (a holder that says nothing: a duckdb shell)."""
    TURN_S = 0.1
    """How long a process keeps the file, while others wait, before handing it over."""
    YIELD_S = 0.05
    """How long a process that handed the file over stays away, so the waiter gets in."""
    TURNS_WAIT = 10
    """Waiting through other processes' turns ends after this many times ``wait_s``."""
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
        self._waiters = Waiters(self.location)
        self._opened_at = 0.0
        self._yielded_at = float("-inf")
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

    def warm(self) -> None:
        """Open the file now if it is closed (it then closes when idle, as after any use);
        a failure is left to the commit, which reports it."""
        if self._con is None:
            with suppress(LedgerError), self.failing("open the file"), self.lease():
                pass

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
        """Connect, waiting while another process holds the file (see the module)."""
        if self._con is not None:
            return
        self._forget()  # another process may have written while the file was closed
        handed_over = self._yielded_at + self.YIELD_S - time.monotonic()
        if handed_over > 0:  # the file went to a waiting process: let it get in first
            time.sleep(handed_over)
        con = self._connect()
        if con is None:
            with self._waiters.waiting() as turns:
                con = self._connect_when_free(turns)
        self._con, self._opened_at = con, time.monotonic()

    def _connect_when_free(self, turns: Turns) -> Any:
        """Try the file each time it changes hands, and every ``RETRY_S``, until it has
        not changed hands for ``wait_s`` (or ``TURNS_WAIT`` times that has passed)."""
        now = tried = time.monotonic()
        deadline, last = now + self._wait_s, now + self._wait_s * self.TURNS_WAIT
        mark = turns.mark()
        while True:
            time.sleep(self.POLL_S)
            now = time.monotonic()
            moved = turns.mark() != mark
            if moved:
                deadline = min(now + self._wait_s, last)
            elif now - tried < self.RETRY_S and now < deadline:
                continue
            mark, tried = turns.mark(), now
            con = self._connect(busy_error=now >= deadline)
            if con is not None:
                return con

    def _connect(self, busy_error: bool = False) -> Any:
        """A connection, or None while another process holds the file (`LedgerBusyError`
        instead when ``busy_error``); any other failure is a `LedgerError`."""
        import duckdb

        folder = os.path.dirname(os.path.abspath(self.location))
        if is_file_location(self.location) and not os.path.isdir(folder):
            raise LedgerError(f"cannot open {self.where}: the folder {folder} does not exist; "
                              "create it first (os.makedirs), or choose a path in a folder "
                              "that does")
        try:
            if is_file_location(self.location) and not os.path.exists(self.location):
                _create_whole(self.location)
            return duckdb.connect(self.location)
        except duckdb.Error as err:
            if not _LOCKED.search(str(err)):
                raise LedgerError(f"cannot open {self.where}: {reason(err)} "
                                  f"({OPEN_HINT})") from err
            if busy_error:
                raise LedgerBusyError(_busy_message(self.location, str(err),
                                                    self._wait_s)) from err
            return None

    def _close_if_idle(self) -> None:
        """Close after ``IDLE_CLOSE_S`` without a lease (a timer thread does it), or at
        once when another process is waiting for the file."""
        if self._leases or self._con is None:
            return
        self._idle_since = time.monotonic()
        if self._idle_since - self._opened_at >= self.TURN_S and self._waiters.present():
            self._close()
            self._yielded_at = self._idle_since
            return
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
            self._waiters.handed_over()


class Waiters:
    """The processes waiting for a DuckDB file, seen through ``<file>.waiters``: each
    waiter holds a shared lock on it, the holder asks for the lock exclusively without
    blocking, and a process letting go of the file touches it. Best effort: without
    flock, or in a folder we cannot write, processes still take turns, less promptly."""

    def __init__(self, database: str) -> None:
        self.path = database + ".waiters"

    @contextmanager
    def waiting(self) -> Iterator[Turns]:
        """Be seen as waiting for the file while inside; yields what tells its turns."""
        fd = self._lock_file(create=True)
        try:
            if fd is not None:
                with suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_SH)
            yield Turns(fd)
        finally:
            if fd is not None:
                os.close(fd)  # which lets go of the lock

    def present(self) -> bool:
        """Whether another process is waiting for the file right now."""
        fd = self._lock_file(create=False)
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False

    def handed_over(self) -> None:
        """Tell the waiters the file was let go of (a no-op when nobody ever waited)."""
        now = time.time_ns()
        with suppress(OSError):
            os.utime(self.path, ns=(now, now))

    def _lock_file(self, create: bool) -> int | None:
        """A descriptor of the lock file, or None (none yet, or no locks here)."""
        if fcntl is None:
            return None
        try:
            return os.open(self.path, os.O_RDONLY | (os.O_CREAT if create else 0), 0o666)
        except OSError:
            return None


class Turns:
    """What a waiting process watches: the lock file's modification time."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def mark(self) -> int | None:
        """Changes each time the file changes hands (None without a lock file)."""
        if self.fd is None:
            return None
        try:
            return os.fstat(self.fd).st_mtime_ns
        except OSError:
            return None


def _create_whole(path: str) -> None:
    """Make a new DuckDB file under a private name and link it into place, so that a
    process opening ``path`` never sees the header half written (two processes starting
    on a new file at once); whoever links first wins, the others open theirs."""
    import duckdb

    draft = f"{path}.{os.getpid()}.{threading.get_ident()}.new"
    try:
        duckdb.connect(draft).close()
        with suppress(FileExistsError):
            os.link(draft, path)
    except (OSError, duckdb.Error):
        pass  # no hard links or no draft here: DuckDB makes the file, or says why not
    finally:
        for leftover in (draft, draft + ".wal"):
            with suppress(OSError):
                os.remove(leftover)


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
