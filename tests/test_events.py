"""The event model and the ways to watch a run: stream, astream, handles, subscribers."""

from __future__ import annotations

import asyncio
import json
import threading

from meshflow_nb import EventType, MeshEvent, RunStatus, WorkflowDefinition
from meshflow_nb.cli.console import progress_line
from meshflow_nb.events import BOOKKEEPING_KEYS, SHORT_CHARS, headline, short_text
from meshflow_nb.notebook.runview import detail
from meshflow_nb.pipelines import build_capstone_pipeline

CONTRACT_TYPES = {"run_start", "node_start", "node_complete", "gate_pause", "gate_resume",
                  "loop_iteration", "run_complete"}


def capstone_result():
    return build_capstone_pipeline(quality_scores=[0.6, 0.85]).run("a task")


def test_a_capstone_run_emits_every_contract_event_type():
    result = capstone_result()
    assert {e.type.value for e in result.events} >= CONTRACT_TYPES
    assert result.events[0].type is EventType.RUN_START
    assert result.events[-1].type is EventType.RUN_COMPLETE


def test_sequence_numbers_are_gapless_per_run():
    result = capstone_result()
    assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))


def test_events_round_trip_through_json():
    for event in capstone_result().events:
        data = json.loads(event.to_json())
        assert {"run_id", "seq", "ts", "type", "node_id", "role", "payload"} <= set(data)
        assert MeshEvent.from_dict(data) == event


def test_node_complete_carries_accounting_and_output():
    done = [e for e in capstone_result().events if e.type is EventType.NODE_COMPLETE
            and e.node_id == "quality_gate"]
    assert [round(e.payload["quality_score"], 2) for e in done] == [0.6, 0.85]
    for event in done:
        assert event.output and event.tokens > 0 and event.cost_usd > 0
        assert 0 <= event.uncertainty <= 1


def test_run_complete_carries_the_final_output_and_status():
    result = capstone_result()
    last = result.events[-1]
    assert last.output == result.output == result.nodes["publisher"].output
    assert last.payload["status"] == "completed"


def test_stream_yields_events_while_the_run_is_still_going():
    started = threading.Event()

    def slow(ctx):
        started.wait(timeout=60)  # released as soon as the consumer sees node_start
        return "done" if started.is_set() else "stream was buffered"

    wf = WorkflowDefinition("live").add_node("a", slow)
    outputs = []
    for event in wf.stream("t"):
        if event.type is EventType.NODE_START:
            started.set()
        if event.type is EventType.NODE_COMPLETE:
            outputs.append(event.output)
    assert outputs == ["done"]


def test_leaving_the_stream_early_cancels_the_rest_of_the_run():
    ran = []

    async def step(ctx):
        ran.append(ctx.node_id)
        await asyncio.sleep(0.05)
        return ctx.node_id

    wf = (WorkflowDefinition("early").add_node("a", step).add_node("b", step)
          .add_node("c", step).add_edge("a", "b").add_edge("b", "c"))
    for event in wf.stream("t"):
        if event.type is EventType.NODE_COMPLETE and event.node_id == "a":
            break
    assert "c" not in ran


def test_astream_yields_the_same_event_types_as_a_run():
    async def collect():
        return [e.type async for e in build_capstone_pipeline(quality_scores=[0.9]).astream("t")]

    types = asyncio.run(collect())
    assert types[0] is EventType.RUN_START and types[-1] is EventType.RUN_COMPLETE
    assert EventType.GATE_RESUME in types


def test_start_returns_at_once_and_replays_events_to_late_subscribers():
    release = threading.Event()

    def waits(ctx):
        release.wait(timeout=5)
        return "finished"

    handle = WorkflowDefinition("bg").add_node("a", waits).start("t")
    assert not handle.done() and handle.status is RunStatus.RUNNING
    seen = []
    handle.subscribe(lambda e: seen.append(e.type))
    release.set()
    result = handle.result(timeout=5)
    assert result.status is RunStatus.COMPLETED
    assert seen[0] is EventType.RUN_START and seen[-1] is EventType.RUN_COMPLETE


