"""Forensics: once verification has found damage, say what happened and where.

Only damaged runs are fetched here, so this code favours clear sentences over speed.
Each `Finding` names the entry's ledger seq (or the run), a kind from `Damage`, and a
sentence a learner can read. docs/ledger-forensics.md walks through every kind.

How a damaged run is read:

1. Every entry whose hash fails is tried at nearby positions (its ``seq`` and ``run_seq``
   shifted a little, or exchanged with another damaged entry). An entry that verifies
   somewhere else was *moved* (renumbered or reordered), not edited: its contents are
   intact. One that verifies nowhere was *edited*.
2. The run is then followed in its original order (the positions found in step 1),
   through the ``prev_hash`` links: a missing position is a deletion, two entries at
   one position mean one was inserted (the genuine one is the one the chain continues
   from), and a link to a hash that no entry has means the entry before was changed and
   re-hashed.
3. The end of the run is compared with its record in ``ledger_runs``.

Beside damaged runs: each run's record is compared with the entries it copies
(`run_record_problems`), holes in the ledger's ``seq`` are explained (`ledger_gaps`), the
recipe marker is tried on the first entries (`recipe_check`), and anchors are compared
(`against_anchor` for a run, `against_ledger_anchors` for the whole ledger).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..events import plural, short_text
from .anchor import Anchor
from .canonical import CURRENT_RECIPE, HASHED_COLUMNS, RECIPES, Recipe, ledger_digest, marked_recipe
from .errors import LedgerError
from .rows import to_json_text
from .schema import GENESIS, read_marker
from .stores import Store

END_EVENT = "run_complete"
"""The event that closes a run: nothing of the run may follow it."""

WINDOW = 4
"""How far (in seq and in run_seq) a damaged entry is tried away from where it sits."""

PARTNER_LIMIT = 64
"""Damaged entries further apart than this (in run_seq) are not tried as swap partners."""


class Damage:
    """Kinds of damage the verifier names.

    Seen from the table alone: ``edited``, ``edited_and_rehashed``, ``deleted``,
    ``inserted``, ``reordered``, ``renumbered``, ``run_record_edited``,
    ``run_record_deleted``, ``recipe_changed``, and ``run_removed`` / ``truncated``
    when they leave a hole in the ledger's ``seq`` or disagree with the run's record.
    Seen only against an anchor: ``rewritten`` (a chain recomputed to be consistent
    with itself), ``truncated`` / ``run_removed`` at the very end of the ledger with
    the run's record adjusted to match, the first run removed with its record (a
    ledger anchor), and ``unanchored``: entries written after the newest ledger anchor.
    Seen against the verified checkpoint (`checkpoint`): ``checkpoint_mismatch``, the
    checkpoint changed, removed, or naming entries that are no longer what it recorded.
    """

    EDITED = "edited"
    REHASHED = "edited_and_rehashed"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    RENUMBERED = "renumbered"
    TRUNCATED = "truncated"
    REWRITTEN = "rewritten"
    RUN_REMOVED = "run_removed"
    RECORD_EDITED = "run_record_edited"
    RECORD_DELETED = "run_record_deleted"
    RECIPE_CHANGED = "recipe_changed"
    UNANCHORED = "unanchored"
    CHECKPOINT = "checkpoint_mismatch"


@dataclass(frozen=True)
class Finding:
    """One damaged place: the entry's ledger seq (None for whole runs), kind, sentence.

    ``missing`` lists the ledger positions of removed entries that this problem
    accounts for, so that a hole in ``seq`` is explained only once.
    """

    seq: int | None
    run_id: str | None
    kind: str
    message: str
    missing: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        where = (f"seq {self.seq}" if self.seq is not None
                 else f"run {self.run_id}" if self.run_id is not None else "ledger")
        return f"{where}: {self.kind}: {self.message}"


# --- one damaged run ---------------------------------------------------------------

FIELDS = (*HASHED_COLUMNS, "hash")
"""Every stored column of an entry, in table order (what a stored row is read as)."""


@dataclass
class _Entry:
    """A stored row as text, with where it sits now and where its hash says it belongs."""

    values: dict[str, str | None]
    seq: int
    run_seq: int
    ok: bool
    recipe: Recipe
    oseq: int = 0
    orun: int = 0
    edited: bool = False
    _hash_at: Callable[[int, int], str] | None = field(default=None, compare=False, repr=False)

    @property
    def hash(self) -> str:
        return self.values["hash"] or ""

    @property
    def prev_hash(self) -> str:
        return self.values["prev_hash"] or ""

    @property
    def event_type(self) -> str:
        return self.values["event_type"] or ""

    @property
    def moved(self) -> bool:
        return (self.oseq, self.orun) != (self.seq, self.run_seq)

    def describe(self) -> str:
        node = self.values["node_id"]
        return f"{self.event_type} entry" + (f" of {node}" if node else "")

    def verifies_at(self, seq: int, run_seq: int) -> bool:
        """Whether the stored hash matches this entry's contents at another position."""
        if seq < 1 or run_seq < 1:
            return False
        if self._hash_at is None:
            self._hash_at = self.recipe.position_hasher(self.values)
        return self._hash_at(seq, run_seq) == self.hash


