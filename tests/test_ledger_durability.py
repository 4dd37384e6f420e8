"""The ledger under load and under failure: concurrency, locks, crashes, durability."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from approvers import a_person

from meshflow_nb import EventType, WorkflowDefinition
from meshflow_nb.hitl import (
    StoreApprover,
    WebhookApprover,
    fixed_approver,
    headless_approver,
    unattended,
)
from meshflow_nb.hitl.requests import asks_a_person
from meshflow_nb.ledger import Durability, LedgerBusyError, LedgerError, ReplayLedger
from meshflow_nb.ledger.stores import DuckDBStore
from meshflow_nb.pipelines import build_capstone_pipeline

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("mock_mode")


def seq_summary(ledger: ReplayLedger) -> tuple[int, int, int]:
    return tuple(ledger.sql("SELECT min(seq), max(seq), count(*) FROM ledger_entries")
                 .iloc[0].tolist())


def test_a_200_branch_fan_out_gives_a_gapless_valid_ledger(tmp_path):
    ledger = ReplayLedger(tmp_path / "wide.duckdb")
    wf = WorkflowDefinition("wide").add_node("start", lambda ctx: "go")
    wf.add_node("join", lambda ctx: len(ctx.inputs))
    for i in range(200):
        wf.add_node(f"b{i}", lambda ctx: ctx.node_id).add_edge("start", f"b{i}")
        wf.add_edge(f"b{i}", "join")
    result = ledger.attach(wf).run("t")
    assert result.output == 200
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert seq_summary(ledger) == (1, len(result.events), len(result.events))


def test_twenty_concurrent_runs_interleave_into_one_gapless_ledger(tmp_path):
    ledger = ReplayLedger(tmp_path / "many.duckdb")
    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    handles = [wf.start(f"task {i}") for i in range(20)]
    results = [h.result(timeout=60) for h in handles]
    assert all(r.ok for r in results)
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert check.runs_checked == 20
    total = sum(len(r.events) for r in results)
    assert seq_summary(ledger) == (1, total, total)
    assert ledger.events(results[7].run_id) == results[7].events


def test_event_mode_commits_every_event_before_the_run_goes_on(tmp_path):
    ledger = ReplayLedger(tmp_path / "strict.duckdb", durability=Durability.EVENT)
    stored_when_seen = []

    def check_committed(event):
        found = ledger.store.rows("SELECT count(*) FROM ledger_entries WHERE run_id = ? "
                                  "AND run_seq = ?", [event.run_id, event.seq])[0][0]
        stored_when_seen.append(found)

    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.9]))
    wf.subscribe(check_committed)
    wf.run("t")
    assert stored_when_seen and set(stored_when_seen) == {1}


def committed_at(ledger: ReplayLedger, approver, kinds=(EventType.GATE_PAUSE,
                                                        EventType.RUN_COMPLETE)) -> dict:
    """For each of ``kinds``: (entries of the run committed when it was seen, its seq)."""
    seen = {}

    def check_committed(event):
        if event.type in kinds:
            seen[event.type] = (ledger.store.rows(
                "SELECT count(*) FROM ledger_entries WHERE run_id = ?", [event.run_id])[0][0],
                event.seq)

    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.9]))
    wf.subscribe(check_committed)
    assert wf.run("t", approver=approver).ok
    return seen


def test_step_mode_has_committed_everything_before_a_person_is_asked_and_at_the_end(
        tmp_path):
    seen = committed_at(ReplayLedger(tmp_path / "step.duckdb"), a_person)
    stored, seq = seen[EventType.GATE_PAUSE]
    assert stored == seq  # the panel, the webhook or the store shows a pause on disk
    stored, seq = seen[EventType.RUN_COMPLETE]
    assert stored == seq


def test_an_unattended_approver_is_not_waited_for_and_nothing_is_lost(tmp_path):
    ledger = ReplayLedger(tmp_path / "scripted.duckdb")
    seen = committed_at(ledger, fixed_approver(True, "ci"), kinds=(EventType.RUN_COMPLETE,))
    stored, seq = seen[EventType.RUN_COMPLETE]
    assert stored == seq and ledger.verify_chain().valid


@pytest.mark.parametrize(("approver", "waits"), [
    (a_person, True),
    (fixed_approver(True, "ci"), False),
    (headless_approver({}), False),
    (headless_approver({"MESHFLOW_HITL": "reject"}), False),
    (StoreApprover(), True),
    (WebhookApprover("http://127.0.0.1:9/hook",
                     environ={"MESHFLOW_WEBHOOK_SECRET": "s" * 32}), True),
    (unattended(lambda request: a_person(request)), False),
])
def test_which_approvers_a_run_treats_as_a_person(approver, waits):
    assert asks_a_person(approver) is waits


def test_a_failed_write_loses_no_entry(tmp_path, monkeypatch):
    ledger = ReplayLedger(tmp_path / "flaky.duckdb")
    real_append, failures = DuckDBStore.append, []

    def flaky_append(self, batch):
        if len(failures) < 2:
            failures.append(len(batch))
            raise OSError("disk full (simulated)")
        return real_append(self, batch)

    monkeypatch.setattr(DuckDBStore, "append", flaky_append)
    result = ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t")
    ledger.flush()
    assert len(failures) == 2
    assert ledger.events(result.run_id) == result.events
    assert ledger.verify_chain().valid


def test_export_imports_into_an_empty_ledger_and_still_verifies(tmp_path):
    source = ReplayLedger(tmp_path / "a.duckdb")
    wf = source.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    wf.run("first")
    run_id = wf.run("second").run_id
    archive = source.export_run(run_id)
    target = ReplayLedger(tmp_path / "b.duckdb")
    assert target.import_run(archive) == run_id
    assert target.verify_chain().valid
    assert target.events(run_id) == source.events(run_id)
    assert target.runs().loc[0, "status"] == "completed"
    with pytest.raises(LedgerError, match="already has this run"):
        target.import_run(archive)


def test_anchor_files_round_trip(tmp_path):
    ledger = ReplayLedger(tmp_path / "a.duckdb")
    run_id = ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t").run_id
    anchor = ledger.anchor(run_id)
    anchor.save(tmp_path / "anchors.json")
    assert anchor.length == len(ledger.events(run_id)) and anchor.complete
    check = ledger.verify_chain(anchor=tmp_path / "anchors.json")
    assert check.valid and check.anchors_checked == 1


WRITER = textwrap.dedent("""
    import sys, time
    from meshflow_nb import WorkflowDefinition
    from meshflow_nb.ledger import ReplayLedger

    ledger = ReplayLedger(sys.argv[1])
    def slow(ctx):
        time.sleep(30)
        return "never"
    wf = ledger.attach(WorkflowDefinition("crash").add_node("a", lambda ctx: "quick")
                       .add_node("b", slow).add_edge("a", "b"))

    def report(event):
        if event.type.value == "node_start" and event.node_id == "b":
            ledger.flush()  # step a is committed; b now hangs
            print("b running", flush=True)
    wf.run("t", on_event=report)
