"""Forensics: once verification has found damage, say what happened and where.

Only damaged runs are fetched here, so this code favours clear sentences over speed.
Each `Problem` names the entry's ledger seq (or the run), a kind from `Damage`, and a
sentence a learner can read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .anchor import Anchor
from .hashing import canonical_text, entry_hash
from .schema import GENESIS, HASHED_COLUMNS
from .stores import Store


class Damage:
    """Kinds of damage the verifier names (docs/ledger.md says which need an anchor)."""

    EDITED = "edited"
    REHASHED = "edited_and_rehashed"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    REWRITTEN = "rewritten"
    RUN_REMOVED = "run_removed"


@dataclass(frozen=True)
class Problem:
    """One damaged place: the entry's ledger seq (None for whole runs), kind, sentence."""

    seq: int | None
    run_id: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else f"run {self.run_id}"
        return f"{where}: {self.kind}: {self.message}"



def classify_run(store: Store, run_id: str, bad_hashes: dict[int, str]) -> list[Problem]:
    columns = ", ".join(f"CAST({c} AS VARCHAR)" for c in (*HASHED_COLUMNS, "hash"))
    rows = [dict(zip((*HASHED_COLUMNS, "hash"), r, strict=True)) for r in store.rows(
        f"SELECT {columns} FROM ledger_entries WHERE run_id = ? ORDER BY run_seq, seq",
        [run_id])]
    for row in rows:
        row["seq"], row["run_seq"] = int(row["seq"]), int(row["run_seq"])
        row["ok"] = row["seq"] not in bad_hashes
    swapped = _swapped_pairs(rows)
    problems = [Problem(a["seq"], run_id, Damage.REORDERED,
                        f"entries at seq {a['seq']} and {b['seq']} of run {run_id} have "
                        "exchanged places; each hash matches the other's position")
                for a, b in swapped]
    moved = {r["seq"] for pair in swapped for r in pair}
    problems += _walk_chain(run_id, [r for r in rows if r["seq"] not in moved])
    return problems


def _swapped_pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs of damaged entries that verify once their ledger positions are swapped."""
    damaged = [r for r in rows if not r["ok"]]
    pairs, used = [], set()
    for i, a in enumerate(damaged):
        for b in damaged[i + 1:]:
            if a["seq"] in used or b["seq"] in used:
                continue
            if _hash_ok({**a, "seq": b["seq"]}) and _hash_ok({**b, "seq": a["seq"]}):
                pairs.append((a, b))
                used |= {a["seq"], b["seq"]}
    return pairs


def _hash_ok(row: dict) -> bool:
    return entry_hash(canonical_text(row)) == row["hash"]


def _walk_chain(run_id: str, rows: list[dict]) -> list[Problem]:
    """Follow the run's entries in order and describe each break."""
    problems: list[Problem] = []
    prior: dict | None = None
    for row in rows:
        if not row["ok"]:
            problems.append(Problem(row["seq"], run_id, Damage.EDITED, _edited_sentence(row)))
        expected = 1 if prior is None else prior["run_seq"] + 1
        if row["run_seq"] < expected:
            problems.append(Problem(row["seq"], run_id, Damage.INSERTED,
                                    f"a second entry claims position {row['run_seq']} of run "
                                    f"{run_id}: it was inserted"))
        elif row["run_seq"] > expected:
            problems.append(_deleted(run_id, row, expected, prior))
        elif prior is None:
            if row["ok"] and row["prev_hash"] != GENESIS:
                problems.append(Problem(row["seq"], run_id, Damage.EDITED,
                                        "the first entry of the run does not start from the "
                                        "genesis value"))
        elif prior["ok"] and row["prev_hash"] != prior["hash"]:
            problems.append(_dangling(run_id, prior, row))
        prior = row
    return problems


def _edited_sentence(row: dict) -> str:
    node = f" of {row['node_id']}" if row["node_id"] else ""
    return (f"the stored hash no longer matches the entry's contents: the "
            f"{row['event_type']} entry{node} (position {row['run_seq']} of run "
            f"{row['run_id']}) was changed after it was written")


def _deleted(run_id: str, row: dict, expected: int, prior: dict | None) -> Problem:
    if row["run_seq"] == expected + 1:
        missing = f"position {expected} of run {run_id} is missing"
    else:
        missing = f"positions {expected}-{row['run_seq'] - 1} of run {run_id} are missing"
    after = f" after seq {prior['seq']}" if prior else " at the start of the run"
    return Problem(row["seq"], run_id, Damage.DELETED, f"{missing}{after}: entries were deleted")


