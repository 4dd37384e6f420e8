"""The ledger on a real PostgreSQL server started by the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from meshflow_nb import Policy
from meshflow_nb.ledger import LedgerError, ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("mock_mode")


def capstone_into(ledger: ReplayLedger, task: str = "t"):
    return ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run(task)


def test_runs_are_recorded_verified_and_read_back(postgres_db):
    ledger = ReplayLedger(postgres_db)
    result = capstone_into(ledger)
    check = ledger.verify_chain(result.run_id)
    assert check.valid and check.entries_checked == 23, check.report()
    assert ledger.events(result.run_id) == result.events
    assert ledger.runs().loc[0, "status"] == "completed"


def test_the_course_tamper_is_named_on_postgres_too(postgres_db):
    ledger = ReplayLedger(postgres_db)
    capstone_into(ledger)
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    check = ledger.verify_chain()
    assert not check.valid and check.first_bad_seq == 2
    assert check.problems[0].kind == "edited"


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entries SET output = '{}' WHERE seq = 2",
    "DELETE FROM ledger_entries WHERE seq = 2",
    "TRUNCATE ledger_entries",
    "UPDATE ledger_meta SET value = '1'",
    "DELETE FROM ledger_meta",
    "TRUNCATE ledger_meta",
])
def test_immutable_audit_makes_postgres_reject_changes(postgres_db, statement):
    ledger = ReplayLedger(postgres_db, immutable=True)
    capstone_into(ledger)
    with psycopg.connect(postgres_db, autocommit=True) as con, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        con.execute(statement)
    assert ledger.verify_chain().valid


def test_without_immutable_audit_the_same_change_goes_through(postgres_db):
    ledger = ReplayLedger(postgres_db, immutable=False)
    capstone_into(ledger)
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute("DELETE FROM ledger_entries WHERE seq = 2")
    assert not ledger.verify_chain().valid


WRITER = textwrap.dedent("""
    import sys
    from meshflow_nb.ledger import ReplayLedger
    from meshflow_nb.pipelines import build_capstone_pipeline

    ledger = ReplayLedger(sys.argv[1])
    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    handles = [wf.start(f"task {i}") for i in range(5)]
    assert all(h.result().ok for h in handles)
""")


def test_processes_writing_at_once_keep_seq_gapless_and_chains_valid(postgres_db):
    ReplayLedger(postgres_db)  # create the tables before the writers race
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_db], env=env)
               for _ in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    ledger = ReplayLedger(postgres_db)
    check = ledger.verify_chain()
    assert check.valid and check.runs_checked == 15, check.report()
    low, high, count = ledger.sql(
        "SELECT min(seq), max(seq), count(*) FROM ledger_entries").iloc[0].tolist()
    assert (low, high, count) == (1, 15 * 23, 15 * 23)


def test_a_run_exported_from_duckdb_imports_into_postgres(postgres_db, tmp_path):
    source = ReplayLedger(tmp_path / "local.duckdb")
    run_id = capstone_into(source).run_id
    target = ReplayLedger(postgres_db)
    target.import_run(source.export_run(run_id))
    assert target.verify_chain().valid
    assert target.events(run_id) == source.events(run_id)


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(LedgerError) as err:
        ReplayLedger("postgresql://alice:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "cannot connect to the PostgreSQL ledger" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_opening_without_immutable_audit_does_not_remove_the_triggers(postgres_db):
    capstone_into(ReplayLedger(postgres_db, immutable=True))
    ReplayLedger(postgres_db)  # another process, another setting: must not weaken it
    with psycopg.connect(postgres_db, autocommit=True) as con, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        con.execute("DELETE FROM ledger_entries")


def installed_triggers(url: str) -> dict[str, int]:
    """Each trigger on the ledger's tables and its oid (a reinstalled trigger has a new one)."""
    with psycopg.connect(url) as con:
        return dict(con.execute("SELECT tgname, oid FROM pg_trigger WHERE NOT tgisinternal"
                                ).fetchall())


def test_sealing_again_checks_the_triggers_and_leaves_them_alone(postgres_db):
    ReplayLedger(postgres_db, immutable=True)
    before = installed_triggers(postgres_db)
    assert len(before) == 6
    run_id = capstone_into(ReplayLedger(postgres_db)).run_id
    assert ReplayLedger(postgres_db).seal().valid
    assert installed_triggers(postgres_db) == before
    assert ReplayLedger(postgres_db).verify_chain(run_id).valid


def test_a_disabled_trigger_is_installed_again_when_sealing(postgres_db):
    ReplayLedger(postgres_db, immutable=True)
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_truncate")
    ReplayLedger(postgres_db).seal()
    with psycopg.connect(postgres_db, autocommit=True) as con, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        con.execute("TRUNCATE ledger_entries")


def test_p008_shows_a_uri_without_its_password(postgres_db):
    capstone_into(ReplayLedger(postgres_db))
    with psycopg.connect(postgres_db, autocommit=True) as con:
        con.execute("UPDATE ledger_entries SET output = '\"edited\"' WHERE seq = 2")
    with_password = postgres_db.replace("postgres@", "postgres:pa55word@", 1)
    pipeline = ReplayLedger(with_password).attach(build_capstone_pipeline())
    refused = pipeline.run("t", policy=Policy("standard", immutable_audit=True))
    assert refused.preflight.rules == ["P008"]
    shown = str(refused.preflight)
    assert "ledger postgresql://postgres:***@/" in shown and "pa55word" not in shown
    assert "pa55word" not in refused.summary()


def test_both_stores_give_the_same_frames_for_the_same_runs(postgres_db, tmp_path):
    local = ReplayLedger(tmp_path / "local.duckdb")
    server = ReplayLedger(postgres_db)
    pd.testing.assert_frame_equal(server.to_dataframe(), local.to_dataframe())  # empty
    for task in ("first", "second"):
        run_id = capstone_into(local, task).run_id
        server.import_run(local.export_run(run_id))
    entries = server.to_dataframe()
    assert entries["tokens_in"].dtype == "Int64" and entries["cost_usd"].dtype == "float64"
    pd.testing.assert_frame_equal(entries, local.to_dataframe(), check_exact=True)
    pd.testing.assert_frame_equal(server.runs(), local.runs(), check_exact=True)
    totals = ("SELECT run_id, count(*) AS entries, sum(cost_usd) AS cost, max(tokens_in) AS "
              "most_in, min(carbon_g) AS carbon FROM ledger_entries GROUP BY run_id "
              "ORDER BY run_id")
    pd.testing.assert_frame_equal(server.sql(totals), local.sql(totals))
