"""Ledger forensics: each kind of damage is named with its own kind and place, on DuckDB
and on PostgreSQL, and clean ledgers of every shape verify valid (no false positives).

Ledgers come from real capstone runs (23 events each). Damage is done with plain SQL
from outside the toolkit, as someone with write access to the database would do it;
where a forger needs valid hashes, they are computed with the documented recipe.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from meshflow_nb import AgentResult, WorkflowDefinition
from meshflow_nb.events import EventType, MeshEvent
from meshflow_nb.ledger import GENESIS, Anchor, LedgerError, ReplayLedger, save_anchors
from meshflow_nb.ledger.canonical import canonical_text, entry_hash
from meshflow_nb.ledger.forensics import Damage
from meshflow_nb.ledger.schema import ENTRY_COLUMNS, RUN_COLUMNS
from meshflow_nb.pipelines import build_capstone_pipeline

EVENTS = 23  # entries per capstone run
COLUMNS = [name for name, _ in ENTRY_COLUMNS]
INTEGERS = {"seq", "run_seq", "tokens_in", "tokens_out"}
DECIMALS = {"uncertainty", "cost_usd", "carbon_g"}


pytestmark = pytest.mark.usefixtures("mock_mode")


@pytest.fixture
def other_location(request, location, tmp_path) -> Iterator[str]:
    """A second, empty ledger on the same backend (for imports)."""
    if not location.startswith("postgres"):
        yield str(tmp_path / "other.duckdb")
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


# --- doing damage from outside the toolkit --------------------------------------


class Db:
    """Raw SQL on the ledger's database, bypassing the toolkit."""

    def __init__(self, ledger: ReplayLedger) -> None:
        self.ledger = ledger
        self.pg = ledger.location.startswith("postgres")

    @contextmanager
    def _cursor(self) -> Iterator[Callable[[str, Any], list]]:
        if self.pg:
            with psycopg.connect(self.ledger.location, autocommit=True) as con:
                def run(sql: str, params: Any = ()) -> list:
                    cur = con.execute(sql.replace("?", "%s"), list(params) or None)
                    return cur.fetchall() if cur.description else []
                yield run
        else:
            self.ledger.store.close()  # DuckDB: one process, one connection at a time
            con = duckdb.connect(self.ledger.location)
            try:
                def run(sql: str, params: Any = ()) -> list:
                    cur = con.execute(sql, list(params))
                    return cur.fetchall() if cur.description else []
                yield run
            finally:
                con.close()

    def sql(self, statement: str, params: Any = ()) -> list:
        with self._cursor() as run:
            return run(statement, params)

    def entries(self, run_id: str | None = None) -> list[dict]:
        """Rows as their canonical text values (what the hash is computed over)."""
        cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in COLUMNS)
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        rows = self.sql(f"SELECT {cols} FROM ledger_entries {where}", params)
        out = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
        for row in out:
            row["seq"], row["run_seq"] = int(row["seq"]), int(row["run_seq"])
        return sorted(out, key=lambda r: r["seq"])

    def replace(self, rows: list[dict]) -> None:
        """Swap the whole table for ``rows`` (how a forger rewrites history)."""
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        with self._cursor() as run:
            run("DELETE FROM ledger_entries")
            for row in rows:
                run(f"INSERT INTO ledger_entries ({names}) VALUES ({marks})",
                    [_typed(c, row[c]) for c in COLUMNS])

    def insert(self, rows: list[dict]) -> None:
        """Add rows to the entries as they are (a forger's own rows)."""
        with self._cursor() as run:
            for row in rows:
                run(f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in COLUMNS)})", [_typed(c, row[c]) for c in COLUMNS])

    def record(self, run_id: str) -> dict:
        """The run's record in ledger_runs, column by column."""
        with self._cursor() as run:
            names = [n for n, _ in RUN_COLUMNS]
            (values,) = run(f"SELECT {', '.join(names)} FROM ledger_runs WHERE run_id = ?",
                            [run_id])
        return dict(zip(names, values, strict=True))

    def insert_record(self, record: dict) -> None:
        names = list(record)
        self.sql(f"INSERT INTO ledger_runs ({', '.join(names)}) VALUES "
                 f"({', '.join('?' for _ in names)})", [record[n] for n in names])

    def fix_record(self, run_id: str, rows: list[dict], *, ended: bool = True) -> None:
        """Make the run's record agree with ``rows`` so that it gives nothing away."""
        last = max(rows, key=lambda r: r["run_seq"])
        self.sql("UPDATE ledger_runs SET entry_count = ?, head_hash = ? WHERE run_id = ?",
                 [last["run_seq"], last["hash"], run_id])
        if not ended:
            self.sql("UPDATE ledger_runs SET status = 'running', ended_at = NULL "
                     "WHERE run_id = ?", [run_id])


