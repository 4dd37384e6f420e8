"""The DuckDB fast path of verify_chain names exactly what the plain SQL path names.

On DuckDB, pass 1 hashes Arrow batches while the next ones are read, and checks links
and gaps with numpy (meshflow_nb/ledger/verify.py). The SQL path (PostgreSQL's) is the
reference: for every kind of damage, and for odd values the numpy checks hand back to
SQL, both paths must return the same result. Also: the writer's remembered positions
never outlive a change made behind its back.
"""

from __future__ import annotations

import json

import duckdb
import pytest

import meshflow_nb.ledger.verify as verify_module
from meshflow_nb import Policy
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.ledger.canonical import CURRENT_RECIPE, canonical_text, entry_hash
from meshflow_nb.ledger.schema import ENTRY_COLUMNS
from meshflow_nb.ledger.stores import DuckDBStore
from meshflow_nb.pipelines import build_capstone_pipeline

COLUMNS = [name for name, _ in ENTRY_COLUMNS]


pytestmark = pytest.mark.usefixtures("mock_mode")


@pytest.fixture
def ledger(tmp_path) -> ReplayLedger:
    """Three capstone runs (23 entries each) in a fresh DuckDB file."""
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    for i in range(3):
        workflow.run(f"task {i}")
    ledger.flush()
    return ledger


def tamper(ledger: ReplayLedger, *statements: str) -> None:
    """Plain SQL from outside the toolkit (the store lets go of the file first)."""
    ledger.store.close()
    with duckdb.connect(ledger.location) as con:
        for statement in statements:
            con.execute(statement)


def rehash_sql(ledger: ReplayLedger, seq: int, **changes: str) -> str:
    """An UPDATE that sets ``changes`` on the entry at ``seq`` and gives it a valid hash."""
    ledger.store.close()
    with duckdb.connect(ledger.location) as con:
        cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in COLUMNS)
        values = con.execute(f"SELECT {cols} FROM ledger_entries WHERE seq = ?", [seq]).fetchone()
    row = {**dict(zip(COLUMNS, values, strict=True)), **changes}
    sets = ", ".join(f"{c} = '{v}'" for c, v in {**changes, "hash": entry_hash(
        canonical_text(row))}.items())
    return f"UPDATE ledger_entries SET {sets} WHERE seq = {seq}"


def both_paths(ledger: ReplayLedger, monkeypatch, run_id: str | None = None):
    """verify_chain through the fast path, then through the SQL path, as comparable tuples."""
    fast = ledger.verify_chain(run_id)
    with monkeypatch.context() as patch:
        patch.setattr(verify_module, "DuckDBStore", type("NotDuckDB", (), {}))
        slow = ledger.verify_chain(run_id)
    return summary(fast), summary(slow)


def summary(result) -> tuple:
    return (result.valid, result.entries_checked, result.runs_checked,
            [(p.seq, p.run_id, p.kind, p.message) for p in result.problems],
            result.incomplete_runs)


FIRST_RUN = "(SELECT run_id FROM ledger_entries WHERE seq = 1)"

