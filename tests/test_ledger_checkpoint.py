"""The verified checkpoint: the pre-run check reads what is new, not the whole ledger.

Real DuckDB files (and a real PostgreSQL server for one case). Rows are counted through
the store's own methods, never timed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import duckdb
import pytest

from meshflow_nb import Policy, RunStatus, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.ledger.replay import _stores
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")

AUDITED = Policy("regulated", budget_usd=5.0, carbon_budget_g=500.0,
                 enable_cross_run_learning=False)
APPROVER = fixed_approver(True, "test", "approved by test", channel="script")
EVENTS = 23


def audited(ledger: ReplayLedger):
    """The capstone under a REGULATED policy, recorded in ``ledger``."""
    return ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85], policy=AUDITED))


def run_audited(ledger: ReplayLedger, times: int = 1):
    workflow = audited(ledger)
    results = [workflow.run("check", approver=APPROVER) for _ in range(times)]
    ledger.flush()
    return results[-1]


def forget(location: str) -> None:
    """Drop this process's store (and its memory of the checkpoint), as a new process."""
    store = next((k for k, s in _stores.items() if s.location == str(location)), None)
    if store is not None:
        _stores.pop(store).close()


def plain_runs(ledger: ReplayLedger, times: int) -> None:
    """Runs recorded without a policy (no check before them)."""
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    for _ in range(times):
        workflow.run("plain", approver=APPROVER)
    ledger.flush()


class Counting:
    """Counts the statements a store runs and the rows they return (``rows`` and the
    cursors of its transactions)."""

    def __init__(self, store, monkeypatch) -> None:
        self.statements, self.rows = 0, 0
        rows, transaction = store.rows, store.transaction
        counter = self

        class Cursor:
            def __init__(self, cur) -> None:
                self.cur = cur

            def execute(self, sql, params=()):
                counter.statements += 1
                return self.cur.execute(sql, params)

            def fetchall(self):
                found = self.cur.fetchall()
                counter.rows += len(found)
                return found

        def counted_rows(sql, params=()):
            found = rows(sql, params)
            self.statements += 1
            self.rows += len(found)
            return found

        @contextmanager
        def counted_transaction(*args, **kwargs):
            with transaction(*args, **kwargs) as cur:
                yield Cursor(cur)

        monkeypatch.setattr(store, "rows", counted_rows)
        monkeypatch.setattr(store, "transaction", counted_transaction)


def test_the_pre_run_check_reads_a_bounded_number_of_rows_on_a_large_ledger(
        tmp_path, monkeypatch):
    ledger = ReplayLedger(tmp_path / "large.duckdb")
    plain_runs(ledger, 120)                          # 2,760 entries
    run_audited(ledger)                              # no checkpoint yet: a full check
    run_audited(ledger)                              # from the checkpoint on
    counter = Counting(ledger.store, monkeypatch)
    check = ledger.verify_since_checkpoint()
    assert check.valid and check.since_seq is not None
    # the head entry, the last run's 23, its record, and the counts: not 2,806 entries
    assert counter.statements <= 3 and counter.rows <= EVENTS + 3, (counter.statements,
                                                                    counter.rows)
    counter.statements = counter.rows = 0
    full = ledger.verify_chain()                     # the full check is still there
    assert full.valid and full.entries_checked == 122 * EVENTS and full.since_seq is None