def _typed(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in INTEGERS:
        return int(value)
    if column in DECIMALS:
        return Decimal(value)
    return value


def rehash(row: dict) -> dict:
    row["hash"] = entry_hash(canonical_text(row))
    return row


def rechain(rows: list[dict]) -> None:
    """Recompute every link and hash of one run's rows, in run order."""
    previous = GENESIS
    for row in sorted(rows, key=lambda r: r["run_seq"]):
        row["prev_hash"] = previous
        previous = rehash(row)["hash"]


def capstone(location: str, runs: int = 1) -> tuple[ReplayLedger, Db, list[str]]:
    ledger = ReplayLedger(location)
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    ids = [workflow.run(f"task {i}").run_id for i in range(runs)]
    ledger.flush()
    return ledger, Db(ledger), ids


def found(check) -> list[tuple[str, int | None, str | None]]:
    return [(p.kind, p.seq, p.run_id) for p in check.problems]


def assert_one_sentence(check) -> None:
    for problem in check.problems:
        text = problem.message
        assert text and "\n" not in text and not text.endswith("."), text
        assert text.count(". ") == 0, text


# --- the detection matrix -------------------------------------------------------


def test_1_edited_payload_is_named_at_its_seq(location):
    """The course's exercise 4: one UPDATE of an output."""
    ledger, db, (run,) = capstone(location)
    db.sql("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    check = ledger.verify_chain()
    assert not check.valid and check.first_bad_seq == 2
    assert found(check) == [("edited", 2, run)]
    assert str(check).splitlines()[1] == (
        f"  - seq 2: edited: the node_start entry of researcher at seq 2 (position 2 of run "
        f"{run}) was changed after it was written: its contents no longer match its stored "
        "hash")
    assert ledger.verify_chain(run).problems == check.problems
    assert_one_sentence(check)


@pytest.mark.parametrize("seq", [5, EVENTS], ids=["middle", "last"])
def test_2_edited_and_rehashed_row_is_named(location, seq):
    ledger, db, (run,) = capstone(location)
    rows = db.entries()
    row = rehash({**rows[seq - 1], "output": json.dumps("a better analysis")})
    db.sql("UPDATE ledger_entries SET output = ?, hash = ? WHERE seq = ?",
           [row["output"], row["hash"], seq])
    check = ledger.verify_chain()
    assert found(check) == [("edited_and_rehashed", seq, run)]
    assert_one_sentence(check)


def test_3_rechained_edit_is_seen_only_against_an_anchor(location):
    """The reason anchors exist: an edit followed by recomputing every later hash (and
    the run's head in ledger_runs) leaves a chain that is consistent with itself, so the
    table alone verifies. Only the head hash kept elsewhere shows the change."""
    ledger, db, (run,) = capstone(location)
    anchor = ledger.anchor(run)
    rows = db.entries()
    rows[4]["output"] = json.dumps("a quietly different analysis")
    rechain(rows)
    db.replace(rows)
    db.fix_record(run, rows)
    assert ledger.verify_chain().valid
    check = ledger.verify_chain(anchor=anchor)
    assert found(check) == [("rewritten", None, run)]
    assert_one_sentence(check)


def test_4_deleted_row_is_named_at_its_position(location):
    ledger, db, runs = capstone(location, runs=2)
    db.sql("DELETE FROM ledger_entries WHERE seq = 10")
    check = ledger.verify_chain()
    assert found(check) == [("deleted", 10, runs[0])]
    assert "position 10 of run" in check.problems[0].message
    assert ledger.verify_chain(anchor=[ledger.anchor(r) for r in runs]).problems \
        == check.problems  # the anchor adds nothing the chain does not already show


def test_4b_deleted_rows_renumbered_but_not_rehashed_are_still_deleted(location):
    ledger, db, runs = capstone(location, runs=2)
    rows = [r for r in db.entries() if r["seq"] not in (10, 11)]
    for row in rows:
        if row["seq"] > 11:
            row["seq"] -= 2
            if row["run_id"] == runs[0]:
                row["run_seq"] -= 2
    db.replace(rows)
    check = ledger.verify_chain()
    kinds = found(check)
    assert ("deleted", 10, runs[0]) in kinds
    assert {k for k, _, _ in kinds} == {"deleted", "renumbered"}
    assert [r for k, _, r in kinds if k == "renumbered"] == [runs[1]]


def delete_renumber_and_rehash(db: Db, runs: list[str], seq: int) -> None:
    """Delete the entry at ``seq`` (of the first run), renumber everything after it and
    recompute every chain and record, so that the table agrees with itself again."""
    rows = [r for r in db.entries() if r["seq"] != seq]
    for row in rows:
        if row["seq"] > seq:
            row["seq"] -= 1
            row["run_seq"] -= 1 if row["run_id"] == runs[0] else 0
    for run in runs:
        rechain([r for r in rows if r["run_id"] == run])
        db.fix_record(run, [r for r in rows if r["run_id"] == run])
    db.replace(rows)


def test_5_deleted_row_renumbered_and_rehashed_needs_an_anchor(location):
    """Deleting an entry and then renumbering and re-chaining everything after it leaves
    a gapless ledger of valid chains: only anchors show it. The honest kind is
    ``rewritten``: the run still ends with run_complete, so its end was not cut off;
    entries went missing from inside it and its chain was recomputed. The later run,
    renumbered and re-hashed to close the hole, is reported rewritten too."""
    ledger, db, runs = capstone(location, runs=2)
    anchors = [ledger.anchor(r) for r in runs]
    delete_renumber_and_rehash(db, runs, 10)
    assert ledger.verify_chain().valid
    check = ledger.verify_chain(anchor=anchors)
    assert sorted(found(check)) == sorted([("rewritten", None, r) for r in runs])
    (shortened,) = [p for p in check.problems if p.run_id == runs[0]]
    assert "has 22 entries where its anchor recorded 23" in shortened.message
    assert_one_sentence(check)


def test_6_forged_row_inserted_mid_chain_is_named(location):
    """A fake approval by mallory linked to the entry before it, with a valid hash of
    its own; the later entries (of the run and of the ledger) renumbered, not re-hashed."""
    ledger, db, runs = capstone(location, runs=2)
    rows = db.entries()
    pause = next(r for r in rows if r["run_id"] == runs[0] and r["event_type"] == "gate_pause")
    at = pause["seq"] + 1
    for row in rows:
        if row["seq"] >= at:
            row["seq"] += 1
            if row["run_id"] == runs[0]:
                row["run_seq"] += 1
    forged = rehash({**pause, "seq": at, "run_seq": pause["run_seq"] + 1,
                     "event_type": "gate_resume", "output": None,
                     "payload": json.dumps({"approved": True, "reviewer": "mallory",
                                            "reason": "looks fine"}, sort_keys=True),
                     "prev_hash": pause["hash"]})
    db.replace([*rows, forged])
    check = ledger.verify_chain()
    assert found(check)[0] == ("inserted", at, runs[0])
    assert "gate_resume entry of hitl_gate at seq 19" in check.problems[0].message
    assert {k for k, _, r in found(check)[1:]} == {"renumbered"}  # the second run, moved
    assert [r for _, _, r in found(check)[1:]] == [runs[1]]
    assert_one_sentence(check)


@pytest.mark.parametrize("fix_record", [False, True], ids=["record-left", "record-fixed"])
def test_6b_forged_row_appended_after_run_complete(location, fix_record):
    ledger, db, runs = capstone(location, runs=2)
    rows = db.entries(runs[0])
    last = rows[-1]
    forged = rehash({**last, "seq": 2 * EVENTS + 1, "run_seq": EVENTS + 1,
                     "event_type": "gate_resume", "node_id": "hitl_gate", "role": "human",
                     "output": None, "payload": json.dumps({"reviewer": "mallory"}),
                     "prev_hash": last["hash"]})
    db.sql(f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join('?' for _ in COLUMNS)})", [_typed(c, forged[c]) for c in COLUMNS])
    if fix_record:
        db.fix_record(runs[0], [*rows, forged])
    expected = [("inserted", 2 * EVENTS + 1, runs[0])]
    check = ledger.verify_chain()
    assert found(check) == expected
    assert found(ledger.verify_chain(anchor=ledger.anchor(runs[1]))) == expected
    assert_one_sentence(check)


@pytest.mark.parametrize("pair,columns", [
    ((5, 6), ("seq",)),
    ((5, 6), ("seq", "run_seq")),
    ((EVENTS, EVENTS + 1), ("seq",)),
], ids=["seq", "seq-and-run-seq", "across-runs"])
def test_7_swapped_rows_are_reordered_naming_both(location, pair, columns):
    ledger, db, runs = capstone(location, runs=2)
    rows = db.entries()
    a, b = rows[pair[0] - 1], rows[pair[1] - 1]
    for column in columns:
        a[column], b[column] = b[column], a[column]
    db.replace(rows)
    check = ledger.verify_chain()
    ((kind, seq, run),) = found(check)
    assert (kind, seq) == ("reordered", pair[0]) and run in runs
    message = check.problems[0].message
    assert f"seq {pair[0]} " in message and f"seq {pair[1]} " in message
    assert_one_sentence(check)


def test_8_truncated_tail_with_the_record_fixed_needs_an_anchor(location):
    ledger, db, runs = capstone(location, runs=2)
    anchor = ledger.anchor(runs[1])
    db.sql("DELETE FROM ledger_entries WHERE seq > ?", [2 * EVENTS - 3])
    db.fix_record(runs[1], db.entries(runs[1]), ended=False)
    check = ledger.verify_chain()
    assert check.valid and check.incomplete_runs == [runs[1]]  # looks like a crashed run
    check = ledger.verify_chain(anchor=anchor)
    assert found(check) == [("truncated", 2 * EVENTS - 2, runs[1])]
    assert_one_sentence(check)


def test_8b_truncated_tail_is_seen_without_anchor_when_the_record_is_left(location):
    ledger, db, runs = capstone(location, runs=2)
    db.sql("DELETE FROM ledger_entries WHERE seq > ?", [2 * EVENTS - 3])
    check = ledger.verify_chain()
    assert found(check) == [("truncated", 2 * EVENTS - 2, runs[1])]
    assert "the last 3 entries were removed" in check.problems[0].message


def test_8c_truncated_tail_before_another_run_shows_as_a_hole(location):
    ledger, db, runs = capstone(location, runs=2)
    db.sql("DELETE FROM ledger_entries WHERE seq BETWEEN ? AND ?", [EVENTS - 2, EVENTS])
    db.fix_record(runs[0], db.entries(runs[0]), ended=False)
    check = ledger.verify_chain()
    assert found(check) == [("truncated", EVENTS - 2, runs[0])]


@pytest.mark.parametrize("drop_record", [True, False], ids=["record-dropped", "record-left"])
def test_9_a_whole_run_removed(location, drop_record):
    ledger, db, runs = capstone(location, runs=3)
    db.sql("DELETE FROM ledger_entries WHERE run_id = ?", [runs[1]])
    if drop_record:
        db.sql("DELETE FROM ledger_runs WHERE run_id = ?", [runs[1]])
    check = ledger.verify_chain()
    assert found(check) == [("run_removed", EVENTS + 1, None if drop_record else runs[1])]
    assert f"positions {EVENTS + 1}-{2 * EVENTS}" in check.problems[0].message
    assert_one_sentence(check)


def test_9b_the_last_run_removed_needs_its_anchor(location):
    ledger, db, runs = capstone(location, runs=2)
    anchors = [ledger.anchor(r) for r in runs]
    db.sql("DELETE FROM ledger_entries WHERE run_id = ?", [runs[1]])
    db.sql("DELETE FROM ledger_runs WHERE run_id = ?", [runs[1]])
    assert ledger.verify_chain().valid  # nothing after it, no record: no trace in the table
    assert found(ledger.verify_chain(anchor=anchors)) == [("run_removed", None, runs[1])]


def test_10_run_rewritten_from_genesis_needs_an_anchor_kept_in_a_file(location, tmp_path):
    ledger, db, runs = capstone(location, runs=2)
    path = tmp_path / "anchors.json"
    save_anchors([ledger.anchor(r) for r in runs], path)
    rows = db.entries()
    first = rows[EVENTS]
    first["payload"] = first["payload"].replace('"task 1"', '"a different task"')
    rechain(rows[EVENTS:])
    db.replace(rows)
    db.fix_record(runs[1], rows[EVENTS:])
    assert found(ledger.verify_chain()) == [("run_record_edited", None, runs[1])]  # its task
    db.sql("UPDATE ledger_runs SET task = 'a different task' WHERE run_id = ?", [runs[1]])
    assert ledger.verify_chain().valid
    check = ledger.verify_chain(anchor=path)
    assert check.anchors_checked == 2
    assert found(check) == [("rewritten", None, runs[1])]


def test_anchor_round_trips_through_a_file(location, tmp_path):
    ledger, _, (run,) = capstone(location)
    ledger.anchor(run).save(tmp_path / "a.json")
    (loaded,) = Anchor.load(tmp_path / "a.json")
    assert loaded == ledger.anchor(run) or (loaded.run_id, loaded.length, loaded.head_hash) \
        == (run, EVENTS, ledger.anchor(run).head_hash)
    check = ledger.verify_chain(anchor=tmp_path / "a.json")
    assert check.valid and check.anchors_checked == 1


def test_an_anchor_of_a_running_run_accepts_its_later_entries(location):
    ledger, db, (run,) = capstone(location)
    rows = db.entries(run)
    early = Anchor(run, 10, rows[9]["hash"], complete=False)
    assert ledger.verify_chain(anchor=early).valid
    closed = Anchor(run, 10, rows[9]["hash"], complete=True)
    assert found(ledger.verify_chain(anchor=closed)) == [("inserted", 11, run)]


@pytest.mark.parametrize("which", [0, 1], ids=["first-run", "second-run"])
def test_exported_run_imports_and_verifies_and_tampering_shows(location, other_location,
                                                               which):
    ledger, _, runs = capstone(location, runs=2)
    exported = ledger.export_run(runs[which])
    other = ReplayLedger(other_location)
    assert other.import_run(exported) == runs[which]
    check = other.verify_chain()  # the second run keeps seq 24-46: no hole before it
    assert check.valid and check.entries_checked == EVENTS, check.report()
    assert other.verify_chain(anchor=ledger.anchor(runs[which])).valid
    seq = which * EVENTS + 9
    Db(other).sql("UPDATE ledger_entries SET output = '\"forged\"' WHERE seq = ?", [seq])
    assert found(other.verify_chain()) == [("edited", seq, runs[which])]


def test_tampered_export_is_detected_after_import(location, other_location):
    ledger, _, (run,) = capstone(location)
    data = json.loads(ledger.export_run(run))
    (entry,) = [e for e in data["entries"] if int(e["seq"]) == 9]
    entry["output"] = json.dumps("edited in the archive")
    other = ReplayLedger(other_location)
    other.import_run(json.dumps(data))
    assert found(other.verify_chain()) == [("edited", 9, run)]


def test_combined_damage_is_each_named(location):
    ledger, db, runs = capstone(location, runs=3)
    db.sql("""UPDATE ledger_entries SET output = '"x"' WHERE seq = 3""")
    db.sql("DELETE FROM ledger_entries WHERE seq = 30")
    db.sql("DELETE FROM ledger_entries WHERE run_id = ?", [runs[2]])
    check = ledger.verify_chain()
    assert found(check) == [("edited", 3, runs[0]), ("deleted", 30, runs[1]),
                            ("run_removed", None, runs[2])]


# --- the run records: every field is a copy of the chain -------------------------

RECORD_EDITS = {
    "status": ("status", "failed"),
    "task": ("task", "a task nobody asked for"),
    "workflow": ("workflow", "another_pipeline"),
    "policy": ("policy", '{"mode": "lax"}'),
    "started_at": ("started_at", "2020-01-01T00:00:00.000000+00:00"),
    "ended_at": ("ended_at", None),
}


@pytest.mark.parametrize("edit", RECORD_EDITS, ids=list(RECORD_EDITS))
def test_11_an_edited_run_record_is_named_with_its_field(location, edit):
    ledger, db, runs = capstone(location, runs=2)
    column, value = RECORD_EDITS[edit]
    db.sql(f"UPDATE ledger_runs SET {column} = ? WHERE run_id = ?", [value, runs[0]])
    check = ledger.verify_chain()
    assert found(check) == [("run_record_edited", None, runs[0])]
    assert f"its {column} reads " in check.problems[0].message
    assert found(ledger.verify_chain(runs[0])) == found(check)
    assert ledger.verify_chain(runs[1]).valid
    assert_one_sentence(check)


def test_11b_every_edited_field_of_a_record_is_named(location):
    ledger, db, (run,) = capstone(location)
    db.sql("UPDATE ledger_runs SET status = 'failed', task = 'x', workflow = 'w' "
           "WHERE run_id = ?", [run])
    check = ledger.verify_chain()
    assert found(check) == [("run_record_edited", None, run)]
    message = check.problems[0].message
    assert all(f"its {c} reads" in message for c in ("status", "task", "workflow"))
    assert "its run_complete entry (seq 23) says 'completed'" in message
    assert_one_sentence(check)


def test_11c_a_deleted_run_record_is_named(location):
    ledger, db, runs = capstone(location, runs=2)
    db.sql("DELETE FROM ledger_runs WHERE run_id = ?", [runs[1]])
    check = ledger.verify_chain()
    assert found(check) == [("run_record_deleted", None, runs[1])]
    assert f"run {runs[1]} has 23 entries (seq 24-46" in check.problems[0].message
    assert found(ledger.verify_chain(runs[1])) == found(check)
    assert_one_sentence(check)


def test_11d_a_record_is_still_checked_while_its_run_is_running(location):
    """A paused or crashed run has no run_complete: its record says running, no end."""
    ledger, db, (run,) = capstone(location)
    db.sql("DELETE FROM ledger_entries WHERE seq > 20")
    db.fix_record(run, db.entries(run), ended=False)
    assert ledger.verify_chain().valid
    db.sql("UPDATE ledger_runs SET ended_at = '2026-01-01T00:00:00+00:00' WHERE run_id = ?",
           [run])
    check = ledger.verify_chain()
    assert found(check) == [("run_record_edited", None, run)]
    assert "the run has no run_complete entry" in check.problems[0].message


# --- the canonical text: NULL, \N and the separator -------------------------------


def test_12_null_rewritten_as_backslash_n_is_edited_and_unreadable(location):
    r"""Recipe 2 writes the text \N as \\N, so a NULL changed into it no longer hashes
    the same; reading the run back names the row instead of failing on its JSON."""
    ledger, db, (run,) = capstone(location)
    nulls = [r["seq"] for r in db.entries() if r["output"] is None]
    db.sql("UPDATE ledger_entries SET output = '\\N' WHERE output IS NULL")
    check = ledger.verify_chain()
    assert found(check) == [("edited", seq, run) for seq in nulls]
    with pytest.raises(LedgerError) as err:
        ledger.events(run)
    assert str(err.value).startswith(f"cannot read back the entry at seq {nulls[0]} of run "
                                     f"{run} from the ")
    assert "its output '\\N' is not the JSON text the ledger writes" in str(err.value)
    assert not isinstance(err.value.__cause__, LedgerError)  # the JSON error, kept as cause


def test_12b_a_separator_moved_across_a_field_boundary_is_edited(location):
    """node_id 'a<US>b' with role 'c' and node_id 'a' with role 'b<US>c' were one text."""
    ledger = ReplayLedger(location)
    for seq, kind in ((1, EventType.RUN_START), (2, EventType.NODE_START)):
        ledger.record(MeshEvent("r-sep", seq, "2026-01-01T00:00:00.000000+00:00", kind,
                                node_id="a\x1fb" if seq == 2 else None,
                                role="c" if seq == 2 else None, payload={}))
    ledger.flush()
    assert ledger.verify_chain().valid
    Db(ledger).sql("UPDATE ledger_entries SET node_id = 'a', role = 'b' || chr(31) || 'c' "
                   "WHERE seq = 2")
    assert found(ledger.verify_chain()) == [("edited", 2, "r-sep")]


def test_12c_unknown_runs_are_a_ledger_error_not_an_empty_success(location):
    ledger, db, runs = capstone(location)
    with pytest.raises(LedgerError, match=r"^no run 'nosuchrun' in the .* ledger at "):
        ledger.verify_chain("nosuchrun")
    db.sql("DELETE FROM ledger_entries")  # the record alone still names the run
    assert found(ledger.verify_chain(runs[0])) == [("run_removed", None, runs[0])]


# --- the recipe marker --------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_meta SET value = '1'",
    "DELETE FROM ledger_meta",
    "DROP TABLE ledger_meta",
    "UPDATE ledger_meta SET value = 'seven'",
], ids=["recipe-1", "deleted", "dropped", "unknown"])
def test_13_a_changed_recipe_marker_is_named_once(location, statement):
    """A marker naming another recipe would fail every entry (no recipe 2 text is a
    recipe 1 text): the verifier names the marker once and checks with the entries'."""
    ledger, db, (run,) = capstone(location)
    db.sql(statement)
    check = ledger.verify_chain()
    assert found(check) == [("recipe_changed", None, None)]
    assert str(check.problems[0]).startswith("ledger: recipe_changed: the ledger")
    db.sql("UPDATE ledger_entries SET output = '\"x\"' WHERE seq = 3")
    assert found(ledger.verify_chain()) == [("edited", 3, run), ("recipe_changed", None, None)]
    assert_one_sentence(check)


