"""The verified checkpoint: how far the ledger has been checked, kept tamper-evident.

A checkpoint says: up to ``last_seq`` the ledger held ``entries`` entries (from
``first_seq``, without a hole) and ``runs`` run records, the entry at ``last_seq`` had
hash ``head_hash``, and these runs were still open (their last position and hash). Its
``digest`` chains every verified entry's hash onto the previous checkpoint's digest (the
first one is the ledger digest of a ledger anchor, `forensics.ledger_head`), and its own
``hash`` covers all of that and the previous checkpoint's hash: checkpoints form a
chain of their own, in the table ``ledger_checkpoints``, which only ever grows (under
immutable audit PostgreSQL refuses to change or delete its rows, like the entries').

The process also keeps the last point it verified (`Verified`, on the store): a stored
checkpoint that no longer equals the one this process wrote or read is found before the
next append. docs/ledger.md explains what a checkpoint costs and guarantees.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..events import plural, utc_now
from .canonical import SEPARATOR
from .errors import LedgerError
from .forensics import Damage, Finding, ledger_head
from .schema import CHECKPOINT_COLUMNS, CHECKPOINTS, CREATE_CHECKPOINTS, GENESIS
from .stores import Store

NAMES = ", ".join(n for n, _ in CHECKPOINT_COLUMNS)

STORE_EVERY = 500
"""Entries verified since the stored checkpoint before a new one is written (a commit);
in between, the process's own `Verified` point moves on in memory."""
OPEN_LIMIT = 256
"""Open runs a checkpoint lists; a run beyond it that continues sends the next pre-run
check to a full one (it cannot link the run's next entry without reading back)."""


