"""Forensic verification of the ledger's hash chains.

Three passes: (1) every entry's SHA-256 is recomputed from its columns (the canonical
text is rebuilt in SQL, hashed in Python); (2) SQL window queries find broken links,
gaps and reordering per run, and gaps in the ledger-wide sequence; (3) the damaged runs
alone are fetched and each problem is classified and described in a sentence.
Anchors (held outside the table) catch what a self-consistent rewrite hides.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .anchor import Anchor
from .forensics import Problem, against_anchor, classify_run, ledger_gaps, run_record_problems
from .schema import GENESIS, canonical_sql
from .stores import DuckDBStore, Store


@dataclass
class VerificationResult:
    """Outcome of `ReplayLedger.verify_chain`; truthy when the ledger is intact."""

    valid: bool
    entries_checked: int
    runs_checked: int
    problems: list[Problem] = field(default_factory=list)
    incomplete_runs: list[str] = field(default_factory=list)
    anchors_checked: int = 0

    def __bool__(self) -> bool:
        return self.valid

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def report(self) -> str:
        verdict = "VALID" if self.valid else "DAMAGED"
        lines = [f"Ledger chain {verdict}: {self.entries_checked} entries in "
                 f"{self.runs_checked} runs checked"
                 + (f", {self.anchors_checked} anchors compared" if self.anchors_checked else "")
                 + "."]
        lines += [f"  - {p}" for p in self.problems]
        if self.incomplete_runs:
            lines.append(f"  Incomplete (never finished, not damage): "
                         f"{', '.join(self.incomplete_runs)}")
        return "\n".join(lines)

    __str__ = report

    def __repr__(self) -> str:
        return (f"<VerificationResult valid={self.valid} entries={self.entries_checked} "
                f"problems={len(self.problems)}>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.report())


def verify(store: Store, run_id: str | None = None,
           anchors: Iterable[Anchor] = ()) -> VerificationResult:
    """Check the whole ledger (or one run) and, where given, its anchors."""
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    bad_hashes, checked = _hash_mismatches(store, where, params)
    suspects = set(bad_hashes.values()) | _broken_runs(store, where, params)
    problems = [p for run in sorted(suspects) for p in classify_run(store, run, bad_hashes)]
    if run_id is None:
        problems += ledger_gaps(store, problems)
    problems += run_record_problems(store, where, params, suspects)
    anchors = list(anchors)
    problems += [p for a in anchors if run_id in (None, a.run_id) for p in against_anchor(store, a)]
    runs = store.rows(f"SELECT count(DISTINCT run_id) FROM ledger_entries {where}", params)[0][0]
    incomplete = [r[0] for r in store.rows(
        f"SELECT run_id FROM ledger_runs {where} {'AND' if where else 'WHERE'} "
        "status = 'running' ORDER BY started_at", params)]
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0, p.run_id or ""))
    return VerificationResult(not problems, checked, runs, _unique(problems), incomplete,
                              len(anchors))


# --- pass 1: recompute every hash ------------------------------------------------


def _hash_mismatches(store: Store, where: str, params: list) -> tuple[dict[int, str], int]:
    """Entries whose stored hash differs from the SHA-256 of their columns: seq -> run."""
    sql = (f"SELECT seq, run_id, {canonical_sql()} AS canonical, hash FROM ledger_entries "
           f"{where} ORDER BY seq")
    if isinstance(store, DuckDBStore) and not params:
        return _arrow_mismatches(store, sql)
    bad, count = {}, 0
    for seq, run, canonical, stored in store.rows(sql, params):
        count += 1
        if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != stored:
            bad[seq] = run
    return bad, count


def _arrow_mismatches(store: DuckDBStore, sql: str) -> tuple[dict[int, str], int]:
    """Fast path: hash straight out of Arrow buffers, compare all digests at once."""
    import numpy as np

    table = store.arrow(sql)
    digests = bytearray()
    for chunk in table.column("canonical").cast("large_string").chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[chunk.offset:
                                                             chunk.offset + len(chunk) + 1]
        data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
        bounds = offsets.tolist()
        sha = hashlib.sha256
        for start, end in itertools.pairwise(bounds):
            digests += sha(data[start:end]).digest()
    stored = _stored_digests(table.column("hash").to_pylist())
    if stored == bytes(digests):
        return {}, table.num_rows
    ours = np.frombuffer(bytes(digests), dtype="S32")
    theirs = np.frombuffer(stored, dtype="S32") if len(stored) == len(digests) else None
    rows = range(table.num_rows) if theirs is None else np.nonzero(ours != theirs)[0].tolist()
    seqs, runs = table.column("seq").to_pylist(), table.column("run_id").to_pylist()
    hashes = table.column("hash").to_pylist()
    bad = {seqs[i]: runs[i] for i in rows if ours[i].hex() != hashes[i]}
    return bad, table.num_rows


def _stored_digests(hashes: list[str]) -> bytes:
    try:
        return bytes.fromhex("".join(hashes))
    except ValueError:  # a hash that is not hex: compare row by row instead
        return b""


# --- pass 2: links, gaps and order per run --------------------------------------


def _broken_runs(store: Store, where: str, params: list) -> set[str]:
    """Runs whose entries do not form one contiguous chain from the genesis value."""
    sql = f"""
        SELECT DISTINCT run_id FROM (
            SELECT run_id, run_seq, seq, prev_hash,
                   lag(hash) OVER w AS prior_hash, lag(run_seq) OVER w AS prior_run_seq,
                   lag(seq) OVER w AS prior_seq
            FROM ledger_entries {where}
            WINDOW w AS (PARTITION BY run_id ORDER BY run_seq, seq)
        ) AS links
        WHERE (prior_run_seq IS NULL AND (run_seq <> 1 OR prev_hash <> '{GENESIS}'))
           OR (prior_run_seq IS NOT NULL AND (run_seq <> prior_run_seq + 1
               OR prev_hash <> prior_hash OR seq < prior_seq))"""
    return {r[0] for r in store.rows(sql, params)}


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, unique = set(), []
    for problem in problems:
        key = (problem.seq, problem.run_id, problem.kind)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
