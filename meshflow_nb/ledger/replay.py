"""`ReplayLedger`: the audit ledger a learner opens, verifies, exports and queries.

    ledger = ReplayLedger("production.db")        # or a postgresql:// URI
    ledger.attach(workflow)                        # every event of every run is recorded
    result = workflow.run(task)
    ledger.verify_chain(result.run_id)             # VerificationResult, truthy when intact
    ledger.to_dataframe(result.run_id)             # pandas
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd

from ..events import MeshEvent, short_text
from .anchor import Anchor, new_anchor, new_ledger_anchor
from .canonical import LEGACY_RECIPE, Recipe, marked_recipe
from .checkpoint import Checkpoint, after_full_check, latest
from .errors import ImmutableLedgerError, LedgerError
from .forensics import ledger_head, recipe_check
from .incremental import since_checkpoint
from .location import default_location, redacted_location
from .rows import row_event
from .schema import ENTRY_COLUMNS, set_marker
from .stores import Store, is_read_only, open_store
from .verify import VerificationResult, verify
from .writer import Durability, LedgerWriter, close_all_writers


class _HasLedger(Protocol):
    ledger: Any


Attachable = TypeVar("Attachable", bound=_HasLedger)
"""A workflow (anything with a ``ledger`` attribute): the ledger records its runs."""

EXPORT_FORMAT = "meshflow-ledger-run"

_stores: dict[str, Store] = {}
_writers: dict[tuple[int, Durability], LedgerWriter] = {}
_stores_lock = threading.Lock()


class ReplayLedger:
    """The persisted event stream of every run, hash-chained per run."""

    def __init__(self, location: str | os.PathLike | None = None, *,
                 durability: Durability | str = Durability.STEP,
                 immutable: bool = False) -> None:
        self.location = str(location or default_location())
        self.durability = Durability(durability)
        self.store = _shared_store(self.location)
        self.immutable = immutable
        if immutable:
            self.store.make_immutable()
        self._writer: LedgerWriter | None = None
        self._sealed_damaged = False  # sealed while failing verification: no appends

    # --- recording ---------------------------------------------------------------

    @property
    def writer(self) -> LedgerWriter:
        if self._writer is None:
            self._writer = _shared_writer(self.store, self.durability)
        return self._writer

    def record(self, event: MeshEvent) -> None:
        """Append one event; raises a `LedgerError` when it cannot be accepted.

        `LedgerValueError`: a value no column can store (nothing is queued);
        `LedgerGapError`: the run lost an earlier entry, so this one would leave a hole;
        `LedgerWriteError`: at a commit barrier, the entries could not be committed.
        A workflow this ledger is attached to records through here; a run under
        immutable audit has sealed the ledger (`seal`) before its first entry.
        """
        if self._sealed_damaged:
            raise ImmutableLedgerError(
                f"immutable_audit: not appending to {self.store.where}, which fails "
                "verification (verify_chain() says where)")
        self.writer(event)

    def seal(self) -> VerificationResult:
        """Immutable audit: no writes through `sql`, PostgreSQL triggers on, and no more
        appends at all if the ledger already fails verification. Returns the check
        (`verify_since_checkpoint`: a full one the first time, then what is new)."""
        self.immutable = True
        self.store.make_immutable()
        check = self.verify_since_checkpoint()
        self._sealed_damaged = not check.valid
        return check

    def attach(self, workflow: Attachable) -> Attachable:
        """Record every event of every later run of ``workflow``; returns it."""
        workflow.ledger = self
        return workflow

    def flush(self, timeout: float | None = 30.0, run_id: str | None = None) -> None:
        """Wait until every recorded event is committed, or given up by the writer.

        Raises `LedgerWriteError` when ``run_id`` has lost entries (refused, or given up
        after bounded retries), every time; without a run, when entries were given up
        that nobody has been told of yet (once). It never waits on a writer that gave up.
        """
        if self._writer is not None:
            self._writer.flush(timeout, run_id)

    # --- reading -----------------------------------------------------------------

    def to_dataframe(self, run_id: str | None = None) -> pd.DataFrame:
        """The entries (of one run, or all) in ledger order, one row per event."""
        where, params = _where_run(run_id)
        return self.store.query(f"SELECT * FROM ledger_entries {where} ORDER BY seq", params)

    def runs(self) -> pd.DataFrame:
        """One row per run: workflow, status, times, entry count, head hash, policy."""
        return self.store.query("SELECT * FROM ledger_runs ORDER BY started_at, run_id")

    def sql(self, query: str) -> pd.DataFrame:
        """Run SQL against the ledger and get a DataFrame (read-only when immutable)."""
        if self.immutable and not is_read_only(query):
            raise ImmutableLedgerError(
                "immutable_audit is on: the ledger offers no way to change or delete "
                "entries (only reading statements: SELECT, FROM, WITH, SHOW, DESCRIBE, EXPLAIN)")
        return self.store.query(query)

    def events(self, run_id: str) -> list[MeshEvent]:
        """The run's events, read back from the ledger in order; a row that cannot be
        read back (changed behind the ledger's back) is a LedgerError naming it."""
        self.flush()
        frame = self.store.query("SELECT * FROM ledger_entries WHERE run_id = ? "
                                 "ORDER BY run_seq", [run_id])
        if frame.empty:
            raise self._no_run(run_id)
        return [self._event(row) for row in frame.to_dict("records")]

    def _event(self, row: dict[str, Any]) -> MeshEvent:
        """One stored row as its event, or a LedgerError saying which row is unreadable."""
        try:
            return row_event(row)
        except (ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
            raise LedgerError(
                f"cannot read back the entry at seq {row['seq']} of run {row['run_id']} from "
                f"{self.store.where}: {_unreadable(row, err)}; the row was changed after it "
                "was written (verify_chain() says how)") from err

    # --- checking ----------------------------------------------------------------

    def verify_chain(self, run_id: str | None = None,
                     anchor: Anchor | Iterable[Anchor] | str | os.PathLike | None = None,
                     ) -> VerificationResult:
        """Recompute every hash and link; name each damaged entry and the kind of damage.

        ``anchor``: an `Anchor`, several, or a file written by `Anchor.save`; needed to
        detect truncation and rewrites that recompute the whole chain. A ledger anchor
        (``anchor()`` without a run) is compared when the whole ledger is checked. A
        ``run_id`` the ledger has neither entries nor a record of is a LedgerError.
        """
        self.flush()
        if run_id and not self._has_run(run_id):
            raise self._no_run(run_id)
        check = verify(self.store, run_id, _anchors(anchor))
        if run_id is None:
            self.store.found_damaged = not check.valid
        return check

    def verify_since_checkpoint(self) -> VerificationResult:
        """The pre-run check: only the entries after the verified checkpoint, and that
        the checkpoint still matches the rows it names; a full `verify_chain` when there
        is no checkpoint yet or anything is amiss. An intact ledger gets a new checkpoint
        (docs/ledger.md: what it costs, and what only a full check can find)."""
        self.flush()
        with self.store.lease():
            check = since_checkpoint(self.store)
            if check is not None:
                return check
            check = verify(self.store)
            self.store.found_damaged = not check.valid
            if check.valid:
                after_full_check(self.store, self._recipe().number)
        return check

    def checkpoint(self) -> Checkpoint | None:
        """The newest stored verified checkpoint (None before the first run under audit)."""
        self.flush()
        found = latest(self.store, 1)
        return found[0] if found else None

    def anchor(self, run_id: str | None = None) -> Anchor:
        """The run's current length and head hash, to keep somewhere else; without a run,
        the whole ledger's head (last seq, entries, runs and their digest)."""
        self.flush()
        if run_id is None:
            return self._ledger_anchor()
        rows = self.store.rows("SELECT run_seq, hash, event_type FROM ledger_entries "
                               "WHERE run_id = ? ORDER BY run_seq DESC LIMIT 1", [run_id])
        if not rows:
            raise self._no_run(run_id)
        length, head, last_type = rows[0]
        return new_anchor(run_id, int(length), head, last_type == "run_complete")

    def _ledger_anchor(self) -> Anchor:
        """The ledger anchor: its head now, read in one lease of the database."""
        with self.store.lease():
            head = ledger_head(self.store)
        if not head.entries:
            raise LedgerError(f"{self.store.where} has no entries yet: there is nothing to "
                              "anchor")
        return new_ledger_anchor(head.last_seq, head.entries, head.runs, head.digest)

    def _has_run(self, run_id: str) -> bool:
        """Whether the ledger holds entries of the run or a record of it."""
        rows = self.store.rows(
            "SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE run_id = ?) "
            "OR EXISTS (SELECT 1 FROM ledger_runs WHERE run_id = ?)", [run_id, run_id])
        return bool(rows[0][0])

    # --- moving runs -------------------------------------------------------------

    def export_run(self, run_id: str) -> str:
        """The run's record and entries as JSON, exactly as stored (for archives)."""
        self.flush()
        text_cols = ", ".join(f"CAST({n} AS VARCHAR) AS {n}" for n, _ in ENTRY_COLUMNS)
        entries = self.store.query(f"SELECT {text_cols} FROM ledger_entries AS e "
                                   "WHERE run_id = ? ORDER BY e.seq", [run_id])
        if entries.empty:
            raise self._no_run(run_id)
        run = self.store.query("SELECT * FROM ledger_runs WHERE run_id = ?", [run_id])
        return json.dumps({
            "format": EXPORT_FORMAT, "version": 1, "run_id": run_id,
            "recipe": self._recipe(run_id).number,
            "run": _records(run)[0] if not run.empty else None,
            "entries": _records(entries),
        }, ensure_ascii=False, indent=1)

    def import_run(self, exported: str) -> str:
        """Add an exported run to this ledger unchanged; returns its run id.

        The entries keep the hashes of the recipe they were written in (an export without
        ``recipe`` predates recipe markers: recipe 1). An empty ledger takes that recipe
        on; a ledger with entries must already use it.
        """
        data = json.loads(exported)
        if data.get("format") != EXPORT_FORMAT:
            raise LedgerError("this is not a meshflow_nb run export "
                              f"(expected format {EXPORT_FORMAT!r})")
        recipe, ours = self._import_recipe(data)
        self.store.import_run(data["entries"], data.get("run"))
        if recipe is not ours:
            with self.store.transaction("mark the ledger's hash recipe") as cur:
                set_marker(cur, recipe.number)
            self.store.recipe = recipe
        return data["run_id"]

    def _import_recipe(self, data: dict[str, Any]) -> tuple[Recipe, Recipe]:
        """The recipe an export was hashed with, if this ledger (whose recipe comes
        second) can take it in."""
        recipe = marked_recipe(str(data.get("recipe", LEGACY_RECIPE.number)))
        if recipe is None:
            raise LedgerError(f"cannot import run {data.get('run_id')}: its export names hash "
                              f"recipe {data.get('recipe')!r}, which this version does not know")
        ours = self._recipe()
        if recipe is not ours and self.store.rows("SELECT count(*) FROM ledger_entries")[0][0]:
            raise LedgerError(f"cannot import run {data.get('run_id')}: it is hashed with recipe "
                              f"{recipe.number} and {self.store.where} with recipe "
                              f"{ours.number}; import it into an empty ledger")
        return recipe, ours

    def _recipe(self, run_id: str | None = None) -> Recipe:
        """The recipe the ledger's (or the run's) entries are hashed with: the one its
        marker names, unless its first entries show another (`forensics.recipe_check`)."""
        where, params = _where_run(run_id)
        with self.store.lease():
            return recipe_check(self.store, where, params)[0]

    def close(self) -> None:
        """Wait for what was recorded to be committed (raising as `flush` does)."""
        self.flush()

    def _no_run(self, run_id: str) -> LedgerError:
        return LedgerError(f"no run {run_id!r} in {self.store.where}")

    def __repr__(self) -> str:
        return (f"<ReplayLedger {self.store.dialect} {redacted_location(self.location)} "
                f"durability={self.durability}>")


@atexit.register
def _close_at_exit() -> None:
    """At interpreter exit: commit every queued event, then release the databases."""
    close_all_writers()
    for store in list(_stores.values()):
        store.close()


def _shared_writer(store: Store, durability: Durability) -> LedgerWriter:
    """One writer per database and mode: concurrent first events must not race to
    create two writers, whose queues would commit a run's entries out of order."""
    with _stores_lock:
        key = (id(store), durability)
        if key not in _writers:
            _writers[key] = LedgerWriter(store, durability)
        return _writers[key]


def _shared_store(location: str) -> Store:
    """One store per database per process, shared by every ledger object that opens it."""
    key = location if "://" in location else str(Path(location).resolve())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = open_store(location)
        return _stores[key]


def _where_run(run_id: str | None) -> tuple[str, list[Any]]:
    return ("WHERE run_id = ?", [run_id]) if run_id else ("", [])


def _unreadable(row: dict[str, Any], err: Exception) -> str:
    """What in a stored row cannot be read back as an event."""
    for column in ("output", "payload"):
        text = row[column]
        if text is not None and not pd.isna(text):
            try:
                json.loads(text)
            except ValueError:
                return (f"its {column} '{short_text(text, 40)}' is not the JSON text the "
                        "ledger writes")
    return f"it does not describe an event ({err})"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()}
            for row in frame.astype(object).to_dict("records")]


def _anchors(anchor: Anchor | Iterable[Anchor] | str | os.PathLike | None) -> list[Anchor]:
    if anchor is None:
        return []
    if isinstance(anchor, Anchor):
        return [anchor]
    if isinstance(anchor, (str, os.PathLike)):
        return Anchor.load(anchor)
    return list(anchor)