# --- the ledger anchor: the whole ledger up to its head --------------------------


def forge_run(db: Db, template: str, run_id: str) -> list[dict]:
    """A complete run copied from run ``template`` under another id and appended after
    the ledger's last entry, with valid hashes, links and a record that agrees."""
    rows = db.entries(template)
    after = max(r["seq"] for r in db.entries())
    forged = [{**row, "run_id": run_id, "seq": after + row["run_seq"]} for row in rows]
    rechain(forged)
    db.insert(forged)
    db.insert_record({**db.record(template), "run_id": run_id, "head_hash": forged[-1]["hash"]})
    return forged


def test_14_a_forged_run_after_the_ledger_anchor_is_unanchored(location, tmp_path):
    ledger, db, runs = capstone(location, runs=2)
    save_anchors([*(ledger.anchor(r) for r in runs), ledger.anchor()], tmp_path / "a.json")
    forge_run(db, runs[0], "f0rged0000000000")
    assert ledger.verify_chain().valid  # consistent in every way the table can show
    assert ledger.verify_chain(anchor=[ledger.anchor(r) for r in runs]).valid
    check = ledger.verify_chain(anchor=tmp_path / "a.json")
    assert found(check) == [("unanchored", 2 * EVENTS + 1, "f0rged0000000000")]
    assert "23 entries (seq 47-69, run f0rged0000000000) were written after the newest " \
           "ledger anchor (seq 46" in check.problems[0].message
    assert check.anchors_checked == 3
    assert_one_sentence(check)


