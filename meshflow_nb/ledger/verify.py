"""Forensic verification of the ledger's hash chains.

First the ledger's recipe marker is read and tried on its first entries (`forensics.
recipe_check`). Then three passes: (1) one scan recomputes every entry's SHA-256 from its
columns (the canonical text of the ledger's recipe, rebuilt in SQL and hashed in Python)
and checks the links, order and gaps of every run, the ledger-wide sequence and each
run's record against its entries; (2) the damaged runs alone are fetched and each finding
is classified and described in a sentence; (3) anchors (held outside the table) catch
what a self-consistent rewrite hides: run anchors per run, ledger anchors for the whole
ledger up to their head (and they name the entries written after the newest one).

On DuckDB the scan streams Arrow batches from a second connection in a helper thread
while the calling thread hashes them, and does the chain, gap and record checks with
numpy over the fetched columns. It only ever *clears* a check: whenever it cannot decide
exactly (odd values, duplicates, any disagreement) it leaves the check to the SQL of
`forensics`, so every damage kind is named exactly as the SQL passes name it. On
PostgreSQL every check runs in SQL.
"""

from __future__ import annotations

import binascii
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..events import plural
from .anchor import Anchor
from .canonical import HEX_WIDTH, Recipe, digests, entry_hash
from .checkpoint import checkpoint_problems
from .forensics import (
    END_EVENT,
    START_EVENT,
    Finding,
    against_anchor,
    against_ledger_anchors,
    classify_run,
    ledger_gaps,
    recipe_check,
    run_record_problems,
)
from .rows import to_json_text
from .schema import GENESIS
from .stores import DuckDBStore, Store

BATCH_ROWS = 20_000
"""Rows per Arrow batch: small enough that hashing overlaps the SQL, big enough to be cheap."""


@dataclass
class VerificationResult:
    """Outcome of `ReplayLedger.verify_chain`; truthy when the ledger is intact."""

    valid: bool
    entries_checked: int
    runs_checked: int
    problems: list[Finding] = field(default_factory=list)
    incomplete_runs: list[str] = field(default_factory=list)
    anchors_checked: int = 0
    since_seq: int | None = None
    """Set by the pre-run check: only the entries after this seq (the verified
    checkpoint's head) were checked (`ReplayLedger.verify_since_checkpoint`)."""

    def __bool__(self) -> bool:
        return self.valid

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def report(self) -> str:
        verdict = "VALID" if self.valid else "DAMAGED"
        compared = f", {plural(self.anchors_checked, 'anchor')} compared" \
            if self.anchors_checked else ""
        since = f" after the checkpoint at seq {self.since_seq}" \
            if self.since_seq is not None else ""
        lines = [f"Ledger chain {verdict}: {plural(self.entries_checked, 'entry', 'entries')} "
                 f"in {plural(self.runs_checked, 'run')} checked{since}{compared}."]
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


@dataclass
class Scan:
    """What pass 1 found. ``gapless`` and ``records_agree`` are True only when proven, so
    that the SQL of `forensics.ledger_gaps` and `forensics.run_record_problems` they stand
    for can be skipped (both would find nothing)."""

    entries: int
    runs: int
    bad_hashes: dict[int, str]
    broken_runs: set[str]
    gapless: bool = False
    records_agree: bool = False

    @property
    def suspects(self) -> set[str]:
        return set(self.bad_hashes.values()) | self.broken_runs