def test_tampering_before_the_checkpoint_is_refused_before_the_next_append(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = ReplayLedger(path)
    run_audited(ledger, 3)
    assert ledger.checkpoint() is not None
    ledger.store.query("DELETE FROM ledger_entries WHERE seq = 5")   # below the checkpoint
    refused = run_audited(ledger)
    assert refused.status is RunStatus.REJECTED_PREFLIGHT
    assert refused.preflight.rules == ["P008"]
    assert "deleted" in str(refused.preflight)
    entries = ledger.store.rows("SELECT count(*) FROM ledger_entries")[0][0]
    assert entries == 3 * EVENTS - 1                # nothing was appended


def test_an_edited_checkpoint_head_is_refused(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = ReplayLedger(path)
    run_audited(ledger, 3)
    head = ledger.store.rows("SELECT max(seq) FROM ledger_entries")[0][0]  # checked up to it
    ledger.store.query(f"UPDATE ledger_entries SET output = '\"forged\"' WHERE seq = {head}")
    refused = run_audited(ledger)
    assert refused.status is RunStatus.REJECTED_PREFLIGHT
    assert "edited" in str(refused.preflight)


def test_a_checkpoint_replaced_with_a_resealed_one_is_caught_before_the_next_append(
        tmp_path):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    run_audited(ledger, 3)
    forged = replace(ledger.checkpoint(), runs=7).sealed()   # a self-consistent forgery
    ledger.store.query("UPDATE ledger_checkpoints SET runs = ?, hash = ? WHERE last_seq = ?",
                       [forged.runs, forged.hash, forged.last_seq])
    check = ledger.verify_since_checkpoint()
    assert not check.valid
    assert [p.kind for p in check.problems] == ["checkpoint_mismatch"]
    assert "not the checkpoint this process stored or read" in check.report()
    assert run_audited(ledger).status is RunStatus.REJECTED_PREFLIGHT


def test_a_checkpoint_edited_in_place_is_caught_by_the_full_check(tmp_path):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    run_audited(ledger, 3)
    ledger.store.query("UPDATE ledger_checkpoints SET entries = entries + 1")
    check = ledger.verify_chain()
    assert [p.kind for p in check.problems] == ["checkpoint_mismatch"]
    assert "hash no longer matches" in check.report()


def test_removing_the_checkpoints_is_caught_in_the_process_that_wrote_them(tmp_path):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    run_audited(ledger, 3)
    ledger.store.query("DELETE FROM ledger_checkpoints")
    check = ledger.verify_since_checkpoint()
    assert not check.valid and "checkpoints were removed" in check.report()


def test_an_old_file_without_a_checkpoint_gets_a_full_check_first(tmp_path):
    path = tmp_path / "old.duckdb"
    plain_runs(ReplayLedger(path), 2)
    forget(str(path))
    ledger = ReplayLedger(path)
    assert ledger.checkpoint() is None
    first = ledger.verify_since_checkpoint()
    assert first.valid and first.since_seq is None and first.entries_checked == 2 * EVENTS
    assert ledger.checkpoint().last_seq == 2 * EVENTS


def test_the_checkpoint_survives_reopening_the_file(tmp_path, monkeypatch):
    path = tmp_path / "ledger.duckdb"
    run_audited(ReplayLedger(path), 2)
    stored = ReplayLedger(path).checkpoint()
    forget(str(path))                                # as a new process would open it
    reopened = ReplayLedger(path)
    assert reopened.checkpoint() == stored
    counter = Counting(reopened.store, monkeypatch)
    check = reopened.verify_since_checkpoint()
    assert check.valid and check.since_seq == stored.last_seq
    assert counter.rows <= 2 * EVENTS + 4


def test_a_reopened_ledger_with_a_forged_checkpoint_row_is_refused(tmp_path):
    path = tmp_path / "ledger.duckdb"
    run_audited(ReplayLedger(path), 2)
    forget(str(path))
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE ledger_checkpoints SET runs = 7")
    check = ReplayLedger(path).verify_since_checkpoint()
    assert not check.valid and "checkpoint_mismatch" in check.report()


def test_postgresql_keeps_the_checkpoint_and_refuses_to_change_it(postgres_db):
    ledger = ReplayLedger(postgres_db)
    run_audited(ledger, 3)
    stored = ledger.checkpoint()
    assert stored is not None
    check = ledger.verify_since_checkpoint()
    assert check.valid and check.since_seq is not None
    with pytest.raises(Exception, match="append-only"):
        ledger.store.rows("UPDATE ledger_checkpoints SET runs = 7")


def test_once_a_full_check_finds_damage_every_run_is_refused_until_one_passes(tmp_path):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    run_audited(ledger, 3)
    ledger.store.query("UPDATE ledger_entries SET output = '\"forged\"' WHERE seq = 2")
    assert run_audited(ledger).status is RunStatus.COMPLETED  # below the checkpoint: unseen
    full = ledger.verify_chain()                             # the full check finds it
    assert [(p.seq, p.kind) for p in full.problems] == [(2, "edited")]
    for _ in range(2):                                       # and the pre-run checks now fail
        assert run_audited(ledger).status is RunStatus.REJECTED_PREFLIGHT