""")


def start_writer(path: Path) -> subprocess.Popen:
    """A process that writes a run to ``path`` and then hangs in its second node."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for line in proc.stdout:
        if line.strip() == "b running":
            return proc
    raise AssertionError("the writer process ended early")


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])  # as a duckdb shell does: it never lets go
    print("holding", flush=True)
    time.sleep(30)
""")


def test_a_second_process_gets_a_clear_message_not_a_lock_traceback(tmp_path):
    path = tmp_path / "busy.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        with pytest.raises(LedgerBusyError) as err:
            DuckDBStore(path, wait_s=0.3).ensure_schema()
        assert f"in use by process {proc.pid}" in str(err.value)
        assert "MESHFLOW_LEDGER_DB" in str(err.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_run_busy_in_an_agent_leaves_the_file_to_other_processes(tmp_path):
    path = tmp_path / "shared.duckdb"
    proc = start_writer(path)  # its run is in node b for 30 s, its entries committed
    try:
        ledger = ReplayLedger(path)
        result = ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t")
        assert result.ok and result.unrecorded == 0
        assert ledger.events(result.run_id) == result.events
        assert ledger.verify_chain().valid
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_mid_run_leaves_a_valid_ledger_showing_the_run_incomplete(tmp_path):
    path = tmp_path / "crash.duckdb"
    proc = start_writer(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ledger = ReplayLedger(path)
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert len(check.incomplete_runs) == 1
    assert ledger.runs().loc[0, "status"] == "running"
    assert "Incomplete" in check.report()


def test_a_write_hidden_after_a_select_still_refreshes_the_ledgers_positions(tmp_path):
    ledger = ReplayLedger(tmp_path / "mixed.duckdb")
    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.9]))
    wf.run("first")
    ledger.sql("SELECT 1; DELETE FROM ledger_entries WHERE seq > 5")
    wf.run("second")  # must continue from the ledger as it now is, not a stale cache
    low, high, count = seq_summary(ledger)
    assert (low, count) == (1, high)


OPENER = textwrap.dedent("""
    import sys
    import duckdb  # loaded before the start, so that the processes open the file together
    from meshflow_nb.ledger import ReplayLedger

    print("ready", flush=True)
    sys.stdin.readline()
    print(len(ReplayLedger(sys.argv[1]).runs()), flush=True)
""")


def start_together(script: str, processes: int, *args: str) -> list[str]:
    """Start ``processes`` copies of ``script``, release them at once, return their output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MESHFLOW_LEDGER_WAIT_S": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script, *args],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(processes)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * processes
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [p.returncode for p in procs] == [0] * processes
    return outputs


def test_processes_opening_a_new_file_at_once_all_get_the_ledger(tmp_path):
    """One process used to find the file another was creating half written, "not a valid
    DuckDB database file"; a new file now appears whole or not at all."""
    for attempt in range(2):
        path = tmp_path / f"new{attempt}.duckdb"
        assert start_together(OPENER, 6, str(path)) == ["0\n"] * 6
        assert [p.name for p in tmp_path.iterdir() if ".new" in p.name] == []  # no drafts left


CONTENDER = textwrap.dedent("""
    import json, sys
    from meshflow_nb.ledger import ReplayLedger
    from meshflow_nb.pipelines import build_capstone_pipeline

    ledger = ReplayLedger(sys.argv[1])
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts its runs at once
    for i in range(int(sys.argv[2])):
        result = workflow.run(f"task {i}")
        print(json.dumps([len(result.events), result.unrecorded, result.recording_error]),
              flush=True)
""")


def test_processes_writing_one_file_at_once_lose_no_entry(tmp_path):
    """Four processes, ten capstone runs each, all at once on one DuckDB file: they take
    turns, so nobody waits a whole second (the wait set here) and every entry is stored.
    Holding the file through a process's whole series of runs made the others give up."""
    path, processes, runs = tmp_path / "contended.duckdb", 4, 10
    outputs = start_together(CONTENDER, processes, str(path), str(runs))
    results = [json.loads(line) for out in outputs for line in out.splitlines()]
    assert len(results) == processes * runs
    assert [r for r in results if r[1]] == []  # nothing refused or lost, with the reason
    ledger = ReplayLedger(path)
    check = ledger.verify_chain()
    assert check.valid, check.report()
    assert (check.runs_checked, check.incomplete_runs) == (processes * runs, [])
    total = processes * runs * 23
    assert seq_summary(ledger) == (1, total, total)