def test_14b_the_first_run_removed_with_its_record_needs_the_ledger_anchor(location):
    ledger, db, runs = capstone(location, runs=2)
    head = ledger.anchor()
    db.sql("DELETE FROM ledger_entries WHERE run_id = ?", [runs[0]])
    db.sql("DELETE FROM ledger_runs WHERE run_id = ?", [runs[0]])
    assert ledger.verify_chain().valid  # like a ledger imported from seq 24 on
    check = ledger.verify_chain(anchor=head)
    assert found(check) == [("run_removed", None, None)]
    assert check.problems[0].message == (
        "the ledger anchor taken at seq 46 (46 entries in 2 runs) no longer holds: 23 entries "
        "in 1 run lie up to seq 46: 1 whole run was removed")


def test_14c_the_ledger_anchor_sees_a_rewrite_anywhere_before_its_head(location):
    ledger, db, runs = capstone(location, runs=2)
    head = ledger.anchor()
    rows = db.entries()
    rows[4]["output"] = json.dumps("a quietly different analysis")
    rechain(rows[:EVENTS])
    db.replace(rows)
    db.fix_record(runs[0], rows[:EVENTS])
    assert ledger.verify_chain().valid
    assert found(ledger.verify_chain(anchor=head)) == [("rewritten", None, None)]


