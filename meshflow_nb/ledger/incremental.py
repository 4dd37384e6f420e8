"""The pre-run check: verify only what came after the verified checkpoint.

Three statements in one transaction, whatever the ledger's size: the checkpoint's head
entry and every entry after it, the records of their runs (key lookups), then the
ledger's counts, its recipe marker and the newest stored checkpoint's position and hash.
Each new entry's hash is recomputed and its link checked against its run's previous entry
(from the checkpoint's open runs, or from an earlier new entry); the positions must
continue the checkpoint's without a hole, the counts must be the checkpoint's plus what
was added, and the records of the runs that moved must agree with their entries. Like the
fast path of `verify`, it only ever *clears*: anything it cannot clear goes to a full
check (`verify.verify`), which names the damage. docs/ledger-forensics.md says what this
check guarantees and what it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .canonical import RECIPES, Recipe
from .checkpoint import (
    STORE_EVERY,
    Checkpoint,
    Verified,
    latest,
    open_runs,
    write,
)
from .errors import LedgerError
from .forensics import END_EVENT, FIELDS
from .schema import CHECKPOINTS, GENESIS, RECIPE_KEY
from .stores import Store
from .verify import VerificationResult

_NEW_ENTRIES = "SELECT * FROM ledger_entries WHERE seq >= ? ORDER BY seq"
"""The checkpoint's head entry and every entry after it (a range of the key: no scan)."""
_RECORD = "SELECT run_id, status, entry_count, head_hash FROM ledger_runs WHERE run_id = ?"
"""One run's record (a key lookup; a join would read every record)."""
_STATE = (
    "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), "
    "(SELECT count(*) FROM ledger_runs), "
    f"(SELECT value FROM ledger_meta WHERE key = '{RECIPE_KEY}'), "
    f"(SELECT CAST(last_seq AS VARCHAR) || ' ' || hash FROM {CHECKPOINTS} "
    "ORDER BY last_seq DESC LIMIT 1) FROM ledger_entries")
"""The ledger's counts, its recipe marker, and the newest stored checkpoint's seq and hash."""


@dataclass
class _Entry:
    """One entry after the checkpoint: its stored columns as text, and its run's record."""

    row: dict[str, str | None]
    status: str | None = None
    entry_count: int | None = None
    head_hash: str | None = None

    @property
    def seq(self) -> int:
        return int(self.row["seq"])

    @property
    def run_seq(self) -> int:
        return int(self.row["run_seq"])

    @property
    def run_id(self) -> str:
        return self.row["run_id"]

    @property
    def hash(self) -> str:
        return self.row["hash"]

    @property
    def prev_hash(self) -> str:
        return self.row["prev_hash"]

    @classmethod
    def of(cls, found: tuple) -> _Entry:
        """A fetched row; decimals as the fixed-point text they are stored as."""
        row = {name: format(value, "f") if isinstance(value, Decimal) else value
               for name, value in zip(FIELDS, found, strict=False)}
        return cls(row)


def since_checkpoint(store: Store) -> VerificationResult | None:
    """The check of what came after the checkpoint, or None when it cannot clear the
    ledger (no usable checkpoint, or anything amiss): a full check must decide."""
    try:
        return _since(store)
    except LedgerError:  # a table gone or unreadable: the full check says what is wrong
        return None