def verify(store: Store, run_id: str | None = None,
           anchors: Iterable[Anchor] = ()) -> VerificationResult:
    """Check the whole ledger (or one run) and, where given, its anchors.

    Ledger anchors are compared only when the whole ledger is checked.
    """
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    anchors = [a for a in anchors if run_id is None or not a.covers_ledger]
    with store.lease():  # one connection for every pass (DuckDB closes when idle)
        recipe, problems = recipe_check(store, where, params)
        scan = scan_entries(store, where, params, recipe)
        suspects = scan.suspects
        problems += [p for run in sorted(suspects)
                     for p in classify_run(store, run, scan.bad_hashes, recipe)]
        if run_id is None and not scan.gapless:
            problems += ledger_gaps(store, problems)
        if not scan.records_agree:
            problems += run_record_problems(store, where, params, suspects)
        problems += _anchor_problems(store, run_id, anchors)
        if run_id is None:
            problems += checkpoint_problems(store)
        incomplete = [r[0] for r in store.rows(
            f"SELECT run_id FROM ledger_runs {where} {'AND' if where else 'WHERE'} "
            "status = 'running' ORDER BY started_at", params)]
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0, p.run_id or ""))
    return VerificationResult(not problems, scan.entries, scan.runs, _unique(problems),
                              incomplete, len(anchors))


def _anchor_problems(store: Store, run_id: str | None, anchors: list[Anchor]) -> list[Finding]:
    """Pass 3: each run anchor of a run in scope, then the ledger anchors together."""
    problems = [p for a in anchors if not a.covers_ledger and run_id in (None, a.run_id)
                for p in against_anchor(store, a)]
    ledger = [a for a in anchors if a.covers_ledger]
    return problems + (against_ledger_anchors(store, ledger) if ledger else [])


def scan_entries(store: Store, where: str, params: list, recipe: Recipe) -> Scan:
    """Pass 1: every hash, link and gap, and the run records; fast path on DuckDB."""
    if not isinstance(store, DuckDBStore):
        return _sql_scan(store, where, params, recipe)
    with store.reader() as cursor:
        return _ArrowScan(recipe).run(store, cursor, where, params)


# --- pass 1 in SQL (PostgreSQL, and the reference for the fast path) -----------------


def _sql_scan(store: Store, where: str, params: list, recipe: Recipe) -> Scan:
    """Hashes recomputed row by row in Python; links and gaps left to SQL."""
    sql = (f"SELECT seq, run_id, {recipe.sql()} AS canonical, hash FROM ledger_entries "
           f"{where} ORDER BY seq")
    bad, count = {}, 0
    for seq, run, canonical, stored in store.rows(sql, params):
        count += 1
        if entry_hash(canonical) != stored:
            bad[seq] = run
    runs = store.rows(f"SELECT count(DISTINCT run_id) FROM ledger_entries {where}", params)
    return Scan(count, runs[0][0], bad, _broken_runs(store, where, params))


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


# --- pass 1 on DuckDB: Arrow batches, hashed while the next ones are computed ---------