def classify_run(store: Store, run_id: str, bad_hashes: dict[int, str],
                 recipe: Recipe = CURRENT_RECIPE) -> list[Finding]:
    """Describe every problem of one run whose hashes or links failed verification
    (``recipe``: the one the ledger's entries are hashed with)."""
    entries = _fetch(store, "run_id = ?", [run_id], bad_hashes, recipe)
    elsewhere = [s for s, run in bad_hashes.items() if run != run_id] \
        if len(bad_hashes) <= 4 * PARTNER_LIMIT else []
    _find_positions(entries, elsewhere)
    edited = [e for e in entries if e.edited]
    if len(edited) > 1:  # perhaps moved far, many at once: try the holes in the ledger
        _find_positions(edited, _vacant(store, limit=2000, bad_hashes=bad_hashes), far=True)
    problems, paired = _reordered(store, run_id, entries, bad_hashes)
    chain = _walk(store, run_id, entries)
    renumbered = [e for e in entries if e.moved and e.seq not in paired]
    if renumbered and not any(p.kind in (Damage.INSERTED, Damage.DELETED) for p in chain):
        problems.append(_renumbered(store, run_id, renumbered))
    elif renumbered:
        chain = [_note_renumbering(p, len(renumbered)) for p in chain]
    problems += chain
    problems += _run_end(store, run_id, entries)
    return problems


def _fetch(store: Store, where: str, params: list, bad_hashes: dict[int, str],
           recipe: Recipe) -> list[_Entry]:
    """The entries ``where`` selects, as text, in run order, each knowing if its hash held."""
    # text aliases get names of their own: PostgreSQL would sort by "seq" the text
    columns = ", ".join(f"CAST(e.{c} AS VARCHAR) AS text_{c}" for c in FIELDS)
    rows = store.rows(f"SELECT {columns} FROM ledger_entries AS e WHERE {where} "
                      "ORDER BY e.run_seq, e.seq", params)
    entries = []
    for row in rows:
        values = dict(zip(FIELDS, row, strict=True))
        seq, run_seq = int(values["seq"] or 0), int(values["run_seq"] or 0)
        entries.append(_Entry(values, seq, run_seq, seq not in bad_hashes, recipe, seq,
                              run_seq))
    return entries


def _find_positions(entries: list[_Entry], seqs: Sequence[int] = (), far: bool = False
                    ) -> None:
    """Set each damaged entry's original position, or mark it edited.

    Tried in turn: the shift that worked for the entry before, small shifts of seq and
    run_seq, the places of other damaged entries, and ``seqs`` (positions elsewhere in
    the ledger). With ``far``, ``seqs`` (the ledger's holes) are tried only until one
    entry is found, and after that only the shift it revealed.
    """
    damaged = [e for e in entries if not e.ok]
    for entry in damaged:
        entry.edited = False
    window = [] if far else sorted(
        ((ds, dr) for ds in range(-WINDOW, WINDOW + 1) for dr in range(-WINDOW, WINDOW + 1)
         if ds or dr), key=lambda d: (abs(d[0]) + abs(d[1]), abs(d[1]), d))
    last_shift: tuple[int, int] | None = None
    for entry in damaged:
        tried = set()
        candidates = [] if last_shift is None else [
            (entry.seq + last_shift[0], entry.run_seq + last_shift[1])]
        candidates += [(entry.seq + ds, entry.run_seq + dr) for ds, dr in window]
        if len(damaged) <= 4 * PARTNER_LIMIT and not far:
            for other in damaged:
                if other is not entry and abs(other.run_seq - entry.run_seq) <= PARTNER_LIMIT:
                    candidates += [(other.seq, other.run_seq), (other.seq, entry.run_seq),
                                   (entry.seq, other.run_seq)]
        if last_shift is None or not far:
            candidates += [(seq, entry.run_seq) for seq in seqs]
        for position in candidates:
            if position in tried or position == (entry.seq, entry.run_seq):
                continue
            tried.add(position)
            if entry.verifies_at(*position):
                entry.oseq, entry.orun = position
                last_shift = (position[0] - entry.seq, position[1] - entry.run_seq)
                break
        else:
            entry.edited = True


def _vacant(store: Store, limit: int, low: int = 1, high: int | None = None,
            bad_hashes: dict[int, str] | None = None) -> list[int]:
    """Up to ``limit`` ledger positions between ``low`` and ``high`` that nothing holds."""
    free: list[int] = []
    for first, last in _gap_blocks(store, bad_hashes):
        first, last = max(first, low), last if high is None else min(last, high)
        free += range(first, min(last, first + limit - len(free) - 1) + 1)
        if len(free) >= limit:
            break
    return free


def _reordered(store: Store, run_id: str, entries: list[_Entry],
               bad_hashes: dict[int, str]) -> tuple[list[Finding], set[int]]:
    """Pairs of entries that verify once they give each other their places back."""
    problems, paired = [], set()
    for entry in entries:
        if not entry.moved or entry.seq in paired:
            continue
        for partner in _partners(store, entry, entries, bad_hashes):
            if partner.seq not in paired and _swapped(entry, partner):
                paired |= {entry.seq, partner.seq}
                problems.append(_swap_problem(entry, partner))
                break
    return problems, paired


def _partners(store: Store, entry: _Entry, entries: list[_Entry],
              bad_hashes: dict[int, str]) -> list[_Entry]:
    """Entries that now sit where ``entry`` belongs (in this run, or another one)."""
    found = [e for e in entries if e is not entry and e.moved
             and (e.seq == entry.oseq != entry.seq or e.run_seq == entry.orun != entry.run_seq)]
    if not found and entry.orun == entry.run_seq and entry.oseq in bad_hashes:
        found = [e for e in _fetch(store, "seq = ?", [entry.oseq], bad_hashes, entry.recipe)
                 if e.values["run_id"] != entry.values["run_id"]]
        _find_positions(found, [entry.seq])
    return found


def _swapped(a: _Entry, b: _Entry) -> bool:
    """Whether ``a`` and ``b`` verify once they exchange seq, run_seq, or both."""
    same_run = a.values["run_id"] == b.values["run_id"]
    for seq, run_seq in ((True, False), (False, True), (True, True)):
        if run_seq and not same_run:  # across runs only the ledger position can be exchanged
            continue
        a_home = (b.seq if seq else a.seq, b.run_seq if run_seq else a.run_seq)
        b_home = (a.seq if seq else b.seq, a.run_seq if run_seq else b.run_seq)
        if (a.oseq, a.orun) == a_home and (b.oseq, b.orun) == b_home:
            return True
    return False