def _since(store: Store) -> VerificationResult | None:
    """`since_checkpoint`, letting a failed statement raise."""
    if store.found_damaged:
        return None
    verified = store.verified if store.verified is not None else _from_table(store)
    if verified is None:
        return None
    point = verified.point
    recipe = RECIPES.get(point.recipe)
    if recipe is None:
        return None
    with store.transaction("check the entries after the checkpoint", changes=False) as cur:
        cur.execute(_NEW_ENTRIES, [point.last_seq])  # one snapshot for every statement
        rows = [_Entry.of(found) for found in cur.fetchall()]
        _add_records(cur, rows[1:])
        cur.execute(_STATE)
        count, low, top, runs, marker, newest = cur.fetchall()[0]
    if (not rows or rows[0].seq != point.last_seq or rows[0].hash != point.head_hash
            or not recipe.verifies(rows[0].row)
            or newest != _seal_of(verified.stored)
            or (str(marker) != str(point.recipe) and not (marker is None and point.recipe == 1))):
        return None
    moved = _advance(point, rows[1:], recipe)
    if moved is None:
        return None
    heads, started = moved
    new = rows[1:]
    if (int(count), int(low), int(top), int(runs)) != (
            point.entries + len(new), point.first_seq, new[-1].seq if new else point.last_seq,
            point.runs + started):
        return None
    _move_on(store, verified, rows[-1], len(new), started, heads, [e.hash for e in new])
    touched = {e.run_id for e in new}
    return VerificationResult(True, len(new), len(touched),
                              incomplete_runs=sorted(heads), since_seq=point.last_seq)


def _add_records(cur: Any, new: list[_Entry]) -> None:
    """Give each new entry its run's record, read in one statement of key lookups."""
    runs = list(dict.fromkeys(entry.run_id for entry in new))
    if not runs:
        return
    cur.execute(" UNION ALL ".join([_RECORD] * len(runs)), runs)
    records = {run: rest for run, *rest in cur.fetchall()}
    for entry in new:
        entry.status, entry.entry_count, entry.head_hash = records.get(entry.run_id,
                                                                       (None, None, None))


def _seal_of(stored: Checkpoint | None) -> str | None:
    """What `_STATE` reads of the newest stored checkpoint, if it is ``stored``."""
    return f"{stored.last_seq} {stored.hash}" if stored is not None else None


def _from_table(store: Store) -> Verified | None:
    """The newest stored checkpoint as this process's starting point, if it is sound."""
    found = latest(store)
    if not found:
        return None
    newest = found[0]
    if not newest.intact or (len(found) > 1 and newest.prev_hash != found[1].hash):
        return None
    return Verified(newest, newest)


def _advance(point: Checkpoint, new: list[_Entry], recipe: Recipe
             ) -> tuple[dict[str, tuple[int, str]], int] | None:
    """The open runs after ``new`` and how many runs it starts, if every new entry is
    intact, continues the ledger's sequence and links to its run's previous entry."""
    heads = point.heads()
    done: set[str] = set()
    started = 0
    last: dict[str, _Entry] = {}
    for offset, entry in enumerate(new, start=1):
        if entry.seq != point.last_seq + offset or not recipe.verifies(entry.row):
            return None
        run = entry.run_id
        if entry.run_seq == 1:
            if run in heads or run in done or entry.prev_hash != GENESIS:
                return None
            started += 1
        else:
            before = heads.get(run)
            if before is None or before != (entry.run_seq - 1, entry.prev_hash):
                return None
        heads[run] = (entry.run_seq, entry.hash)
        if entry.row["event_type"] == END_EVENT:
            del heads[run]
            done.add(run)
        last[run] = entry
    if not all(_record_agrees(entry, run in done) for run, entry in last.items()):
        return None
    return heads, started


def _record_agrees(last: _Entry, ended: bool) -> bool:
    """Whether a moved run's record shows its last entry (and whether it has ended)."""
    return (last.entry_count is not None and int(last.entry_count) == last.run_seq
            and last.head_hash == last.hash
            and (last.status != "running") == ended)


def _move_on(store: Store, verified: Verified, head: _Entry, added: int, started: int,
             heads: dict[str, tuple[int, str]], hashes: list[str]) -> None:
    """This process's verified point moves to ``head``; stored every `STORE_EVERY`."""
    point = verified.point
    moved = replace(point, last_seq=head.seq, entries=point.entries + added,
                    runs=point.runs + started, head_hash=head.hash, open_runs=open_runs(heads),
                    hash="")
    store.verified = verified
    if not added:
        return
    verified.point, verified.tail = moved, [*verified.tail, *hashes]
    if len(verified.tail) >= STORE_EVERY:
        write(store, verified)