def test_14d_the_ledger_anchor_sees_entries_removed_and_renumbered(location):
    ledger, db, runs = capstone(location, runs=2)
    head = ledger.anchor()
    delete_renumber_and_rehash(db, runs, 10)
    assert ledger.verify_chain().valid
    check = ledger.verify_chain(anchor=head)
    assert found(check) == [("deleted", None, None)]
    assert "(the ledger now ends at seq 45): 1 entry was removed" in check.problems[0].message


def test_14e_the_ledger_anchor_sees_an_entry_inserted_before_its_head(location):
    ledger, db, _ = capstone(location, runs=2)
    head = ledger.anchor()
    rows = db.entries()
    for row in rows:
        row["seq"] += 1
    forged = rehash({**rows[0], "seq": 1, "run_id": "sneaky", "run_seq": 1,
                     "prev_hash": GENESIS})
    db.replace([forged, *rows])
    check = ledger.verify_chain(anchor=head)
    assert ("inserted", None, None) in found(check)


def test_14f_only_the_newest_ledger_anchor_bounds_what_is_unanchored(location):
    ledger, _, runs = capstone(location, runs=1)
    older = ledger.anchor()
    ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run("later")
    newer = ledger.anchor()
    assert (older.last_seq, newer.last_seq, newer.runs, newer.length) == (23, 46, 2, 46)
    assert ledger.verify_chain(anchor=[older, newer]).valid
    later = found(ledger.verify_chain(anchor=older))
    assert [(k, s) for k, s, _ in later] == [("unanchored", 24)]
    assert ledger.verify_chain(runs[0], anchor=older).valid  # ledger anchors: whole ledger


