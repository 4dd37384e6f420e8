"""What the ledger needs from a database, written once for DuckDB and PostgreSQL.

Both stores append the same way, inside one transaction: take the store's write lock,
read the ledger's next position and the heads of the runs in the batch, chain and hash
the rows, insert them, and update each run's record. The primary key on ``seq`` and the
uniqueness of ``(run_id, run_seq)`` are the backstop if anything else writes.

Every operation runs inside `Store.failing`, which re-raises the driver's errors as a
`LedgerError` saying what failed and on which ledger (the driver's error is its cause),
so no caller ever has to know which driver is underneath.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pandas as pd

from ...events import EventType, plural
from ..canonical import CURRENT_RECIPE, Recipe, marked_recipe
from ..errors import LedgerError
from ..location import redacted_location
from ..rows import RUN_FIELDS, Row, chain_rows
from ..schema import ENTRY_COLUMNS, RUN_COLUMNS, create_statements, read_marker

ENTRY_NAMES = [name for name, _ in ENTRY_COLUMNS]

SQL_SHOWN = 60
"""Characters of a failed statement quoted in the error message."""


class Store(ABC):
    """What the ledger needs from a database; subclasses supply the dialect."""

    dialect = ""
    title = ""
    """The database's name in messages (``DuckDB``, ``PostgreSQL``)."""
    location = ""
    recipe: Recipe = CURRENT_RECIPE
    """The hash recipe appends use: the ledger's own, read by `ensure_schema`."""
    verified: Any = None
    """What this process last verified of the ledger (`checkpoint.Verified`), or None."""
    found_damaged = False
    """Whether this process's last full check of the ledger failed: until one passes,
    every pre-run check is a full one (`incremental.since_checkpoint`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @property
    def where(self) -> str:
        """The ledger as messages name it, a password in a URI hidden."""
        return f"the {self.title} ledger at {redacted_location(self.location)}"

    @abstractmethod
    def make_immutable(self) -> None:
        """Have the database itself refuse changes to the entries, where it can."""

    # subclass hooks -------------------------------------------------------------

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Keep the connection open across several operations (a no-op by default)."""
        yield

    @abstractmethod
    def warm(self) -> None:
        """Get ready for a commit soon, never raising: the writer calls it while a batch
        gathers, so that opening the database is not what the run waits for."""

    @abstractmethod
    def _begin(self, changes: bool = True) -> AbstractContextManager[Any]:
        """A driver transaction (committed, or rolled back on error), yielding a cursor;
        ``changes`` is False when it leaves remembered ledger positions valid."""

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's exception classes, which `failing` turns into LedgerError."""
        return ()

    @abstractmethod
    def _lock_ledger(self, cur: Any) -> None:
        """Serialise appends across connections (inside the append's transaction)."""

    @abstractmethod
    def _insert_rows(self, cur: Any, rows: list[Row]) -> None:
        """Insert rows that already have their seq and hash into ledger_entries."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run one statement and return what it selects as a DataFrame."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the database connection."""

    # errors -----------------------------------------------------------------------

    @contextmanager
    def failing(self, action: str) -> Iterator[None]:
        """Re-raise a driver error from inside as a LedgerError: "cannot <action> on …"."""
        try:
            yield
        except self._driver_errors() as err:
            raise self._ledger_error(action, err) from err

    def _ledger_error(self, action: str, err: Exception) -> LedgerError:
        """The LedgerError (or subclass) standing for a driver error."""
        return LedgerError(f"cannot {action} on {self.where}: {reason(err)}")

    # shared ---------------------------------------------------------------------

    @contextmanager
    def transaction(self, action: str = "write", changes: bool = True) -> Iterator[Any]:
        """One transaction; a driver error in it is a LedgerError saying ``action`` failed."""
        with self.failing(action), self._begin(changes) as cur:
            yield cur

    def ensure_schema(self) -> None:
        """Create the tables if they are missing, and learn the ledger's hash recipe
        (a new ledger is marked with the current one; appends keep the ledger's own)."""
        with self.transaction("create the ledger tables") as cur:
            self._lock_ledger(cur)  # processes opening one database at once take turns
            for statement in create_statements(CURRENT_RECIPE.number):
                cur.execute(statement)
        try:  # a role without rights on ledger_meta may still open (and verify) the ledger
            with self.transaction("read the ledger's recipe marker", changes=False) as cur:
                self.recipe = marked_recipe(read_marker(cur)) or CURRENT_RECIPE
        except LedgerError:
            self.recipe = CURRENT_RECIPE

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement and fetch every row it returns."""
        with self.transaction(running(sql), changes=not is_read_only(sql)) as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()

    def append(self, batch: list[Row]) -> list[Row]:
        """Chain, hash and insert a batch of event rows in one transaction."""
        with self.transaction(appending(batch)) as cur:
            self._lock_ledger(cur)
            chained, _ = self._chain_and_insert(cur, batch)
        return chained

    def _chain_and_insert(self, cur: Any, batch: list[Row], careful: bool = True
                          ) -> tuple[list[Row], dict[str, str]]:
        """Chain the batch from the stored positions, insert it, and update the records;
        returns the chained rows and the runs' heads after them."""
        next_seq, heads = self._positions(cur, batch)
        chained = chain_rows(batch, next_seq, heads, self.recipe)
        self._insert_rows(cur, chained)
        self._record_runs(cur, chained, careful)
        return chained, heads

    def _positions(self, cur: Any, batch: list[Row]) -> tuple[int, dict[str, str]]:
        """The ledger's next ``seq`` and the head hash of each continuing run, from SQL."""
        cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM ledger_entries")
        next_seq = cur.fetchall()[0][0]
        return next_seq, self._heads(cur, continuing(batch))

    def import_run(self, entries: list[Row], run: Row | None) -> None:
        """Insert an exported run exactly as it was stored (no re-chaining)."""
        rows = [{n: _typed(n, e[n]) for n in ENTRY_NAMES} for e in entries]
        seqs = [r["seq"] for r in rows]
        run_id = rows[0]["run_id"]
        with self.transaction(f"import run {run_id}") as cur:
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