class _ArrowScan:
    """Hashes each batch as it arrives and keeps the columns the chain check needs."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.bad: dict[int, str] = {}
        self.seq: list[Any] = []
        self.run_seq: list[Any] = []
        self.run_id: list[Any] = []
        self.done: list[Any] = []  # is the entry a run_complete
        self.records: _Records | None = None  # read after the entries
        self.digests: list[bytes] = []  # recomputed SHA-256, 32 bytes a row
        self.prev: list[Any] = []  # each batch's prev_hash text, 64 bytes a row (no copy)
        self.exact = True  # every value is one the numpy checks can judge exactly

    def run(self, store: DuckDBStore, cursor: Any, where: str, params: list) -> Scan:
        """Consume the batches, then check the chains, the sequence and the records."""
        for batch in _stream(cursor, where, params, self.recipe):
            if isinstance(batch, _Records):
                self.records = batch
            else:
                self.add(batch)
        return self.finish(store, where, params)

    def add(self, batch: Any) -> None:
        """Hash one batch, note its mismatches, keep what the chain check needs."""
        import pyarrow as pa

        digests = _digests(batch.column("canonical"))
        ours = binascii.hexlify(digests)
        stored = _hex_values(batch.column("hash"))
        if stored is None or not stored.equals(pa.py_buffer(ours)):
            self.bad.update(_mismatches(batch, ours))
        prev = _hex_values(batch.column("prev_hash"))
        columns = [batch.column(n) for n in ("seq", "run_seq", "run_id", "done")]
        if prev is None or any(c.null_count for c in columns):
            self.exact = False
        if not self.exact:
            return
        self.digests.append(digests)
        self.prev.append(_hex_rows(prev))
        self.seq.append(columns[0].to_numpy())
        self.run_seq.append(columns[1].to_numpy())
        self.run_id.append(columns[2])
        self.done.append(columns[3].to_numpy(zero_copy_only=False))

    def finish(self, store: DuckDBStore, where: str, params: list) -> Scan:
        """Chain and gap checks over every kept row (in SQL where numpy cannot judge)."""
        entries = _Entries(self) if self.exact and self.seq else None
        if entries is None:
            scan = _sql_structure(store, where, params)
            scan.bad_hashes = self.bad
            return scan
        broken = entries.broken_runs()
        if broken is None:
            broken = _broken_runs(store, where, params)
        agree = self.records is not None and self.records.copies_agree() and (
            self.records.table is not None and entries.records_agree(self.records.table))
        return Scan(entries.count, entries.runs, self.bad, broken, entries.gapless(), agree)


def _sql_structure(store: Store, where: str, params: list) -> Scan:
    """The counts and chain checks in SQL, for a scan the numpy checks cannot judge."""
    count, runs = store.rows(f"SELECT count(*), count(DISTINCT run_id) FROM ledger_entries "
                             f"{where}", params)[0]
    return Scan(count, runs, {}, _broken_runs(store, where, params))


class _Records:
    """The ``ledger_runs`` rows (an Arrow record batch), sent after the last entries, and
    what `_copies_sql` found of the fields they copy from the entries (None: unknown)."""

    def __init__(self, table: Any, copies: tuple[int, list] | None) -> None:
        self.table = table.combine_chunks().to_batches()[0] if table.num_rows else None
        self.copies = copies

    def copies_agree(self) -> bool:
        """True only if every copied field is sure to match (`_copies_sql`): no record
        disagrees, and each policy is written as the writer writes JSON text."""
        if self.copies is None:
            return False
        disagreeing, policies = self.copies
        return not disagreeing and all(_as_written(text) for text in policies or [])


def _as_written(policy: str) -> bool:
    """Whether a record's policy is the writer's JSON text of the value it holds (the SQL
    found it equal, as JSON, to its run_start's policy: together, the writer's text of it)."""
    try:
        return to_json_text(json.loads(policy)) == policy
    except ValueError:
        return False


def _copies_sql(where: str, params: list) -> tuple[str, list]:
    """DuckDB SQL, and its parameters: how many records disagree with the fields their
    entries fix, and the distinct record policies left to `_as_written`.

    It mirrors `forensics.run_record_problems` (workflow, task, policy, started_at from
    the run_start entry; status and ended_at from the run_complete entry; a record for
    every run with a run_start) and only ever clears: anything it cannot judge exactly
    (a payload that is not a JSON object, a value that is not text, a second run_start)
    counts as a disagreement, and that function then names what is wrong. Entries are
    joined to records row by row (a join after a GROUP BY costs DuckDB three times as
    much), and each payload is parsed once. A policy is compared as JSON (both sides as
    DuckDB writes JSON); that its text is also the writer's is `_as_written`'s to say.
    """
    scope = where.replace("WHERE", "AND")
    opening = "try(json_extract_string(payload, ['$.workflow', '$.task', '$.policy']))"
    return f"""
        WITH s AS (SELECT run_id, ts, {opening} AS f FROM ledger_entries
                   WHERE event_type = '{START_EVENT}' {scope}),
             e AS (SELECT run_id, ts, try(json_extract_string(payload, '$.status')) AS status
                   FROM ledger_entries WHERE event_type = '{END_EVENT}' {scope}),
             r AS (SELECT * FROM ledger_runs {where}),
             checked AS (
            SELECT r.policy,
                   r.run_id IS NOT NULL
                   AND (s.run_id IS NULL OR (r.started_at IS NOT DISTINCT FROM s.ts
                        AND r.workflow IS NOT DISTINCT FROM s.f[1]
                        AND r.task IS NOT DISTINCT FROM s.f[2]
                        AND (CASE WHEN r.policy IS NULL THEN s.f[3] IS NULL
                             ELSE CAST(try(json(r.policy)) AS VARCHAR) = s.f[3] END)))
                   AND CASE WHEN e.run_id IS NULL THEN r.status = 'running' AND r.ended_at IS NULL
                            ELSE r.ended_at IS NOT DISTINCT FROM e.ts
                                 AND r.status = coalesce(e.status, 'running') END AS agree
            FROM r FULL JOIN s ON s.run_id = r.run_id LEFT JOIN e ON e.run_id = r.run_id)
        SELECT count(*) FILTER (WHERE NOT coalesce(agree, false)),
               list(DISTINCT policy) FILTER (WHERE policy IS NOT NULL)
        FROM checked""", params * 3  # s, e and r are each scoped


_DONE = object()


def _stream(cursor: Any, where: str, params: list, recipe: Recipe) -> Iterator[Any]:
    """Entry batches, then the run records, read by a helper thread in one transaction.

    DuckDB computes the canonical text of the next batches on its own threads (the GIL is
    released) while the caller hashes the current one.
    """
    entries = (f"SELECT seq, run_id, run_seq, {recipe.quick_sql} AS canonical, hash, "
               f"prev_hash, coalesce(event_type = '{END_EVENT}', false) AS done "
               f"FROM ledger_entries {where}")
    runs = f"SELECT run_id, status, entry_count, head_hash FROM ledger_runs {where}"
    out: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()
    helper = threading.Thread(target=_read, args=(cursor, (entries, runs), params,
                                                  _copies_sql(where, params), out, stop),
                              name="meshflow-verify", daemon=True)
    helper.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while helper.is_alive():  # unblock a helper waiting on a full queue
            with suppress(queue.Empty):
                out.get(timeout=0.05)
        helper.join()


def _read(cursor: Any, sql: tuple[str, str], params: list, copies: tuple[str, list],
          out: queue.Queue[Any], stop: threading.Event) -> None:
    """The helper thread: put each batch, the records, then ``_DONE`` (or the error)."""
    entries, runs = sql
    try:
        cursor.execute("BEGIN TRANSACTION")  # one snapshot for entries and records
        for batch in _arrow_reader(cursor.sql(entries, params=params), BATCH_ROWS):
            if stop.is_set():
                return
            out.put(batch)
        table = cursor.sql(runs, params=params).to_arrow_table()
        out.put(_Records(table, _copies(cursor, *copies)))
        cursor.execute("ROLLBACK")  # it only read; a failed copies query ends it too
    except BaseException as err:  # handed to the caller, which raises it
        out.put(err)
        return
    out.put(_DONE)


def _copies(cursor: Any, sql: str, params: list) -> tuple[int, list] | None:
    """The copied-field check's answer, or None if DuckDB could not run it (the record
    check then falls back to `forensics.run_record_problems`)."""
    try:
        count, policies = cursor.sql(sql, params=params).fetchall()[0]
    except Exception:  # the driver's error: this check only ever clears, never raises
        return None
    return int(count), policies


def _arrow_reader(relation: Any, rows: int) -> Any:
    """Record batches of ``rows`` rows (DuckDB 2 renamed ``fetch_arrow_reader``)."""
    reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    return reader(rows)


def _string_buffers(column: Any) -> tuple[Any, Any]:
    """A string column's value boundaries (numpy) and data buffer (None if empty)."""
    import numpy as np
    import pyarrow as pa

    if column.type not in (pa.string(), pa.large_string()):
        column = column.cast(pa.large_string())
    width = np.int64 if column.type == pa.large_string() else np.int32
    _, offsets, data = column.buffers()
    bounds = np.frombuffer(offsets, dtype=width)[column.offset:column.offset + len(column) + 1]
    return bounds, data