def _swap_problem(a: _Entry, b: _Entry) -> Finding:
    first, second = sorted((a, b), key=lambda e: e.seq)
    run_a, run_b = first.values["run_id"], second.values["run_id"]
    if run_a == run_b:
        where = f"positions {first.orun} and {second.orun} of run {run_a}"
    else:
        where = f"position {first.orun} of run {run_a} and position {second.orun} of run {run_b}"
    return Finding(first.seq, run_a, Damage.REORDERED,
                   f"the {first.describe()} at seq {first.seq} and the {second.describe()} at "
                   f"seq {second.seq} ({where}) have exchanged places: each one's hash matches "
                   "the other's position")


def _renumbered(store: Store, run_id: str, moved: list[_Entry]) -> Finding:
    first, last = min(e.seq for e in moved), max(e.seq for e in moved)
    shifts = {(e.seq - e.oseq, e.run_seq - e.orun) for e in moved}
    count = plural(len(moved), "entry", "entries")
    were = "were" if len(moved) > 1 else "was"
    if len(shifts) == 1:
        ds, dr = next(iter(shifts))
        moves = [f"{abs(d)} {unit}{'s' if abs(d) > 1 else ''} {'later' if d > 0 else 'earlier'}"
                 for d, unit in ((ds, "ledger position"), (dr, "place in the run")) if d]
        how = "moved " + " and ".join(moves)
    else:
        how = "moved to other positions"
    span = f"seq {first}" if first == last else f"seq {first}-{last}"
    # the holes between where the entries were and where they are now are explained here
    low = min(min(e.oseq for e in moved), first)
    high = max(max(e.oseq for e in moved), last)
    return Finding(first, run_id, Damage.RENUMBERED,
                   f"{count} of run {run_id} ({span}) {were} {how} with their contents intact: "
                   "the ledger was renumbered, as happens when entries are inserted or deleted "
                   "before them", tuple(_vacant(store, 100_000, low, high)))


def _note_renumbering(problem: Finding, count: int) -> Finding:
    if problem.kind not in (Damage.INSERTED, Damage.DELETED):
        return problem
    what = "to make room" if problem.kind == Damage.INSERTED else "to close the gap"
    entries = f"{count} later entries were" if count > 1 else "1 later entry was"
    return Finding(problem.seq, problem.run_id, problem.kind,
                   f"{problem.message}, and {entries} renumbered {what}", problem.missing)