# --- the run records ------------------------------------------------------------------

_RUN_FIELDS_SQL = ("run_id, workflow, task, status, started_at, ended_at, entry_count, "
                   "head_hash, policy")


def _record_values(start: Row, last: Row) -> list[Any]:
    """A new run's record as of ``last``, then its status again (for the upsert)."""
    fields = start.get(RUN_FIELDS, {})
    status, ended_at = _ending(last)
    return [start["run_id"], fields.get("workflow"), fields.get("task"), status,
            start["ts"], ended_at, last["run_seq"], last["hash"], fields.get("policy"), status]


def _update_values(last: Row) -> list[Any]:
    status, ended_at = _ending(last)
    return [last["run_id"], last["run_seq"], last["hash"], status, ended_at]


def _ending(last: Row) -> tuple[str | None, str | None]:
    """Status and end time when ``last`` ends its run, else (None, None)."""
    if last["event_type"] != EventType.RUN_COMPLETE.value:
        return None, None
    return last.get(RUN_FIELDS, {}).get("status"), last["ts"]


_RUN_ROW = "(?, ?, ?, coalesce(?, 'running'), ?, ?, CAST(? AS BIGINT), ?, ?)"

_UPSERT_RUN = (
    f"INSERT INTO ledger_runs ({_RUN_FIELDS_SQL}) VALUES {_RUN_ROW} "
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
    return f"INSERT INTO ledger_runs ({_RUN_FIELDS_SQL}) VALUES {', '.join([_RUN_ROW] * count)}"


def _update_runs_sql(count: int) -> str:
    """One statement updating ``count`` records from (run_id, count, head, status, end)."""
    rows = ", ".join(["(?, CAST(? AS BIGINT), ?, ?, ?)"] * count)
    return ("UPDATE ledger_runs SET entry_count = v.entry_count, head_hash = v.head_hash, "
            "status = coalesce(v.status, ledger_runs.status), "
            "ended_at = coalesce(v.ended_at, ledger_runs.ended_at) "
            f"FROM (VALUES {rows}) AS v(run_id, entry_count, head_hash, status, ended_at) "
            "WHERE ledger_runs.run_id = v.run_id")


def continuing(batch: list[Row]) -> set[str]:
    """Runs whose first entry in the batch links to a stored head (is not their first)."""
    first: dict[str, int] = {}
    for row in batch:
        first.setdefault(row["run_id"], row["run_seq"])
    return {run for run, run_seq in first.items() if run_seq > 1}


def _typed(name: str, value: Any) -> Any:
    """Exported text back to the stored type (BIGINT columns need ints)."""
    return int(value) if value is not None and name in _BIGINT_COLUMNS else value


_BIGINT_COLUMNS = frozenset(n for n, kind in ENTRY_COLUMNS if kind.startswith("BIGINT"))


# --- SQL and messages -----------------------------------------------------------------

_READING = re.compile(r"(?:\s*--[^\n]*\n)*\s*(select|from|with|show|describe|explain)\b",
                      re.IGNORECASE)
_CHANGING = re.compile(r"\b(insert|update|delete|merge|drop|alter|truncate|create|copy)\b",
                       re.IGNORECASE)


def is_read_only(sql: str) -> bool:
    """Whether every statement in ``sql`` only reads. Errs towards "it writes": that
    answer merely refuses the query under immutable audit, or drops a cache."""
    statements = [s for s in sql.split(";") if s.strip()]
    return all(_READING.match(s) and not _CHANGING.search(s) for s in statements)


def running(sql: str) -> str:
    """The action of running ``sql``, for an error message (long statements cut short)."""
    text = " ".join(sql.split())
    shown = text if len(text) <= SQL_SHOWN else text[:SQL_SHOWN - 3] + "..."
    return f"run the query {shown!r}"


def appending(batch: list[Row]) -> str:
    """The action of appending ``batch``, for an error message."""
    return f"append {plural(len(batch), 'entry', 'entries')}"


def reason(err: BaseException) -> str:
    """The first line of a driver's message (the rest, often the SQL, stays in the cause)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
