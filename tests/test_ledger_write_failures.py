"""Writes that keep failing are given up after a few retries, loudly, and never stall the
process: the runs whose entries were lost learn it at their next commit barrier, flush
or record (at once, with the reason), and other runs' entries are kept. Every failure
here is real: a directory where DuckDB must write its log, a dropped database, a killed
connection, a key the database already holds."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from approvers import a_person

from meshflow_nb.events import EventType, MeshEvent, utc_now
from meshflow_nb.ledger import Durability, LedgerWriteError, ReplayLedger
from meshflow_nb.ledger.errors import LedgerGapError
from meshflow_nb.ledger.rows import event_row
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")

PROMPT_S = 5.0
"""Longer than the writer's retries (about 2 s), far shorter than the old 30 s waits."""
AT_ONCE_S = 0.5
"""What "at once" allows, on a busy machine, once the writer has given up."""


def event(run_id: str, seq: int, kind: EventType = EventType.NODE_START, **fields) -> MeshEvent:
    return MeshEvent(run_id, seq, utc_now(), kind, **fields)


def start(run_id: str) -> MeshEvent:
    return event(run_id, 1, EventType.RUN_START, payload={"workflow": "w", "task": "t"})


def capstone(ledger: ReplayLedger, **run):
    return ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run("t", **run)


def timed(call):
    """Seconds ``call`` took, and the LedgerWriteError it raised (None if it returned)."""
    began = time.monotonic()
    try:
        call()
    except LedgerWriteError as err:
        return time.monotonic() - began, err
    return time.monotonic() - began, None


def break_log(ledger: ReplayLedger, path: Path) -> Path:
    """Make every later commit fail: DuckDB must write its log where a directory is."""
    ledger.flush()
    ledger.sql("CHECKPOINT")  # the log is emptied and removed; the next commit recreates it
    log = Path(f"{path}.wal")
    log.mkdir()
    return log