def _digests(column: Any) -> bytes:
    """SHA-256 of every value of a string column, hashed straight from its Arrow buffers."""
    bounds, data = _string_buffers(column)
    return digests(data if data is not None else b"", bounds.tolist())


def _hex_values(column: Any) -> Any:
    """The column's values back to back (an Arrow buffer, not copied) if every one is
    64 characters; else None."""
    import numpy as np
    import pyarrow as pa

    if column.null_count:
        return None
    if len(column) == 0:
        return pa.py_buffer(b"")
    bounds, data = _string_buffers(column)
    if np.any(np.diff(bounds) != HEX_WIDTH):
        return None
    return data.slice(int(bounds[0]), HEX_WIDTH * len(column))


def _mismatches(batch: Any, ours: bytes) -> dict[int, str]:
    """Rows of the batch whose stored hash is not the one recomputed: seq -> run."""
    stored = batch.column("hash").to_pylist()
    seqs, runs = batch.column("seq").to_pylist(), batch.column("run_id").to_pylist()
    return {seqs[i]: runs[i] for i, text in enumerate(stored)
            if ours[i * HEX_WIDTH:(i + 1) * HEX_WIDTH].decode("ascii") != text}


class _Entries:
    """Every scanned row as numpy arrays, with each run's rows grouped in seq order."""

    def __init__(self, scan: _ArrowScan) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(pa.concat_arrays(scan.run_id))
        self.names = encoded.dictionary
        self.codes = encoded.indices.to_numpy()
        self.seq = np.concatenate(scan.seq)
        self.run_seq = np.concatenate(scan.run_seq)
        self.done = np.concatenate(scan.done)
        self.digests = np.frombuffer(b"".join(scan.digests), dtype="V32")
        self.prev = scan.prev
        self.count, self.runs = len(self.seq), len(self.names)
        self.by_seq = np.argsort(self.seq, kind="stable")
        # stable: each run's rows stay in seq order; runs come in dictionary-code order
        self.grouped = self.by_seq[np.argsort(self.codes[self.by_seq], kind="stable")]

    def gapless(self) -> bool:
        """True when the seqs are consecutive integers without duplicates."""
        import numpy as np

        return bool(np.all(np.diff(self.seq[self.by_seq]) == 1))

    def broken_runs(self) -> set[str] | None:
        """Runs that break the chain, like `_broken_runs`; None if seqs repeat.

        With unique seqs, a run is intact in (run_seq, seq) order exactly when it is in
        seq order, so the rows only need grouping by run. Links are compared batch by
        batch in scan order, each row's with its predecessor's hash (usually nearby).
        """
        import numpy as np

        ordered = self.seq[self.by_seq]
        if len(ordered) > 1 and not np.all(np.diff(ordered) > 0):
            return None
        rows = self.grouped
        codes = self.codes[rows]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = codes[1:] != codes[:-1]
        starts, later = rows[first], np.nonzero(~first)[0]
        pred = np.full(self.count, -1, dtype=np.int64)  # each row's predecessor in its run
        pred[rows[later]] = rows[later - 1]
        bad = np.zeros(self.count, dtype=bool)
        bad[starts] = self.run_seq[starts] != 1
        followers = rows[later]
        bad[followers] = self.run_seq[followers] != self.run_seq[rows[later - 1]] + 1
        low = 0
        for prev in self.prev:  # batch by batch, in scan order
            high = low + len(prev)
            bad[low:high] |= prev != self._expected_links(pred[low:high])
            low = high
        return {self.names[int(c)].as_py() for c in np.unique(self.codes[bad])}

    def _expected_links(self, before: Any) -> Any:
        """The ``prev_hash`` each row should hold: its predecessor's hash, or genesis."""
        import numpy as np

        linked = before >= 0
        wanted = self.digests.take(np.maximum(before, 0)).tobytes()
        expected = _hex_rows(binascii.hexlify(wanted)).copy()
        expected[~linked] = _hex_rows(GENESIS.encode("ascii"))[0]
        return expected

    def records_agree(self, records: Any) -> bool:
        """True only if `forensics.run_record_problems` is sure to report nothing.

        It compares each record with its run's entries; this checks the same things, so
        that the query can be skipped on an intact ledger: the run has entries, its last
        position is the recorded count, no entry follows its run_complete, one that has
        ended (status not 'running') has a run_complete, and every entry at the recorded
        count carries the recorded head hash (recomputed hashes: a row whose stored hash
        differs makes its run a suspect, which that check leaves to `classify_run` unless
        the run has no entries). Keep the two in step: tests/test_ledger_verify_scan.py
        compares this path with the plain SQL one on every kind of damage.
        """
        import numpy as np
        import pyarrow.compute as pc

        codes = pc.index_in(records.column("run_id"), value_set=self.names)
        counts = records.column("entry_count")
        if codes.null_count or counts.null_count or records.column("status").null_count:
            return False
        codes, counts = codes.to_numpy(), counts.to_numpy()
        if len(np.unique(codes)) != len(codes):
            return False
        last, last_end, ends = self._run_ends()
        running = pc.equal(records.column("status"), "running").to_numpy(zero_copy_only=False)
        ended = ends[codes] > 0
        return bool(np.all(last[codes] == counts)
                    and np.all(~ended | (last_end[codes] == last[codes]))
                    and np.all(running | ended)
                    and self._heads_agree(records, codes, counts))

    def _run_ends(self) -> tuple[Any, Any, Any]:
        """Per run code: the last run_seq, the last run_seq of a run_complete (meaningless
        without one), and the number of run_complete entries."""
        import numpy as np

        rows = self.grouped
        starts = np.nonzero(np.r_[True, self.codes[rows][1:] != self.codes[rows][:-1]])[0]
        run_seq, done = self.run_seq[rows], self.done[rows]
        last = np.maximum.reduceat(run_seq, starts)
        last_end = np.maximum.reduceat(np.where(done, run_seq, np.iinfo(np.int64).min),
                                       starts)
        ends = np.add.reduceat(done.astype(np.int64), starts)
        return last, last_end, ends

    def _heads_agree(self, records: Any, codes: Any, counts: Any) -> bool:
        """Every entry at a run's recorded count has the recorded head hash (if one is set)."""
        import numpy as np

        heads = records.column("head_hash")
        known = ~heads.is_null().to_numpy(zero_copy_only=False)
        if not known.any():
            return True
        text = _hex_values(heads.filter(known))
        if text is None:
            return False
        slot = np.full(self.runs, -1, dtype=np.int64)  # index into the known heads
        slot[codes[known]] = np.arange(int(known.sum()))
        expected = np.zeros(self.runs, dtype=np.int64)
        expected[codes[known]] = counts[known]
        rows = np.nonzero((slot[self.codes] >= 0)
                          & (self.run_seq == expected[self.codes]))[0]
        ours = _hex_rows(binascii.hexlify(self.digests.take(rows).tobytes()))
        return not np.any(ours != _hex_rows(text).take(slot[self.codes[rows]]))


def _hex_rows(text: bytes) -> Any:
    """64-character digests as a numpy array of 64-byte opaque values (compared bytewise)."""
    import numpy as np

    return np.frombuffer(text, dtype=f"V{HEX_WIDTH}")


def _unique(problems: list[Finding]) -> list[Finding]:
    seen, unique = set(), []
    for problem in problems:
        key = (problem.seq, problem.run_id, problem.kind)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