def _dangling(run_id: str, prior: dict, row: dict) -> Problem:
    """``prior`` verifies but ``row`` does not link to it: forged, or edited and re-hashed."""
    if row["prev_hash"] == prior["prev_hash"]:
        return Problem(prior["seq"], run_id, Damage.INSERTED,
                       f"the entry at seq {prior['seq']} links to the same predecessor as the "
                       f"entry at seq {row['seq']}: it was inserted into the chain")
    return Problem(prior["seq"], run_id, Damage.REHASHED,
                   f"the entry at seq {prior['seq']} was changed and its hash recomputed; "
                   f"the next entry (seq {row['seq']}) still links to the original")


# --- whole runs and the ledger sequence -----------------------------------------


def ledger_gaps(store: Store, known: list[Problem]) -> list[Problem]:
    """Holes in the ledger-wide sequence that no run's own gap explains."""
    gaps = store.rows("""
        SELECT seq, next_seq FROM (
            SELECT seq, lead(seq) OVER (ORDER BY seq) AS next_seq FROM ledger_entries
        ) AS s WHERE next_seq <> seq + 1""")
    explained = {p.seq for p in known if p.kind == Damage.DELETED}
    return [Problem(after + 1, None, Damage.RUN_REMOVED,
                    f"ledger positions {after + 1}-{upto - 1} are missing and no remaining run "
                    "has a gap there: a whole run (or a run's last entries) was removed")
            for after, upto in gaps if upto not in explained]


def run_record_problems(store: Store, where: str, params: list,
                         suspects: set[str]) -> list[Problem]:
    """Compare each run's record (count, head, status) with its entries."""
    runs_where = where.replace("run_id", "r.run_id")
    records = store.rows(f"""
        SELECT r.run_id, r.status, r.entry_count, r.head_hash,
               count(e.seq), max(e.run_seq),
               sum(CASE WHEN e.event_type = 'run_complete' THEN 1 ELSE 0 END),
               max(CASE WHEN e.run_seq = r.entry_count THEN e.hash END)
        FROM ledger_runs r LEFT JOIN ledger_entries e ON e.run_id = r.run_id
        {runs_where}
        GROUP BY r.run_id, r.status, r.entry_count, r.head_hash""", params)
    problems = []
    for run, status, recorded, head, count, last, completes, hash_at_end in records:
        if count == 0:
            problems.append(Problem(None, run, Damage.RUN_REMOVED,
                                    f"run {run} is recorded ({recorded} entries, {status}) "
                                    "but all its entries are gone"))
        elif run not in suspects and last < recorded:
            problems.append(Problem(None, run, Damage.TRUNCATED,
                                    f"run {run} recorded {recorded} entries but only {last} "
                                    "remain: the last ones were removed"))
        elif run not in suspects and last > recorded:
            problems.append(Problem(None, run, Damage.INSERTED,
                                    f"run {run} recorded {recorded} entries but has {last}: "
                                    "entries were added after it was written"))
        elif run not in suspects and head is not None and hash_at_end != head:
            problems.append(Problem(None, run, Damage.REHASHED,
                                    f"the last entry of run {run} is not the one recorded as its "
                                    "head: it was changed and re-hashed"))
        elif run not in suspects and status != "running" and not completes:
            problems.append(Problem(None, run, Damage.TRUNCATED,
                                    f"run {run} ended ({status}) but its run_complete entry "
                                    "is missing: the end of the run was removed"))
    return problems


def against_anchor(store: Store, anchor: Anchor) -> list[Problem]:
    """Compare the run with an anchor taken earlier (its length and head hash)."""
    rows = store.rows("SELECT run_seq, hash, seq FROM ledger_entries WHERE run_id = ? "
                      "ORDER BY run_seq", [anchor.run_id])
    run = anchor.run_id
    if not rows:
        return [Problem(None, run, Damage.RUN_REMOVED,
                        f"the anchor records run {run} with {anchor.length} entries, "
                        "but the ledger has none of them")]
    length = len(rows)
    if length < anchor.length:
        return [Problem(rows[-1][2], run, Damage.TRUNCATED,
                        f"the anchor records {anchor.length} entries for run {run}; "
                        f"only {length} remain: the last {anchor.length - length} were removed "
                        "(or entries were deleted and the rest renumbered)")]
    at_anchor = rows[anchor.length - 1]
    if at_anchor[1] != anchor.head_hash:
        return [Problem(None, run, Damage.REWRITTEN,
                        f"entry {anchor.length} of run {run} no longer has the anchored head "
                        "hash: the run was rewritten and its chain recomputed")]
    if length > anchor.length and anchor.complete:
        return [Problem(rows[anchor.length][2], run, Damage.INSERTED,
                        f"run {run} was complete with {anchor.length} entries when anchored; "
                        f"{length - anchor.length} entries were added after it")]
    return []