DAMAGE = {
    "clean": [],
    "edited_output": ["""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2"""],
    "deleted_row": ["DELETE FROM ledger_entries WHERE seq = 10"],
    "deleted_run": ["DELETE FROM ledger_entries WHERE seq BETWEEN 24 AND 46"],
    "cut_tail": ["DELETE FROM ledger_entries WHERE seq >= 66"],
    "cut_tail_and_record": ["DELETE FROM ledger_entries WHERE seq >= 66",
                            "UPDATE ledger_runs SET entry_count = 19 WHERE entry_count = 23 "
                            "AND run_id = (SELECT run_id FROM ledger_entries WHERE seq = 65)"],
    "swapped_seqs": ["UPDATE ledger_entries SET seq = -5 WHERE seq = 5",
                     "UPDATE ledger_entries SET seq = 5 WHERE seq = 6",
                     "UPDATE ledger_entries SET seq = 6 WHERE seq = -5"],
    "moved_position": ["UPDATE ledger_entries SET run_seq = 40 WHERE seq = 4"],
    "record_count": ["UPDATE ledger_runs SET entry_count = 30 WHERE entry_count = 23 "
                     "AND run_id = (SELECT run_id FROM ledger_entries WHERE seq = 1)"],
    "record_head": ["UPDATE ledger_runs SET head_hash = repeat('a', 64) "
                    "WHERE run_id = (SELECT run_id FROM ledger_entries WHERE seq = 1)"],
    "non_hex_hash": ["UPDATE ledger_entries SET hash = repeat('z', 64) WHERE seq = 30"],
    "short_hash": ["UPDATE ledger_entries SET hash = 'abc' WHERE seq = 30"],
    "upper_prev_hash": ["UPDATE ledger_entries SET prev_hash = upper(prev_hash) WHERE seq = 31"],
    "gap_between_runs": ["UPDATE ledger_entries SET seq = seq + 5 WHERE seq > 46"],
    "status_ended": ["UPDATE ledger_runs SET status = 'failed' WHERE run_id = "
                     "(SELECT run_id FROM ledger_entries WHERE seq = 1)"],
    "record_removed": ["DELETE FROM ledger_runs WHERE run_id = "
                       "(SELECT run_id FROM ledger_entries WHERE seq = 1)"],
    "extra_record": ["INSERT INTO ledger_runs (run_id, status, entry_count) "
                     "VALUES ('ghost', 'completed', 23)"],
    "record_task": [f"UPDATE ledger_runs SET task = 'another task' WHERE run_id = {FIRST_RUN}"],
    "record_workflow": [f"UPDATE ledger_runs SET workflow = NULL WHERE run_id = {FIRST_RUN}"],
    "record_policy": [f"UPDATE ledger_runs SET policy = '{{}}' WHERE run_id = {FIRST_RUN}"],
    "record_started": [f"UPDATE ledger_runs SET started_at = '2020-01-01T00:00:00+00:00' "
                       f"WHERE run_id = {FIRST_RUN}"],
    "record_ended": [f"UPDATE ledger_runs SET ended_at = NULL WHERE run_id = {FIRST_RUN}"],
    "record_running": [f"UPDATE ledger_runs SET status = 'running' WHERE run_id = {FIRST_RUN}"],
    "record_everything": [f"UPDATE ledger_runs SET task = 'x', status = 'failed', "
                          f"policy = '{{\"mode\": \"lax\"}}' WHERE run_id = {FIRST_RUN}"],
    "payload_not_json": ["UPDATE ledger_entries SET payload = 'not json' WHERE seq = 1"],
    "meta_dropped": ["DROP TABLE ledger_meta"],
    "meta_recipe_1": ["UPDATE ledger_meta SET value = '1'"],
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_fast_and_sql_paths_agree(ledger, monkeypatch, damage):
    tamper(ledger, *DAMAGE[damage])
    fast, slow = both_paths(ledger, monkeypatch)
    assert fast == slow
    assert fast[0] == (damage in UNSEEN)


UNSEEN = {"clean"}
"""Valid for both paths: nothing was changed."""


@pytest.mark.parametrize("changes", [
    {"output": json.dumps("a better analysis")},
    {"prev_hash": "F" * 64},
    {"prev_hash": "abc"},
], ids=["rehashed_output", "rehashed_upper_prev", "rehashed_short_prev"])
def test_rehashed_entries_agree(ledger, monkeypatch, changes):
    tamper(ledger, rehash_sql(ledger, 12, **changes))
    fast, slow = both_paths(ledger, monkeypatch)
    assert fast == slow and not fast[0]


def last_entry(ledger: ReplayLedger) -> dict:
    ledger.store.close()
    with duckdb.connect(ledger.location) as con:
        cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in COLUMNS)
        values = con.execute(f"SELECT {cols} FROM ledger_entries ORDER BY seq DESC LIMIT 1"
                             ).fetchone()
    return dict(zip(COLUMNS, values, strict=True))