def test_14g_a_ledger_anchor_round_trips_through_a_file_beside_run_anchors(
        location, other_location, tmp_path):
    ledger, _, runs = capstone(location, runs=2)
    anchors = [ledger.anchor(runs[0]), ledger.anchor()]
    save_anchors(anchors, tmp_path / "anchors.json")
    assert Anchor.load(tmp_path / "anchors.json") == anchors
    saved = json.loads((tmp_path / "anchors.json").read_text())
    assert "last_seq" not in saved[0] and (saved[1]["last_seq"], saved[1]["runs"]) == (46, 2)
    assert anchors[1].covers_ledger and not anchors[0].covers_ledger
    assert ledger.verify_chain(anchor=tmp_path / "anchors.json").valid
    with pytest.raises(LedgerError, match="has no entries yet: there is nothing to anchor"):
        ReplayLedger(other_location).anchor()


# --- zero false positives -------------------------------------------------------

AWKWARD: dict[str, Any] = {
    "unicode": "Grüße 😀 — 日本語, שלום עולם مرحبا, e\u0301 a\u0308 n\u0303",
    "empty": "",
    "none": None,
    "big": "x" * 1_000_000,
    "nested": {"ключ": ["a", {"日本": [1, 2.5, None, True]}], "nested": [[[]], {}],
               "emoji 😀": "ok"},
    "separators": "a\x1fb \\N c\\\\d \"quoted\" 'single' \t\r\n\x01\x07\x1b\x7f end",
    "null_text": "\\N",
    "tiny_cost": AgentResult(text="tiny", cost_usd=1e-12, uncertainty=0.0, tokens_in=1),
    "tenth": AgentResult(text="tenth", cost_usd=0.1, uncertainty=1.0, tokens_out=7),
    "third": AgentResult(text="third", cost_usd=1 / 3, uncertainty=1 / 3, tokens_in=3,
                         tokens_out=4),
    "dict_result": AgentResult(text="d", output={"a": [1, {"b": "ü"}], "c": 1e-12}),
}