def _walk(store: Store, run_id: str, entries: list[_Entry]) -> list[Finding]:
    """Follow the run in its original order and describe each break."""
    groups: dict[int, list[_Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.orun].append(entry)
    linked = {e.prev_hash for e in entries}
    hashes = {e.hash: e for e in entries}
    problems: list[Finding] = []
    prior: _Entry | None = None
    for position in sorted(groups):
        entry, forged = _genuine(groups[position], linked)
        problems += [_inserted(run_id, f, entry) for f in forged]
        problems += [_edited(run_id, e) for e in (entry, *forged) if e.edited]
        expected = 1 if prior is None else prior.orun + 1
        if position > expected:
            problems.append(_deleted(store, run_id, entries, prior, entry, expected))
        elif prior is None:
            if entry.prev_hash != GENESIS and not entry.edited:
                problems.append(Finding(
                    entry.seq, run_id, Damage.REHASHED,
                    f"the {entry.describe()} at seq {entry.seq} opens run {run_id} but does not "
                    "link to the genesis value, though its hash matches: it was changed and "
                    "its hash recomputed"))
        elif prior.event_type == END_EVENT:
            pass  # nothing may follow the end: _run_end names the entry
        elif entry.prev_hash != prior.hash and not (entry.edited or prior.edited):
            problems.append(_broken_link(run_id, prior, entry, hashes))
        prior = entry
    return problems


def _genuine(group: list[_Entry], linked: set[str]) -> tuple[_Entry, list[_Entry]]:
    """Of entries claiming one position, the one the chain continues from, and the rest."""
    if len(group) == 1:
        return group[0], []
    continued = [e for e in group if e.hash in linked]
    # when the links cannot tell, keep the one written first
    genuine = continued[0] if len(continued) == 1 else min(group, key=lambda e: (e.oseq, e.seq))
    return genuine, [e for e in group if e is not genuine]


def _inserted(run_id: str, forged: _Entry, genuine: _Entry) -> Finding:
    return Finding(forged.seq, run_id, Damage.INSERTED,
                   f"the {forged.describe()} at seq {forged.seq} was inserted into run {run_id} "
                   f"at position {forged.orun}: nothing links to it and the chain goes on "
                   f"through the genuine entry for that position (now at seq {genuine.seq})")


def _edited(run_id: str, entry: _Entry) -> Finding:
    return Finding(entry.seq, run_id, Damage.EDITED,
                   f"the {entry.describe()} at seq {entry.seq} (position {entry.run_seq} of run "
                   f"{run_id}) was changed after it was written: its contents no longer match "
                   "its stored hash")


def _deleted(store: Store, run_id: str, entries: list[_Entry], prior: _Entry | None,
             entry: _Entry, expected: int) -> Finding:
    count = entry.orun - expected
    missing = _missing_seqs(store, run_id, entries, prior, entry, count)
    if count == 1:
        what = f"position {expected} of run {run_id}"
    else:
        what = f"positions {expected}-{entry.orun - 1} of run {run_id}"
    if missing:
        what += f" (seq {_span(missing)})"
    verb = "was" if count == 1 else "were"
    if prior is None:
        where = f"the run now starts at seq {entry.seq} with position {entry.orun}"
    else:
        after = f"position {entry.orun} at seq {entry.seq}" if not entry.moved else \
            f"the entry written as position {entry.orun}, now at seq {entry.seq}"
        where = f"the chain jumps from position {prior.orun} at seq {prior.seq} to {after}"
    return Finding(missing[0] if missing else entry.seq, run_id, Damage.DELETED,
                   f"{what} {verb} deleted: {where}", missing)


def _missing_seqs(store: Store, run_id: str, entries: list[_Entry], prior: _Entry | None,
                  entry: _Entry, count: int) -> tuple[int, ...]:
    """The ledger positions the deleted entries had, when the ledger shows them."""
    low, high = (prior.oseq if prior else 0), entry.oseq
    if high - low - 1 < count or high - low > 100_000:
        return ()
    taken = {r[0] for r in store.rows("SELECT seq FROM ledger_entries WHERE seq > ? AND "
                                      "seq < ? AND run_id <> ?", [low, high, run_id])}
    taken |= {e.oseq for e in entries}
    free = [s for s in range(low + 1, high) if s not in taken]
    if len(free) == count or (prior is None and len(free) > count):
        return tuple(free[-count:])
    return ()


def _span(seqs: Sequence[int]) -> str:
    if len(seqs) == 1:
        return str(seqs[0])
    if list(seqs) == list(range(seqs[0], seqs[-1] + 1)):
        return f"{seqs[0]}-{seqs[-1]}"
    return ", ".join(str(s) for s in seqs)


def _broken_link(run_id: str, prior: _Entry, entry: _Entry,
                 hashes: dict[str, _Entry]) -> Finding:
    """Both entries verify, but ``entry`` does not link to ``prior``."""
    if entry.prev_hash == prior.prev_hash:
        return Finding(prior.seq, run_id, Damage.INSERTED,
                       f"the {prior.describe()} at seq {prior.seq} was inserted into run "
                       f"{run_id} at position {prior.orun}: it links to the same entry as the "
                       f"genuine one after it (seq {entry.seq})")
    if entry.seq < prior.seq:
        return Finding(entry.seq, run_id, Damage.REORDERED,
                       f"the {entry.describe()} at seq {entry.seq} (position {entry.orun} of run "
                       f"{run_id}) was written to the ledger before the entry it should follow, "
                       f"at seq {prior.seq}, and does not link to it: the run's entries are out "
                       "of order")
    target = hashes.get(entry.prev_hash)
    if target is not None:
        return Finding(entry.seq, run_id, Damage.REORDERED,
                       f"the {entry.describe()} at seq {entry.seq} follows the entry at seq "
                       f"{prior.seq} in run {run_id} but links to the one at seq {target.seq}: "
                       "entries were moved")
    return Finding(prior.seq, run_id, Damage.REHASHED,
                   f"the {prior.describe()} at seq {prior.seq} (position {prior.orun} of run "
                   f"{run_id}) was changed and its hash recomputed: the next entry, at seq "
                   f"{entry.seq}, still links to the original")


def _run_end(store: Store, run_id: str, entries: list[_Entry]) -> list[Finding]:
    """A damaged run's end, in its original order, against its record."""
    chain = sorted(entries, key=lambda e: (e.orun, e.oseq))
    ends = [e for e in chain if e.event_type == END_EVENT]
    if ends and chain[-1].orun > ends[0].orun:
        after = next(e for e in chain if e.orun > ends[0].orun)
        return [_after_end(run_id, after)]
    record = store.rows("SELECT status, entry_count FROM ledger_runs WHERE run_id = ?",
                        [run_id])
    if not record:
        return []
    status, recorded = record[0][0], int(record[0][1])
    last = chain[-1]
    if last.orun < recorded:
        return [_truncated_by_record(store, run_id, last.seq, last.orun, recorded)]
    if status != "running" and not ends:
        return [_ended_without_end(store, run_id, status, last.seq)]
    return []


def _after_end(run_id: str, entry: _Entry | tuple) -> Finding:
    seq, what = (entry.seq, entry.describe()) if isinstance(entry, _Entry) else entry
    return Finding(seq, run_id, Damage.INSERTED,
                   f"the {what} at seq {seq} was added to run {run_id} after its "
                   f"{END_EVENT} entry: nothing may follow the end of a run")


def _first_removed(store: Store, last_seq: int) -> int | None:
    """The ledger position right after a run's last entry, when nothing holds it now."""
    taken = store.rows("SELECT count(*) FROM ledger_entries WHERE seq = ?", [last_seq + 1])
    return None if taken[0][0] else last_seq + 1


def _truncated_by_record(store: Store, run_id: str, last_seq: int, last: int,
                         recorded: int) -> Finding:
    removed = recorded - last
    lost = f"the last {removed} entries were" if removed > 1 else "its last entry was"
    return Finding(_first_removed(store, last_seq), run_id, Damage.TRUNCATED,
                   f"run {run_id} ends at position {last} (seq {last_seq}) but its record counts "
                   f"{plural(recorded, 'entry', 'entries')}: {lost} removed")


def _ended_without_end(store: Store, run_id: str, status: str, last_seq: int) -> Finding:
    return Finding(_first_removed(store, last_seq), run_id, Damage.TRUNCATED,
                   f"run {run_id} is recorded as {status} but has no {END_EVENT} entry: "
                   f"its end, after seq {last_seq}, was removed")


# --- whole runs and the ledger sequence -----------------------------------------


_last_gaps: list[tuple] = []
"""The holes found for one verification, as (store, its bad_hashes dict, holes): every
run classified in one verification shares them; a new verification has a new dict."""


def _gap_blocks(store: Store, bad_hashes: dict[int, str] | None = None
                ) -> list[tuple[int, int]]:
    """Every hole between two entries of the ledger, as (first missing, last missing)."""
    cached = _last_gaps[0] if _last_gaps else None
    if bad_hashes is not None and cached and cached[0] is store and cached[1] is bad_hashes:
        return cached[2]
    blocks = _query_gaps(store)
    if bad_hashes is not None:
        _last_gaps[:] = [(store, bad_hashes, blocks)]
    return blocks


def _query_gaps(store: Store) -> list[tuple[int, int]]:
    rows = store.rows("""
        SELECT seq, next_seq FROM (
            SELECT seq, lead(seq) OVER (ORDER BY seq) AS next_seq FROM ledger_entries
        ) AS s WHERE next_seq <> seq + 1 ORDER BY seq""")
    # Positions before the first entry are not a hole: a run imported into an empty
    # ledger keeps the positions it had where it was exported from.
    return [(int(after) + 1, int(upto) - 1) for after, upto in rows]


def _removed_runs(store: Store, blocks: list[tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Recorded runs with no entries left, matched to a hole of exactly their size."""
    runs = store.rows("""
        SELECT r.run_id, r.entry_count FROM ledger_runs r
        WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.run_id = r.run_id)
        ORDER BY r.started_at, r.run_id""")
    free = list(blocks)
    matched = {}
    for run, recorded in runs:
        for block in free:
            if block[1] - block[0] + 1 == int(recorded):
                matched[run] = block
                free.remove(block)
                break
    return matched


def ledger_gaps(store: Store, known: list[Finding]) -> list[Finding]:
    """Holes in the ledger-wide sequence that no run's own gap explains."""
    blocks = _gap_blocks(store)
    if not blocks:
        return []
    removed = {block: run for run, block in _removed_runs(store, blocks).items()}
    explained = {s for p in known for s in p.missing}
    problems = []
    for block in blocks:
        if block in removed:
            problems.append(_run_removed_at(removed[block], block))
            continue
        for first, last in _unexplained(block, explained):
            problems.append(_gap_problem(store, first, last))
    return problems


def _unexplained(block: tuple[int, int], explained: set[int]) -> Iterable[tuple[int, int]]:
    start = None
    for seq in range(block[0], block[1] + 2):
        if seq <= block[1] and seq not in explained:
            start = seq if start is None else start
        elif start is not None:
            yield start, seq - 1
            start = None


def _gap_problem(store: Store, first: int, last: int) -> Finding:
    before = store.rows("""
        SELECT e.run_id, e.event_type,
               (SELECT max(o.seq) FROM ledger_entries o WHERE o.run_id = e.run_id)
        FROM ledger_entries e WHERE e.seq = ?""", [first - 1])
    span = f"ledger position {first}" if first == last else f"ledger positions {first}-{last}"
    verb = "is" if first == last else "are"
    if before and before[0][1] != END_EVENT and int(before[0][2]) == first - 1:
        run = before[0][0]
        return Finding(first, run, Damage.TRUNCATED,
                       f"{span} {verb} missing right after the last entry of run {run}, which "
                       f"never reaches {END_EVENT}: the end of run {run} was cut off")
    return Finding(first, None, Damage.RUN_REMOVED,
                   f"{span} {verb} missing and no remaining run has a gap there: a whole run "
                   "was removed")


def _run_removed_at(run: str, block: tuple[int, int]) -> Finding:
    return Finding(block[0], run, Damage.RUN_REMOVED,
                   f"every entry of run {run} is gone: its record is still there, and ledger "
                   f"positions {block[0]}-{block[1]} are missing")


class _Record(NamedTuple):
    """A run's record in ``ledger_runs``, with what its entries say about its length."""

    run: str
    status: str
    recorded: int
    head: str | None
    workflow: str | None
    task: str | None
    started_at: str | None
    ended_at: str | None
    policy: str | None
    count: int
    last: int | None
    last_seq: int | None
    end: int | None
    hash_at_end: str | None
    seq_at_end: int | None


@dataclass(frozen=True)
class _Copied:
    """A run_start or run_complete entry: where it is, and what a record copies from it."""

    kind: str
    seq: int
    ts: str
    payload: dict | None
    """The entry's payload, None when it is not a JSON object (then nothing is copied)."""


START_EVENT = "run_start"
"""The event that opens a run: its record copies workflow, task, policy and start time."""


def run_record_problems(store: Store, where: str, params: list,
                        suspects: set[str]) -> list[Finding]:
    """Compare each run's record with its entries, and find runs whose record is gone.

    Count, head and status are compared with the run's length, last hash and end; every
    field the record copies from the run_start and run_complete entries is compared with
    them. Runs in ``suspects`` are described by `classify_run`; only a run whose entries
    are all gone, or whose record is, is reported for them here.
    """
    records = _records(store, where, params)
    copied = _copied_entries(store, where, params)
    empty = any(record.count == 0 for record in records)
    removed = _removed_runs(store, _gap_blocks(store)) if empty else {}
    problems: list[Finding] = []
    for record in records:
        if record.count == 0:
            problems.append(_record_without_entries(record, removed))
        elif record.run not in suspects:
            problem = (_length_problem(store, record)
                       or _edited_fields(record, copied.get(record.run, {})))
            problems += [problem] if problem else []
    recorded = {record.run for record in records}
    problems += [_record_deleted(store, run, found[START_EVENT])
                 for run, found in copied.items()
                 if START_EVENT in found and run not in recorded]
    return problems


def _records(store: Store, where: str, params: list) -> list[_Record]:
    """Every record in scope, with its run's entry count, length, end and head entry."""
    runs_where = where.replace("run_id", "r.run_id")
    fields = "r.run_id, r.status, r.entry_count, r.head_hash, r.workflow, r.task, " \
             "r.started_at, r.ended_at, r.policy"
    rows = store.rows(f"""
        SELECT {fields}, count(e.seq), max(e.run_seq), max(e.seq),
               max(CASE WHEN e.event_type = '{END_EVENT}' THEN e.run_seq END),
               max(CASE WHEN e.run_seq = r.entry_count THEN e.hash END),
               max(CASE WHEN e.run_seq = r.entry_count THEN e.seq END)
        FROM ledger_runs r LEFT JOIN ledger_entries e ON e.run_id = r.run_id
        {runs_where}
        GROUP BY {fields}""", params)
    numbers = {"recorded", "count", "last", "last_seq", "end", "seq_at_end"}
    return [_Record(*(int(v) if k in numbers and v is not None else v
                      for k, v in zip(_Record._fields, row, strict=True))) for row in rows]


def _copied_entries(store: Store, where: str, params: list) -> dict[str, dict[str, _Copied]]:
    """Each run's first run_start and first run_complete entry, by event type."""
    rows = store.rows(f"""
        SELECT run_id, event_type, seq, ts, payload FROM ledger_entries
        WHERE event_type IN ('{START_EVENT}', '{END_EVENT}') {where.replace("WHERE", "AND")}
        ORDER BY run_seq, seq""", params)
    found: dict[str, dict[str, _Copied]] = defaultdict(dict)
    for run, kind, seq, ts, payload in rows:
        found[run].setdefault(kind, _Copied(kind, int(seq), ts, _json_object(payload)))
    return found


def _json_object(text: str | None) -> dict | None:
    """The JSON object ``text`` holds, or None when it holds something else."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _record_without_entries(record: _Record, removed: dict[str, tuple[int, int]]) -> Finding:
    """A record whose entries are all gone (``removed``: the holes such runs left)."""
    if record.run in removed:
        return _run_removed_at(record.run, removed[record.run])
    return Finding(None, record.run, Damage.RUN_REMOVED,
                   f"run {record.run} is recorded "
                   f"({plural(record.recorded, 'entry', 'entries')}, "
                   f"{record.status}) but all its entries are gone")


def _length_problem(store: Store, record: _Record) -> Finding | None:
    """The record's count, head hash or status against the run's length and end."""
    run, recorded, last, last_seq, end = (record.run, record.recorded, record.last or 0,
                                          record.last_seq or 0, record.end)
    if end is not None and last > end:
        return _after_end(run, _entry_after(store, run, end))
    if last < recorded:
        return _truncated_by_record(store, run, last_seq, last, recorded)
    if last > recorded:
        seq, what = _entry_after(store, run, recorded)
        return Finding(seq, run, Damage.INSERTED,
                       f"the {what} at seq {seq} (position {recorded + 1} of run {run}) was "
                       f"added after the run's record, which counts "
                       f"{plural(recorded, 'entry', 'entries')}, was "
                       "last written")
    if record.head is not None and record.hash_at_end != record.head:
        seq = record.seq_at_end
        return Finding(seq, run, Damage.REHASHED,
                       f"the last entry of run {run}, at seq {seq}, is not the one recorded as "
                       "the run's head: it (or an entry before it, with every hash after it) "
                       "was changed and re-hashed")
    if record.status != "running" and end is None:
        return _ended_without_end(store, run, record.status, last_seq)
    return None


def _expected_record(copied: dict[str, _Copied], status: str
                    ) -> list[tuple[str, str | None, _Copied | None]]:
    """(field, value, entry it comes from) for every record field the entries fix.

    What the writer copies (`rows.run_fields`): workflow, task and policy from the
    run_start payload, its time as started_at; status from the run_complete payload
    (``running`` without one) and its time as ended_at. A run still running has no
    ended_at; one recorded as ended without a run_complete is `_length_problem`'s.
    """
    start, end = copied.get(START_EVENT), copied.get(END_EVENT)
    fields: list[tuple[str, str | None, _Copied | None]] = []
    if start is not None:
        fields.append(("started_at", start.ts, start))
        if start.payload is not None:
            fields += [(name, _as_text(start.payload.get(name)), start)
                       for name in ("workflow", "task")]
            fields.append(("policy", to_json_text(start.payload.get("policy")), start))
    if end is not None:
        fields.append(("ended_at", end.ts, end))
        if end.payload is not None:
            value = end.payload.get("status")
            fields.append(("status", "running" if value is None else _as_text(value), end))
    elif status == "running":
        fields.append(("ended_at", None, None))
    return fields


def _as_text(value: object) -> str | None:
    """How a copied payload value is stored: text as it is, anything else as JSON."""
    return value if value is None or isinstance(value, str) else to_json_text(value)


def _edited_fields(record: _Record, copied: dict[str, _Copied]) -> Finding | None:
    """A finding naming every field of the record that its entries contradict."""
    wrong = [(name, value, entry) for name, value, entry in _expected_record(copied, record.status)
             if getattr(record, name) != value]
    if not wrong:
        return None
    parts = [f"its {name} reads {_quoted(getattr(record, name))} where "
             + (f"its {entry.kind} entry (seq {entry.seq}) says {_quoted(value)}" if entry
                else f"the run has no {END_EVENT} entry") for name, value, entry in wrong]
    return Finding(None, record.run, Damage.RECORD_EDITED,
                   f"the record of run {record.run} in ledger_runs was changed after it was "
                   f"written: {', and '.join(parts)}")


def _quoted(value: str | None) -> str:
    """A record or entry value in a message: quoted and cut short, or NULL."""
    return "NULL" if value is None else f"'{short_text(value, 40)}'"


def _record_deleted(store: Store, run: str, start: _Copied) -> Finding:
    """A run whose entries are there (its run_start among them) but whose record is gone."""
    count, first, last = store.rows("SELECT count(*), min(seq), max(seq) FROM ledger_entries "
                                    "WHERE run_id = ?", [run])[0]
    span = f"seq {first}" if first == last else f"seq {first}-{last}"
    return Finding(None, run, Damage.RECORD_DELETED,
                   f"run {run} has {plural(count, 'entry', 'entries')} ({span}, "
                   f"its {START_EVENT} at seq {start.seq}) but no record in ledger_runs: its "
                   "record was deleted")


def _entry_after(store: Store, run_id: str, run_seq: int) -> tuple[int, str]:
    """Ledger seq and description of the run's first entry after position ``run_seq``."""
    row = store.rows("SELECT seq, event_type, node_id FROM ledger_entries WHERE run_id = ? "
                     "AND run_seq > ? ORDER BY run_seq LIMIT 1", [run_id, run_seq])[0]
    return int(row[0]), f"{row[1]} entry" + (f" of {row[2]}" if row[2] else "")


# --- anchors ---------------------------------------------------------------------


def against_anchor(store: Store, anchor: Anchor) -> list[Finding]:
    """Compare the run with an anchor taken earlier (its length and head hash).

    Only what the table cannot show by itself is reported here: a chain recomputed to
    be consistent (``rewritten``), a cut-off end (``truncated``), a run that is gone, and
    entries added to a run that was complete when anchored.
    """
    run = anchor.run_id
    rows = [(int(s), int(k), t, h) for s, k, t, h in store.rows(
        "SELECT seq, run_seq, event_type, hash FROM ledger_entries WHERE run_id = ? "
        "ORDER BY run_seq, seq", [run])]
    if not rows:
        return [Finding(None, run, Damage.RUN_REMOVED,
                        f"the anchor records run {run} with "
                        f"{plural(anchor.length, 'entry', 'entries')}, but the "
                        "ledger has none of them: the whole run was removed")]
    found = [r for r in rows if r[3] == anchor.head_hash]
    if found:
        if found[0][1] != anchor.length or not anchor.complete:
            return []  # moved: its hash fails where it is now, and the chain says so
        later = [r for r in rows if r[1] > anchor.length]
        if not later:
            return []
        return [Finding(later[0][0], run, Damage.INSERTED,
                        f"run {run} was complete with "
                        f"{plural(anchor.length, 'entry', 'entries')} when it was "
                        f"anchored; {len(later)} "
                        f"{'entries were' if len(later) > 1 else 'entry was'} added after it, "
                        f"from seq {later[0][0]}")]
    last_seq, length, last_type = rows[-1][0], rows[-1][1], rows[-1][2]
    if length < anchor.length and not (anchor.complete and last_type == END_EVENT):
        removed = anchor.length - length
        return [Finding(_first_removed(store, last_seq), run, Damage.TRUNCATED,
                        f"run {run} ends at position {length} (seq {last_seq}) but its anchor "
                        f"recorded {plural(anchor.length, 'entry', 'entries')}: the last "
                        + (f"{removed} entries were" if removed > 1 else "entry was")
                        + " removed")]
    if length < anchor.length:
        change = (f"has {plural(length, 'entry', 'entries')} where its anchor recorded "
                  f"{anchor.length}, yet it "
                  f"still ends with {END_EVENT} and its chain is consistent: entries were "
                  "deleted from inside it and the rest renumbered and re-hashed")
    else:
        change = (f"no longer has the anchored hash at position {anchor.length}: an entry "
                  "was changed and every hash after it recomputed")
    return [Finding(None, run, Damage.REWRITTEN, f"run {run} {change}")]


# --- the ledger anchor ------------------------------------------------------------

DIGEST_CHUNK = 100_000
"""Ledger positions whose hashes one query of `ledger_head` reads at a time."""


@dataclass(frozen=True)
class LedgerHead:
    """The ledger up to one position: how many entries and runs, and their digest."""

    last_seq: int
    entries: int
    runs: int
    top: int
    """The highest seq present up to ``last_seq`` (0 when there is none)."""
    digest: str


def ledger_head(store: Store, last_seq: int | None = None) -> LedgerHead:
    """The ledger's head at ``last_seq`` (at its last entry when None), digest included."""
    upto, params = ("WHERE seq <= ?", [last_seq]) if last_seq is not None else ("", [])
    low, top, entries, runs = store.rows(
        "SELECT coalesce(min(seq), 1), coalesce(max(seq), 0), count(*), "
        f"count(DISTINCT run_id) FROM ledger_entries {upto}", params)[0]
    last = int(top) if last_seq is None else last_seq
    hashes = _hashes_between(store, int(low) - 1, last)
    return LedgerHead(last, int(entries), int(runs), int(top),
                      ledger_digest(last, int(entries), int(runs), hashes))


def _hashes_between(store: Store, after: int, last: int) -> Iterator[str]:
    """The stored hashes of the entries after ``after`` up to ``last``, in seq order, as
    text, a chunk of positions at a time (a million hashes are 64 MB)."""
    for low in range(after, last, DIGEST_CHUNK):
        (text,) = store.rows("SELECT string_agg(hash, '' ORDER BY seq) FROM ledger_entries "
                             "WHERE seq > ? AND seq <= ?", [low, min(low + DIGEST_CHUNK, last)])[0]
        if text:
            yield text


def against_ledger_anchors(store: Store, anchors: Sequence[Anchor]) -> list[Finding]:
    """Compare the ledger with each ledger anchor, and name what the newest cannot cover."""
    problems = [p for anchor in anchors for p in _against_ledger_anchor(store, anchor)]
    newest = max(anchors, key=lambda a: a.last_seq or 0)
    return problems + _unanchored(store, newest)


def _against_ledger_anchor(store: Store, anchor: Anchor) -> list[Finding]:
    """What changed among the entries up to the anchor's head (nothing, if it holds)."""
    head = ledger_head(store, anchor.last_seq or 0)
    if (head.entries, head.runs, head.digest) == (anchor.length, anchor.runs, anchor.head_hash):
        return []
    return [_ledger_change(anchor, head)]


def _ledger_change(anchor: Anchor, head: LedgerHead) -> Finding:
    """One sentence on how the ledger up to the anchor's head differs from it.

    The digest stands for the whole prefix, so it says that something changed, not
    where: the counts tell removal from insertion, and the table's own findings (or run
    anchors) say where.
    """
    runs_lost, entries_lost = (anchor.runs or 0) - head.runs, anchor.length - head.entries
    now = (f"{plural(head.entries, 'entry', 'entries')} in {plural(head.runs, 'run')} lie up "
           f"to seq {head.last_seq}")
    if head.top < head.last_seq:
        now += f" (the ledger now ends at seq {head.top})"
    if runs_lost > 0:
        kind, what = Damage.RUN_REMOVED, (f"{now}: {plural(runs_lost, 'whole run')} "
                                          f"{'was' if runs_lost == 1 else 'were'} removed")
    elif entries_lost > 0:
        kind, what = Damage.DELETED, (f"{now}: {plural(entries_lost, 'entry', 'entries')} "
                                      f"{'was' if entries_lost == 1 else 'were'} removed")
    elif entries_lost < 0 or runs_lost < 0:
        kind, what = Damage.INSERTED, f"{now}: entries were inserted among them"
    else:
        kind, what = Damage.REWRITTEN, (f"the entries up to seq {head.last_seq} are no longer "
                                        "the anchored ones: entries were changed, or replaced, "
                                        "and their hashes recomputed")
    held = f"{plural(anchor.length, 'entry', 'entries')} in {plural(anchor.runs or 0, 'run')}"
    return Finding(None, None, kind, f"the ledger anchor taken at seq {anchor.last_seq} "
                                     f"({held}) no longer holds: {what}")


def _unanchored(store: Store, newest: Anchor) -> list[Finding]:
    """Entries after the newest ledger anchor's head: nothing vouches for them yet."""
    count, first, last, runs, one_run = store.rows(
        "SELECT count(*), min(seq), max(seq), count(DISTINCT run_id), min(run_id) "
        "FROM ledger_entries WHERE seq > ?", [newest.last_seq or 0])[0]
    if not count:
        return []
    span = f"seq {first}" if first == last else f"seq {first}-{last}"
    whose = f"run {one_run}" if runs == 1 else f"{runs} runs"
    taken = f", taken {newest.taken_at}" if newest.taken_at else ""
    return [Finding(int(first), one_run if runs == 1 else None, Damage.UNANCHORED,
                    f"{plural(int(count), 'entry', 'entries')} ({span}, {whose}) "
                    f"{'was' if count == 1 else 'were'} written after the newest ledger anchor "
                    f"(seq {newest.last_seq}{taken}): no anchor covers them, so forged runs "
                    "there could not be told from real ones; take a new ledger anchor after "
                    "each legitimate batch of runs")]


# --- the recipe marker ------------------------------------------------------------

RECIPE_SAMPLE = 8
"""Entries (the first in scope) tried under every recipe to see which one they use."""


def recipe_check(store: Store, where: str, params: list) -> tuple[Recipe, list[Finding]]:
    """The recipe to check the entries with, and a finding if the marker does not name it.

    The marker in ``ledger_meta`` says which recipe the ledger is written in; the first
    entries are tried under every recipe, so that a changed or removed marker is named
    once instead of failing every entry (each recipe's texts differ from the others').
    """
    marker = _stored_marker(store)
    marked = marked_recipe(marker)
    sample = [dict(zip(FIELDS, row, strict=True)) for row in store.rows(
        f"SELECT {', '.join(f'CAST({c} AS VARCHAR)' for c in FIELDS)} FROM ledger_entries "
        f"{where} ORDER BY seq LIMIT {RECIPE_SAMPLE}", params)]
    scores = {r: sum(r.verifies(row) for row in sample) for r in RECIPES.values()}
    best = max(scores, key=lambda r: (scores[r], r is marked))
    found = best if scores[best] else None
    if marked is not None and found in (None, marked):
        return marked, []
    return found or marked or CURRENT_RECIPE, [_recipe_finding(marker, found)]


def _stored_marker(store: Store) -> str | None:
    """The ledger's recipe marker as stored; None when it (or its table) is gone."""
    try:
        with store.transaction("read the recipe marker", changes=False) as cur:
            return read_marker(cur)
    except LedgerError:
        return None


def _recipe_finding(marker: str | None, found: Recipe | None) -> Finding:
    """The marker (or its absence) against the recipe the entries turned out to use."""
    used = found or CURRENT_RECIPE
    if marker is None:
        said = ("the ledger has no recipe marker in ledger_meta, which makes it a recipe 1 "
                f"ledger, but its entries are hashed with recipe {used.number}: the marker was "
                "removed")
    elif marked_recipe(marker) is None:
        said = (f"the ledger's recipe marker in ledger_meta says {marker!r}, which names no "
                "recipe: the marker was changed")
    else:
        said = (f"the ledger's recipe marker in ledger_meta says {marker!r}, but its entries "
                f"are hashed with recipe {used.number}: the marker was changed")
    return Finding(None, None, Damage.RECIPE_CHANGED,
                   f"{said}, and the entries were checked with recipe {used.number}")