def insert_sql(row: dict) -> str:
    values = ", ".join("NULL" if row[c] is None else "'" + str(row[c]).replace("'", "''") + "'"
                       for c in COLUMNS)
    return f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) VALUES ({values})"


@pytest.mark.parametrize("fix_record", [False, True], ids=["record-left", "record-fixed"])
def test_a_forged_entry_after_the_end_agrees(ledger, monkeypatch, fix_record):
    end = last_entry(ledger)
    forged = {**end, "seq": int(end["seq"]) + 1, "run_seq": int(end["run_seq"]) + 1,
              "event_type": "gate_resume", "output": None, "prev_hash": end["hash"]}
    forged["hash"] = entry_hash(canonical_text(forged))
    statements = [insert_sql(forged)]
    if fix_record:
        statements.append(f"UPDATE ledger_runs SET entry_count = {forged['run_seq']}, "
                          f"head_hash = '{forged['hash']}' WHERE run_id = '{end['run_id']}'")
    tamper(ledger, *statements)
    fast, slow = both_paths(ledger, monkeypatch)
    assert fast == slow and [p[2] for p in fast[3]] == ["inserted"]


def test_a_dropped_end_with_its_record_fixed_agrees(ledger, monkeypatch):
    end = last_entry(ledger)
    tamper(ledger, f"DELETE FROM ledger_entries WHERE seq = {end['seq']}")
    before = last_entry(ledger)
    tamper(ledger, f"UPDATE ledger_runs SET entry_count = {before['run_seq']}, "
                   f"head_hash = '{before['hash']}' WHERE run_id = '{end['run_id']}'")
    fast, slow = both_paths(ledger, monkeypatch)
    assert fast == slow and [p[2] for p in fast[3]] == ["truncated"]


def test_one_run_and_an_empty_ledger_agree(ledger, monkeypatch, tmp_path):
    run = ledger.runs().run_id.iloc[1]
    tamper(ledger, "DELETE FROM ledger_entries WHERE seq = 30")
    assert both_paths(ledger, monkeypatch, run)[0] == both_paths(ledger, monkeypatch, run)[1]
    empty = ReplayLedger(tmp_path / "empty.duckdb")
    fast, slow = both_paths(empty, monkeypatch)
    assert fast == slow == (True, 0, 0, [], [])


def test_runs_after_sql_changes_still_chain(ledger):
    """The store forgets its remembered positions after SQL that is not a query."""
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.9]))
    ledger.sql("DELETE FROM ledger_entries WHERE seq > 46")
    ledger.sql("DELETE FROM ledger_runs WHERE run_id NOT IN "
               "(SELECT DISTINCT run_id FROM ledger_entries)")
    workflow.run("after the delete")
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert ledger.sql("SELECT max(seq) AS m FROM ledger_entries").m[0] == check.entries_checked


def test_runs_after_an_outside_change_still_chain(ledger):
    """A change made while the file was closed is read back when it is opened again."""
    tamper(ledger, "DELETE FROM ledger_entries WHERE seq > 46",
           "DELETE FROM ledger_runs WHERE run_id NOT IN "
           "(SELECT DISTINCT run_id FROM ledger_entries)")
    ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("after")
    check = ledger.verify_chain()
    assert check.valid and check.entries_checked == 46 + 18, check.report()


@pytest.mark.parametrize("backend", ["duckdb", "duckdb-read-every-batch", "postgres"])
def test_batches_holding_several_runs_chain_and_record(request, tmp_path, monkeypatch,
                                                        backend):
    """Concurrent runs share batches: one statement updates several run records, and
    (without remembered heads, or on PostgreSQL) one query reads several heads."""
    if backend == "postgres":
        location = request.getfixturevalue("postgres_db")
    else:
        location = str(tmp_path / "shared.duckdb")
    if backend == "duckdb-read-every-batch":
        monkeypatch.setattr(DuckDBStore, "_remember", lambda self, chained, heads: None)
    ledger = ReplayLedger(location)
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    results = [h.result(timeout=60) for h in [workflow.start(f"t{i}") for i in range(8)]]
    check = ledger.verify_chain()
    assert check.valid and check.runs_checked == 8, check.report()
    runs = ledger.runs()
    assert set(runs.status) == {"completed"} and set(runs.entry_count) == {23}
    assert all(ledger.events(r.run_id) == r.events for r in results)