def awkward_workflow() -> WorkflowDefinition:
    workflow = WorkflowDefinition("awkward ünïcode ✓")
    previous = None
    for name, value in AWKWARD.items():
        workflow.add_node(name, (lambda v: lambda ctx: v)(value))
        if previous:
            workflow.add_edge(previous, name)
        previous = name
    return workflow


def assert_gapless(ledger: ReplayLedger, count: int) -> None:
    low, high, n = ledger.sql("SELECT min(seq), max(seq), count(*) FROM ledger_entries"
                              ).iloc[0].tolist()
    assert (int(low), int(high), int(n)) == (1, count, count)


def test_awkward_values_verify_valid(location):
    ledger = ReplayLedger(location)
    workflow = ledger.attach(awkward_workflow())
    results = [workflow.run(task) for task in ("Grüße 😀 \x1f \\N \"q\"", "", "plain")]
    assert all(r.status.value == "completed" for r in results), results[0].error
    check = ledger.verify_chain()
    assert check.valid, check.report()
    per_run = 2 * len(AWKWARD) + 2
    assert check.entries_checked == 3 * per_run
    assert_gapless(ledger, 3 * per_run)
    anchors = [ledger.anchor(r.run_id) for r in results]
    assert ledger.verify_chain(anchor=anchors).valid
    assert all(ledger.verify_chain(r.run_id).valid for r in results)
    events = ledger.events(results[0].run_id)
    assert [e.output for e in events] == [e.output for e in results[0].events]