def test_a_file_that_stops_taking_writes_fails_fast_and_later_runs_are_kept(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = ReplayLedger(path)
    ledger.record(start("a"))
    log = break_log(ledger, path)
    ledger.record(event("a", 2, node_id="n"))
    took, err = timed(ledger.flush)
    assert err is not None and took < PROMPT_S
    assert "Is a directory" in str(err) and "given up after" in str(err)
    assert str(err).startswith("run a lost its entries from #2 on")

    with pytest.raises(LedgerGapError, match="lost its entries from #2 on"):
        ledger.record(event("a", 3, node_id="n"))  # the run learns, at once
    took, err = timed(lambda: ledger.flush(run_id="a"))  # and every time it asks
    assert err is not None and took < AT_ONCE_S
    ledger.flush()  # run a has been told: a flush of the whole ledger does not repeat it

    began = time.monotonic()
    result = capstone(ledger)  # a run while the file is still broken: told, not stalled
    assert time.monotonic() - began < PROMPT_S
    assert result.unrecorded and "Is a directory" in result.recording_error

    with pytest.raises(LedgerGapError):
        ledger.record(event("a", 4, EventType.RUN_COMPLETE, payload={"status": "failed"}))
    ledger.flush()  # every loss was told to its run: nothing is left to say

    log.rmdir()
    later = capstone(ledger)
    assert later.ok and later.unrecorded == 0
    assert ledger.events(later.run_id) == later.events
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert check.incomplete_runs == ["a"] and check.entries_checked == 1 + 23


def test_a_run_whose_commits_fail_is_told_at_its_barrier(tmp_path):
    path, broken = tmp_path / "ledger.duckdb", []

    def sabotage(event):
        if event.type is EventType.NODE_START and event.node_id == "writer" and not broken:
            broken.append(break_log(ledger, path))

    ledger = ReplayLedger(path)
    began = time.monotonic()
    result = capstone(ledger, on_event=sabotage, approver=a_person)  # the pause waits
    assert time.monotonic() - began < PROMPT_S
    assert result.unrecorded and result.recording_error.startswith("gate_pause: run ")
    assert "Is a directory" in result.recording_error
    took, err = timed(lambda: ledger.flush(run_id=result.run_id))
    assert err is not None and took < AT_ONCE_S
    broken[0].rmdir()
    stored = ledger.events(result.run_id)
    assert stored == result.events[:len(stored)] and len(stored) < len(result.events)
    assert result.unrecorded == len(result.events) - len(stored)  # the count is exact
    assert ledger.verify_chain().valid


def test_in_event_mode_each_record_raises_once_the_file_fails(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = ReplayLedger(path, durability=Durability.EVENT)
    ledger.record(start("a"))
    break_log(ledger, path)
    took, err = timed(lambda: ledger.record(event("a", 2, node_id="n")))
    assert err is not None and took < PROMPT_S
    took, err = timed(lambda: ledger.record(start("b")))  # still failing: one attempt
    assert err is not None and took < AT_ONCE_S and "Is a directory" in str(err)


def test_a_dropped_postgres_database_fails_runs_fast_and_loudly(pg_cluster):
    url = pg_cluster.create_database()
    ledger = ReplayLedger(url)
    assert capstone(ledger).unrecorded == 0
    pg_cluster.drop_database(url)
    began = time.monotonic()
    result = capstone(ledger)
    assert time.monotonic() - began < PROMPT_S
    assert result.unrecorded and "does not exist" in result.recording_error
    took, err = timed(lambda: ledger.flush(run_id=result.run_id))
    assert err is not None and took < AT_ONCE_S
    began = time.monotonic()
    assert capstone(ledger).unrecorded  # the next run is told too, in one attempt
    assert time.monotonic() - began < AT_ONCE_S * 4


def test_a_lost_postgres_connection_is_made_again(postgres_db):
    ledger = ReplayLedger(postgres_db)
    first = capstone(ledger)
    with psycopg.connect(postgres_db, autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                               ).fetchone()[0]
    assert killed >= 1
    second = capstone(ledger)
    assert (first.unrecorded, second.unrecorded) == (0, 0)
    assert ledger.events(second.run_id) == second.events
    assert ledger.verify_chain().valid


def test_one_runs_refused_write_does_not_sink_the_others_in_its_batch(location):
    ledger = ReplayLedger(location)
    ledger.store.append([event_row(start("taken"))])  # written behind the writer's back
    ledger.record(start("taken"))  # the database will refuse it: (taken, 1) exists
    ledger.record(start("fine"))
    ledger.record(event("fine", 2, node_id="n"))
    with pytest.raises(LedgerWriteError):
        ledger.flush()  # entries were given up while it waited
    ledger.flush(run_id="fine")
    with pytest.raises(LedgerWriteError, match=r"(?i)duplicate key"):
        ledger.flush(run_id="taken")
    assert [e.seq for e in ledger.events("fine")] == [1, 2]
    assert len(ledger.events("taken")) == 1
    assert ledger.verify_chain().valid


def test_a_flush_after_the_writer_gave_up_in_the_background_raises_at_once(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = ReplayLedger(path)
    ledger.record(start("a"))
    break_log(ledger, path)
    ledger.record(event("a", 2, node_id="n"))  # the writer thread commits it, and fails
    deadline = time.monotonic() + PROMPT_S
    while ledger.writer._pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ledger.writer._pending  # given up, with nobody waiting
    took, err = timed(ledger.flush)
    assert err is not None and took < AT_ONCE_S and "Is a directory" in str(err)


def test_after_one_runs_refused_write_a_passing_failure_is_still_retried(tmp_path,
                                                                          monkeypatch):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    ledger.store.append([event_row(start("taken"))])
    ledger.record(start("taken"))
    ledger.record(start("fine"))
    with pytest.raises(LedgerWriteError):
        ledger.flush()  # run taken was given up, run fine committed: the store works
    real_append, failures = type(ledger.store).append, []

    def append_failing_once(store, batch):
        if not failures:
            failures.append(len(batch))
            raise OSError("a passing failure (simulated)")
        return real_append(store, batch)

    monkeypatch.setattr(type(ledger.store), "append", append_failing_once)
    result = capstone(ledger)
    assert failures and result.unrecorded == 0
    assert ledger.events(result.run_id) == result.events