# --- the records' copied fields on the fast path ---------------------------------------


@pytest.fixture
def policy_ledger(tmp_path) -> ReplayLedger:
    """Two capstone runs under a policy, so that every record holds policy JSON text."""
    ledger = ReplayLedger(tmp_path / "policy.duckdb")
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85],
                                                     policy=Policy(budget_usd=5.0)))
    for i in range(2):
        workflow.run(f"task {i}")
    ledger.flush()
    return ledger


def fast_scan(ledger: ReplayLedger, run_id: str | None = None) -> verify_module.Scan:
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    with ledger.store.lease(), ledger.store.reader() as cursor:
        return verify_module._ArrowScan(CURRENT_RECIPE).run(ledger.store, cursor, where, params)


def test_the_fast_path_clears_records_with_policies_by_itself(policy_ledger, monkeypatch):
    assert fast_scan(policy_ledger).records_agree
    assert fast_scan(policy_ledger, policy_ledger.runs().run_id.iloc[1]).records_agree
    fast, slow = both_paths(policy_ledger, monkeypatch)
    assert fast == slow and fast[0]


POLICY_EDITS = {
    "minified": "UPDATE ledger_runs SET policy = CAST(json(policy) AS VARCHAR) WHERE run_id = "
                f"{FIRST_RUN}",
    "changed": "UPDATE ledger_runs SET policy = replace(policy, '5.0', '50.0') WHERE run_id = "
               f"{FIRST_RUN}",
    "emptied": f"UPDATE ledger_runs SET policy = NULL WHERE run_id = {FIRST_RUN}",
    "not_json": f"UPDATE ledger_runs SET policy = '{{' WHERE run_id = {FIRST_RUN}",
}


@pytest.mark.parametrize("edit", POLICY_EDITS, ids=list(POLICY_EDITS))
def test_an_edited_policy_is_left_to_the_sql_path_and_named(policy_ledger, monkeypatch, edit):
    tamper(policy_ledger, POLICY_EDITS[edit])
    assert not fast_scan(policy_ledger).records_agree
    fast, slow = both_paths(policy_ledger, monkeypatch)
    assert fast == slow and [(p[2], "its policy reads" in p[3]) for p in fast[3]] == [
        ("run_record_edited", True)]


def test_a_second_run_start_in_a_rewritten_run_agrees(ledger, monkeypatch):
    """Every run_start entry is joined to the record: the fast path clears only if each
    agrees with it, the SQL path compares the first, so that a run rewritten with a
    second run_start (a consistent chain: only anchors see it) verifies alike."""
    ledger.store.close()
    with duckdb.connect(ledger.location) as con:
        cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in COLUMNS)
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in con.execute(
            f"SELECT {cols} FROM ledger_entries WHERE run_id = {FIRST_RUN} ORDER BY seq"
        ).fetchall()]
    rows[1].update(event_type="run_start", node_id=None, role=None, payload='{"task": "forged"}')
    for before, row in zip([None, *rows], rows, strict=False):
        row["prev_hash"] = before["hash"] if before else row["prev_hash"]
        row["hash"] = entry_hash(canonical_text(row))
    tamper(ledger, f"DELETE FROM ledger_entries WHERE run_id = '{rows[0]['run_id']}'",
           *(insert_sql(row) for row in rows),
           f"UPDATE ledger_runs SET head_hash = '{rows[-1]['hash']}' "
           f"WHERE run_id = '{rows[0]['run_id']}'")
    assert not fast_scan(ledger).records_agree
    fast, slow = both_paths(ledger, monkeypatch)
    assert fast == slow and fast[0]