def test_failed_and_rejected_runs_verify_valid(location):
    def broken(ctx):
        raise RuntimeError("agent failure with ünïcode 😀")

    ledger = ReplayLedger(location)
    failing = ledger.attach(WorkflowDefinition("failing").add_node("boom", broken))
    rejected = ledger.attach(WorkflowDefinition("rejected").add_node("a", lambda ctx: "x")
                             .add_edge("a", "missing"))
    statuses = {failing.run("t").status.value, rejected.run("t").status.value}
    assert "completed" not in statuses
    check = ledger.verify_chain()
    assert check.valid and check.runs_checked == 2, check.report()


def test_many_concurrent_runs_verify_valid(location):
    ledger = ReplayLedger(location)
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    handles = [workflow.start(f"task {i}") for i in range(20)]
    results = [h.result(timeout=60) for h in handles]
    check = ledger.verify_chain()
    assert check.valid and check.runs_checked == 20, check.report()
    assert_gapless(ledger, 20 * EVENTS)
    assert ledger.verify_chain(anchor=[ledger.anchor(r.run_id) for r in results]).valid
    runs = ledger.runs()
    assert set(runs["status"]) == {"completed"} and set(runs["entry_count"]) == {EVENTS}


def test_concurrent_runs_damage_is_still_located(location):
    """Interleaved runs: an edit and a deletion in one run do not implicate the others."""
    ledger = ReplayLedger(location)
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    results = [h.result(timeout=60) for h in [workflow.start(f"t{i}") for i in range(5)]]
    ledger.flush()
    db = Db(ledger)
    victim = results[2].run_id
    rows = db.entries(victim)
    db.sql("DELETE FROM ledger_entries WHERE seq = ?", [rows[9]["seq"]])
    db.sql("UPDATE ledger_entries SET output = '\"x\"' WHERE seq = ?", [rows[4]["seq"]])
    check = ledger.verify_chain()
    assert found(check) == [("edited", rows[4]["seq"], victim),
                            ("deleted", rows[9]["seq"], victim)]


def test_concurrent_first_events_share_one_writer(tmp_path, monkeypatch):
    """One writer per ledger, however many runs start at once (the writer's promise)."""
    from meshflow_nb.ledger import writer as writer_module

    made: list[object] = []
    slow_init = writer_module.LedgerWriter.__init__

    def init(self, *args, **kwargs):
        made.append(self)
        time.sleep(0.05)  # widen the window a real scheduler hits now and then
        slow_init(self, *args, **kwargs)

    monkeypatch.setattr(writer_module.LedgerWriter, "__init__", init)
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    barrier = threading.Barrier(4)

    def first_event(n: int) -> None:
        barrier.wait()
        ledger.record(MeshEvent(run_id=f"run{n}", seq=1, ts="2026-01-01T00:00:00+00:00",
                                type=EventType.RUN_START, payload={}))

    threads = [threading.Thread(target=first_event, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.flush()
    assert len(made) == 1


def test_the_forensics_page_explains_every_kind():
    page = (Path(__file__).resolve().parents[1] / "docs" / "ledger-forensics.md").read_text(
        encoding="utf-8")
    kinds = {v for k, v in vars(Damage).items() if k.isupper()}
    assert kinds == {line[4:].strip() for line in page.splitlines() if line.startswith("### ")}
    assert all(f"| `{kind}` |" in page for kind in kinds)