@dataclass(frozen=True)
class Checkpoint:
    """The ledger as of its last verification (see the module); ``hash`` seals it."""

    last_seq: int
    first_seq: int
    entries: int
    runs: int
    head_hash: str
    recipe: int
    open_runs: str
    """JSON text: ``{run_id: [last run_seq, last hash]}`` of the runs still running."""
    digest: str
    prev_hash: str = GENESIS
    taken_at: str = ""
    hash: str = ""

    def text(self) -> str:
        """What ``hash`` is the SHA-256 of: every other field, joined by U+001F."""
        return SEPARATOR.join(str(getattr(self, f.name)) for f in fields(self)
                              if f.name != "hash")

    def sealed(self) -> Checkpoint:
        """This checkpoint with its ``hash`` computed."""
        return replace(self, hash=hashlib.sha256(self.text().encode("utf-8")).hexdigest())

    @property
    def intact(self) -> bool:
        """Whether ``hash`` still is the hash of the other fields."""
        return self.sealed().hash == self.hash

    def heads(self) -> dict[str, tuple[int, str]]:
        """The open runs: run id -> (last run_seq, last hash)."""
        return {run: (int(pos), head) for run, (pos, head) in json.loads(self.open_runs).items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verified:
    """What this process last verified of a ledger: ``point`` (stored or not yet), the
    latest ``stored`` checkpoint it extends, and the entry hashes verified since it."""

    point: Checkpoint
    stored: Checkpoint | None
    tail: list[str] = field(default_factory=list)


def open_runs(heads: dict[str, tuple[int, str]]) -> str:
    """The JSON text of a checkpoint's open runs (the newest `OPEN_LIMIT`, sorted)."""
    kept = dict(list(heads.items())[-OPEN_LIMIT:])
    return json.dumps({run: list(kept[run]) for run in sorted(kept)}, separators=(",", ":"))


def chained_digest(previous: str, hashes: list[str]) -> str:
    """The next checkpoint's digest: the previous digest, then each new entry's hash."""
    digest = hashlib.sha256(previous.encode("ascii"))
    for text in hashes:
        digest.update(text.encode("ascii"))
    return digest.hexdigest()


# --- storing and reading --------------------------------------------------------------


def latest(store: Store, count: int = 2) -> list[Checkpoint] | None:
    """The newest stored checkpoints, newest first; None when the table does not exist."""
    try:
        rows = store.rows(f"SELECT {NAMES} FROM {CHECKPOINTS} ORDER BY last_seq DESC LIMIT {count}")
    except LedgerError:
        return None
    return [_checkpoint(row) for row in rows]


def write(store: Store, verified: Verified) -> bool:
    """Store ``verified.point`` as the newest checkpoint; False if the store refused it
    (a role without the right to create the table: the next check is a full one)."""
    prev = verified.stored
    digest = (chained_digest(prev.digest, verified.tail) if prev is not None
              else verified.point.digest)
    point = replace(verified.point, digest=digest, prev_hash=prev.hash if prev else GENESIS,
                    taken_at=utc_now()).sealed()
    try:
        with store.transaction("store the ledger checkpoint") as cur:
            cur.execute(CREATE_CHECKPOINTS)
            cur.execute(f"INSERT INTO {CHECKPOINTS} ({NAMES}) VALUES "
                        f"({', '.join('?' for _ in CHECKPOINT_COLUMNS)})",
                        [getattr(point, n) for n, _ in CHECKPOINT_COLUMNS])
    except LedgerError:
        store.verified = None
        return False
    store.verified = Verified(point, point)
    return True


def after_full_check(store: Store, recipe: int) -> None:
    """Store a checkpoint at the ledger's head after a full check found it intact.

    Its digest chains from the newest stored checkpoint (which the full check found to
    hold), or is the ledger digest when there is none yet.
    """
    count, low, top, runs = store.rows(
        "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), "
        "(SELECT count(*) FROM ledger_runs) FROM ledger_entries")[0]
    if not count:
        store.verified = None  # a new (or emptied) ledger: nothing to vouch for yet
        return
    stored = (latest(store, 1) or [None])[0]
    if stored is not None and stored.last_seq == top:
        store.verified = Verified(stored, stored)
        return
    heads = {run: (int(pos), head) for run, pos, head in store.rows(
        "SELECT run_id, entry_count, head_hash FROM ledger_runs WHERE status = 'running' "
        "ORDER BY started_at, run_id")}
    head = store.rows("SELECT hash FROM ledger_entries WHERE seq = ?", [top])[0][0]
    tail = [] if stored is None else [h for (h,) in store.rows(
        "SELECT hash FROM ledger_entries WHERE seq > ? ORDER BY seq", [stored.last_seq])]
    digest = ledger_head(store).digest if stored is None else ""
    point = Checkpoint(int(top), int(low), int(count), int(runs), head, recipe,
                       open_runs(heads), digest)
    write(store, Verified(point, stored, tail))


# --- what a full check says of the checkpoint ------------------------------------------


def checkpoint_problems(store: Store) -> list[Finding]:
    """The newest stored checkpoint against the ledger and this process's memory of it:
    sealed, chained to the one before, naming rows that are still there."""
    found = latest(store)
    memory = store.verified.stored if store.verified is not None else None
    if not found:
        if memory is None or not store.rows("SELECT count(*) FROM ledger_entries")[0][0]:
            return []  # no checkpoint, or a new ledger where the old file was
        return [_finding(memory, "the ledger's checkpoints were removed (this process "
                                 f"wrote or read the one at seq {memory.last_seq})")]
    newest = found[0]
    why = _unsound(newest, found[1] if len(found) > 1 else None)
    if why is None and memory is not None and newest != memory:
        why = _unlike_memory(store, memory, newest)
    if why is None:
        why = _unlike_rows(store, newest)
    return [] if why is None else [_finding(newest, why)]


def _unsound(newest: Checkpoint, before: Checkpoint | None) -> str | None:
    """Why the newest checkpoint cannot be trusted on its own, if it cannot."""
    if not newest.intact:
        return "its fields were changed after it was written (its hash no longer matches)"
    if before is not None and newest.prev_hash != before.hash:
        return (f"it does not chain to the checkpoint before it (seq {before.last_seq}): "
                "checkpoints were replaced or inserted")
    return None


def _unlike_memory(store: Store, memory: Checkpoint, newest: Checkpoint) -> str | None:
    """A newest checkpoint other than this process's must come later and hold its own."""
    if newest.last_seq > memory.last_seq:
        rows = store.rows(f"SELECT hash FROM {CHECKPOINTS} WHERE last_seq = ?", [memory.last_seq])
        if rows and rows[0][0] == memory.hash:
            return None
    return (f"it is not the checkpoint this process stored or read at seq {memory.last_seq}: "
            "the checkpoint was changed, removed or replaced")


def _unlike_rows(store: Store, point: Checkpoint) -> str | None:
    """Whether the entries it names still are what it recorded (count and head)."""
    count, low = store.rows("SELECT count(*), coalesce(min(seq), 0) FROM ledger_entries "
                            "WHERE seq <= ?", [point.last_seq])[0]
    head = store.rows("SELECT hash FROM ledger_entries WHERE seq = ?", [point.last_seq])
    if (int(count), int(low)) != (point.entries, point.first_seq):
        return (f"it recorded {plural(point.entries, 'entry', 'entries')} from seq "
                f"{point.first_seq} up to seq {point.last_seq}, and the ledger now has "
                f"{int(count)} from seq {int(low)}: entries were removed or inserted")
    if not head or head[0][0] != point.head_hash:
        return (f"the entry at seq {point.last_seq} no longer has the hash it recorded: "
                "entries were changed or replaced")
    return None


def _finding(point: Checkpoint, why: str) -> Finding:
    return Finding(None, None, Damage.CHECKPOINT,
                   f"the verified checkpoint at seq {point.last_seq} no longer holds: {why}")


def _checkpoint(row: tuple) -> Checkpoint:
    """A stored row as a checkpoint (BIGINT columns as int, the rest as text)."""
    values = {n: (int(v) if k.startswith("BIGINT") else str(v))
              for (n, k), v in zip(CHECKPOINT_COLUMNS, row, strict=True)}
    return Checkpoint(**values)
