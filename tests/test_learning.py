"""Cross-run learning: what a run teaches is stored beside the ledger and read back as lessons."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from meshflow_nb.events import EventType, MeshEvent, utc_now
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.policy.learning import (
    LEARNING_FILE,
    LearningStore,
    Outcome,
    learning_location,
    task_kind,
)

TASK = "Assess the market readiness of solid-state batteries for electric vehicles"
SIMILAR = "assess market readiness for hydrogen trucks"
OTHER = "Write a poem about autumn leaves"
WORKFLOW = "production_pipeline"
FAKE_KEY = "sk-ant-api03-" + "Zx9" * 20 + "AA"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def own_ledger(mock_mode, monkeypatch, tmp_path):
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", str(tmp_path / "ledger.duckdb"))
    monkeypatch.delenv("MESHFLOW_HITL", raising=False)


@pytest.fixture
def store(tmp_path) -> LearningStore:
    return LearningStore(tmp_path / "course.learning.duckdb")


def capstone_events(scores: list[float], task: str = TASK) -> list[MeshEvent]:
    return build_capstone_pipeline(quality_scores=scores).run(task).events


def event(seq: int, kind: EventType, node: str | None = None, run_id: str = "run-a",
          **payload) -> MeshEvent:
    return MeshEvent(run_id, seq, utc_now(), kind, node_id=node, payload=payload)


def rows(store: LearningStore, kind: str, node: str | None = None) -> list[str]:
    frame = store.to_dataframe()
    frame = frame[frame.kind == kind]
    if node is not None:
        frame = frame[frame.node_id == node]
    return list(frame.value)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (another process) and return its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- what a run teaches -------------------------------------------------------------


def test_record_run_stores_what_the_capstone_taught(store):
    events = capstone_events([0.6, 0.85])
    stored = store.record_run(events, WORKFLOW, TASK)

    assert all(isinstance(o, Outcome) for o in stored)
    assert {o.run_id for o in stored} == {events[0].run_id}
    assert {o.task_kind for o in stored} == {"assess-market-readiness"}
    assert rows(store, "quality_score", "quality_gate") == ["0.6", "0.85"]
    assert rows(store, "revision_count", "writer") == ["1"]
    first_feedback = next(e.payload["feedback"] for e in events
                          if e.type is EventType.NODE_COMPLETE and "feedback" in e.payload)
    assert rows(store, "feedback", "quality_gate")[0] == first_feedback
    (decision,) = rows(store, "reviewer_decision", "hitl_gate")
    assert json.loads(decision)["approved"] is True
    assert json.loads(decision)["reviewer"] == "headless"
    assert len(store.to_dataframe()) == len(stored)


def test_the_writer_is_told_the_reviewers_earlier_feedback(store):
    events = capstone_events([0.6, 0.85])
    store.record_run(events, WORKFLOW, TASK)
    feedback = rows(store, "feedback", "quality_gate")[0]

    lessons = store.lessons_for("writer", TASK)
    assert len(lessons) == 1
    assert lessons[0].startswith("Last time on a similar task the reviewer (quality_gate) asked:")
    for request in feedback.splitlines():
        assert request in lessons[0]
    assert store.lessons_for("writer", SIMILAR) == lessons
    assert store.lessons_for("writer", OTHER) == []
    assert store.lessons_for("researcher", TASK) == []
    assert store.lessons_for("writer", TASK, limit=0) == []


def test_feedback_on_a_passing_draft_is_not_a_lesson(store):
    store.record_run(capstone_events([0.9]), WORKFLOW, TASK)
    assert rows(store, "feedback", "quality_gate")  # remembered ...
    assert store.lessons_for("writer", TASK) == []  # ... but nothing was sent back


def test_a_second_run_without_revisions_records_zero(store):
    store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    store.record_run(capstone_events([0.85]), WORKFLOW, TASK)

    assert rows(store, "revision_count", "writer") == ["1", "0"]
    assert len(store.lessons_for("writer", TASK)) == 1  # the first run's lesson still holds


def test_recording_a_run_again_replaces_its_outcomes(store):
    events = capstone_events([0.6, 0.85])
    first = store.record_run(events, WORKFLOW, TASK)
    store.record_run(events, WORKFLOW, TASK)
    assert len(store.to_dataframe()) == len(first)
    assert store.record_run([], WORKFLOW, TASK) == []


def test_lessons_are_newest_first_distinct_and_limited(store):
    for n, ask in enumerate(["cite sources", "shorter opening", "cite sources", "add a table"]):
        store.record_run([
            event(1, EventType.NODE_COMPLETE, "critic", f"run-{n}", feedback=ask,
                  quality_score=0.5),
            event(2, EventType.LOOP_ITERATION, "critic", f"run-{n}", edge="critic -> writer"),
        ], "w", TASK)

    lessons = store.lessons_for("writer", TASK)
    assert [lesson.rsplit(": ", 1)[1] for lesson in lessons] == [
        "add a table.", "cite sources.", "shorter opening."]
    assert len(store.lessons_for("writer", TASK, limit=2)) == 2


def test_rejections_and_failures_become_lessons(store):
    store.record_run([
        event(1, EventType.NODE_START, "approve", inputs=["critic"]),
        event(2, EventType.GATE_PAUSE, "approve", reason="gate", content_from="writer"),
        event(3, EventType.GATE_REJECT, "approve", approved=False, reviewer="alice",
              reason="too vague about costs", channel="widget"),
        event(4, EventType.NODE_FAILED, "publisher", reason="timeout",
              error="timed out after 30 s"),
    ], "w", TASK)

    assert store.lessons_for("writer", TASK) == [
        "Last time on a similar task alice rejected the work at approve: too vague about costs"]
    assert store.lessons_for("publisher", TASK) == [
        "Last time on a similar task publisher failed (timeout): timed out after 30 s"]
    decision = json.loads(rows(store, "reviewer_decision", "approve")[0])
    assert decision == {"about": "writer", "approved": False, "channel": "widget",
                        "reason": "too vague about costs", "reviewer": "alice"}


def test_task_kind_groups_similar_tasks():
    assert task_kind(TASK) == task_kind(SIMILAR) == "assess-market-readiness"
    assert task_kind(OTHER) == "write-poem-autumn"
    assert task_kind("  ") == "any"
    assert task_kind("Résumé the Q3_report!") == "résumé-q3-report"


# --- where it lives, persistence, reset ---------------------------------------------


def test_the_store_lives_beside_the_ledger(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", str(tmp_path / "runs" / "production.duckdb"))
    assert LearningStore().location == str(tmp_path / "runs" / "production.learning.duckdb")
    assert learning_location("postgresql://meshflow@db/ledger") == LEARNING_FILE
    monkeypatch.chdir(tmp_path)
    assert LearningStore(learning_location("postgresql://x@y/z")).location == \
        str(tmp_path / LEARNING_FILE)


def test_lessons_survive_into_another_process(store):
    store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    expected = store.lessons_for("writer", TASK)

    out = run_python(f"""
        import json
        from meshflow_nb.policy.learning import LearningStore
        store = LearningStore({store.location!r})
        print(json.dumps(store.lessons_for("writer", {SIMILAR!r})))
    """)
    assert json.loads(out) == expected


def test_what_a_run_remembers_matches_a_fresh_read(store):
    """The store keeps what it wrote instead of reading it back; another process,
    reading the file from scratch, must find exactly the same lessons."""
    first = capstone_events([0.6, 0.85])
    store.record_run(first, WORKFLOW, TASK)
    store.record_run(capstone_events([0.6, 0.7, 0.9], OTHER), WORKFLOW, OTHER)
    store.record_run(first, WORKFLOW, TASK)  # recorded again: its outcomes are replaced
    store.record_run(capstone_events([0.5, 0.9]), WORKFLOW, TASK)
    here = {task: store.lessons_for("writer", task, limit=10) for task in (TASK, OTHER)}

    out = run_python(f"""
        import json
        from meshflow_nb.policy.learning import LearningStore
        store = LearningStore({store.location!r})
        print(json.dumps({{t: store.lessons_for("writer", t, limit=10)
                          for t in ({TASK!r}, {OTHER!r})}}))
    """)
    assert json.loads(out) == here
    assert here[TASK] and here[OTHER]


def test_a_change_made_outside_the_store_is_read_again(store):
    store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    assert store.lessons_for("writer", TASK)
    run_python(f"""
        import duckdb
        with duckdb.connect({store.location!r}) as con:
            con.execute("DELETE FROM learning_outcomes")
    """)
    assert store.lessons_for("writer", TASK) == []
    # the writer is no longer a known loop target: a run without revisions counts none
    store.record_run(capstone_events([0.85]), WORKFLOW, TASK)
    assert rows(store, "revision_count", "writer") == []


def test_reset_forgets_everything(store):
    stored = store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    assert store.reset() == len(stored)
    assert store.to_dataframe().empty
    assert LearningStore(store.location).lessons_for("writer", TASK) == []
    assert store.reset() == 0


def test_to_dataframe_has_the_outcome_columns(store):
    columns = ["run_id", "workflow", "task_kind", "node_id", "kind", "value", "recorded_at"]
    assert list(store.to_dataframe().columns) == columns  # empty, and no file created
    assert not Path(store.location).exists()
    store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    assert list(store.to_dataframe().columns) == columns


def test_no_lock_is_held_between_calls(store):
    store.record_run(capstone_events([0.6, 0.85]), WORKFLOW, TASK)
    store.lessons_for("writer", TASK)
    with duckdb.connect(store.location, read_only=True) as con:  # same process, other config
        assert con.execute("SELECT count(*) FROM learning_outcomes").fetchone()[0] > 0
    out = run_python(f"""
        import duckdb
        con = duckdb.connect({store.location!r})  # read-write: needs the file's lock
        print(con.execute("SELECT count(*) FROM learning_outcomes").fetchone()[0])
        con.close()
    """)
    assert int(out) == len(store.to_dataframe())


def test_a_call_waits_while_another_process_holds_the_file(store):
    store.reset()
    store.record_run([event(1, EventType.NODE_COMPLETE, "critic", quality_score=0.5)], "w", TASK)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, duckdb
            con = duckdb.connect({store.location!r})
            print("holding", flush=True)
            time.sleep(0.5)
            con.close()
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert rows(store, "quality_score") == ["0.5"]
    finally:
        holder.wait(timeout=30)
        holder.stdout.close()


# --- privacy ------------------------------------------------------------------------


def test_only_outcomes_are_stored_and_secrets_are_redacted(store):
    task = "Assess vendor contracts for jane.doe@example.com"
    store.record_run([
        event(1, EventType.NODE_COMPLETE, "critic", quality_score=0.4,
              feedback=f"Remove the key {FAKE_KEY} and mail jane.doe@example.com"),
        event(2, EventType.LOOP_ITERATION, "critic", edge="critic -> writer"),
    ], "w", task)

    dump = store.to_dataframe().to_csv()
    assert FAKE_KEY not in dump
    assert "jane.doe@example.com" not in dump
    assert "[REDACTED:" in rows(store, "feedback")[0]
    assert task not in dump  # the task itself is not stored, only its kind
    assert set(store.to_dataframe().task_kind) == {"assess-vendor-contracts"}
    (lesson,) = store.lessons_for("writer", task)
    assert FAKE_KEY not in lesson


@pytest.mark.parametrize("channel", ["timeout", "headless", "policy"])
def test_a_rejection_nobody_made_is_kept_but_teaches_nothing(store, channel):
    store.record_run([
        event(1, EventType.GATE_PAUSE, "approve", reason="gate", content_from="writer"),
        event(2, EventType.GATE_REJECT, "approve", approved=False, reviewer="system",
              reason="no decision in time", channel=channel),
    ], "w", TASK)

    assert store.lessons_for("writer", TASK) == []
    decision = json.loads(rows(store, "reviewer_decision", "approve")[0])
    assert decision["channel"] == channel and decision["approved"] is False