def test_a_handle_can_be_awaited():
    async def main():
        return await WorkflowDefinition("aw").add_node("a", lambda ctx: "x").start("t")

    assert asyncio.run(main()).output == "x"


def test_workflow_subscribers_see_every_run_and_a_broken_one_does_not_stop_it():
    wf = WorkflowDefinition("subs").add_node("a", lambda ctx: "x")
    seen = []
    wf.subscribe(lambda e: 1 / 0)
    wf.subscribe(seen.append)
    first, second = wf.run("one"), wf.run("two")
    assert first.ok and second.ok
    assert {e.run_id for e in seen} == {first.run_id, second.run_id}


def test_describe_is_one_readable_line():
    line = capstone_result().events[-1].describe()
    assert "run_complete" in line and "status=completed" in line and "\n" not in line


def event_with(type_: EventType, **payload) -> MeshEvent:
    return MeshEvent("r1", 7, "2026-01-01T00:00:00+00:00", type_, node_id="critic",
                     role="critic", cost_usd=0.0123456789, tokens_in=10, tokens_out=5,
                     payload={"iteration": 1, "duration_ms": 2.5, "model": "m", **payload})


def test_the_headline_keeps_short_values_in_order_and_skips_what_is_asked():
    payload = {"score": 0.6, "ok": True, "note": "fine", "long": "x" * 61, "items": [1, 2],
               "none": None, "model": "m"}
    assert headline(payload) == [("score", 0.6), ("ok", True), ("note", "fine"), ("model", "m")]
    assert headline(payload, skip=BOOKKEEPING_KEYS) == [("score", 0.6), ("ok", True),
                                                        ("note", "fine")]


def test_short_text_is_one_line_and_cut_with_an_ellipsis():
    assert short_text("a  b\n\nc") == "a b c"
    assert short_text("y" * 61) == "y" * 59 + "…" and len(short_text("y" * 61)) == SHORT_CHARS
    assert short_text("abcdef", 4) == "abc…"
    assert short_text(0.25) == "0.25"


def test_the_three_faces_show_the_same_headline():
    event = event_with(EventType.NODE_COMPLETE, quality_score=0.625, reason="two\nlines")
    assert event.describe() == ("#7   node_complete      critic (critic)  cost_usd=0.012346 "
                                "tokens=15 iteration=1 duration_ms=2.5 model=m "
                                "quality_score=0.625 reason=two lines")
    assert detail(event) == "quality_score=0.625 reason=two lines"
    assert progress_line(event) == ("  done    critic         critic           2.5 ms     15 "
                                    "tokens  $0.0123  quality_score=0.62  reason=two lines")


def test_a_terminal_line_leaves_out_feedback_and_cuts_long_values():
    event = event_with(EventType.NODE_COMPLETE, feedback="cite sources", label="z" * 50)
    line = progress_line(event)
    assert "feedback" not in line and line.endswith("label=" + "z" * 39 + "…")
    assert "feedback=cite sources" in detail(event)  # the table has room for it


def test_cancelling_in_the_moment_after_a_run_ended_changes_nothing(monkeypatch):
    """A consumer that leaves the stream just as the run ends cancels a run whose loop has
    closed but whose result is not yet handed over; that cancel must be harmless."""
    closed, go_on = threading.Event(), threading.Event()
    run_to_end = asyncio.run

    def end_then_pause(coro):
        result = run_to_end(coro)
        closed.set()
        go_on.wait(timeout=5)
        return result

    monkeypatch.setattr(asyncio, "run", end_then_pause)
    handle = WorkflowDefinition("ends").add_node("a", lambda ctx: "done").start("t")
    assert closed.wait(timeout=5) and not handle.done()
    handle.cancel()
    go_on.set()
    assert handle.result(timeout=5).status is RunStatus.COMPLETED
