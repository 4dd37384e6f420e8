"""Lesson 05's self-checks, judged against real streams of the capstone in mock mode
(approved and rejected at the gate), on a fresh ledger.

Each check gets a right answer (PASS), wrong answers, values of the wrong type, filler
and huge values (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, approver, assert_hint, assert_pass

from meshflow_nb import EventType, MeshEvent
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import selfcheck
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

DECISIONS = ("approve", "reject")
HUGE = "x" * 1_000_000
"""A value no HINT may repeat whole."""


@pytest.fixture(scope="module")
def mock_env() -> Iterator[None]:
    """Mock agents with a short latency: fast runs that a consumer can still cancel."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.02")
        yield


def stop_at_cost(stream: Iterator[MeshEvent], threshold: float) -> list[MeshEvent]:
    """Exercise 2 done right: leave at the first event that takes the cost past threshold."""
    taken, spent = [], 0.0
    for event in stream:
        taken.append(event)
        spent += event.cost_usd or 0.0
        if spent > threshold:
            break
    return taken


def one_late(stream: Iterator[MeshEvent], threshold: float) -> list[MeshEvent]:
    """Compares before adding the event's cost: leaves one event after the crossing."""
    taken, spent = [], 0.0
    for event in stream:
        taken.append(event)
        if spent > threshold:
            break
        spent += event.cost_usd or 0.0
    return taken


def too_early(stream: Iterator[MeshEvent], threshold: float) -> list[MeshEvent]:
    """Leaves at half the threshold."""
    return stop_at_cost(stream, threshold / 2)


def never_stops(stream: Iterator[MeshEvent], threshold: float) -> list[MeshEvent]:
    """The answer cell as it comes: takes every event."""
    return list(stream)


def trims(stream: Iterator[MeshEvent], threshold: float) -> list[MeshEvent]:
    """Takes the whole run, then cuts the list where the cost passed the threshold."""
    everything, taken, spent = list(stream), [], 0.0
    for event in everything:
        taken.append(event)
        spent += event.cost_usd or 0.0
        if spent > threshold:
            return taken
    return taken


@pytest.fixture(scope="module")
def runs(mock_env: None, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Real streams and runs of the capstone on one ledger, as the lesson makes them."""
    ledger = ReplayLedger(str(tmp_path_factory.mktemp("streaming") / "lesson05.duckdb"))
    pipeline = ledger.attach(build_capstone_pipeline())
    found = SimpleNamespace(ledger=ledger, pipeline=pipeline, events={}, result={})
    for decision in DECISIONS:
        found.events[decision] = list(pipeline.stream(CAPSTONE_TASK,
                                                      approver=approver(decision)))
        found.result[decision] = pipeline.run(CAPSTONE_TASK, approver=approver(decision))
    return found


def consume(runs: SimpleNamespace, consumer: Callable[..., Any], threshold: float,
            decision: str = "approve") -> Any:
    """Exercise 2's run cell: the learner's consumer over a stream closed at the end."""
    with closing(runs.pipeline.stream(CAPSTONE_TASK, approver=approver(decision))) as stream:
        return consumer(stream, threshold)


def type_counts(events: list[MeshEvent]) -> dict[str, int]:
    return dict(Counter(e.type.value for e in events))


def labels(runs: SimpleNamespace, decision: str = "approve", **answers: Any) -> Any:
    """event_labels on the real stream, right answers unless ``answers`` say otherwise."""
    values = {"type_counts": type_counts(runs.events[decision]),
              "final_output_event": "run_complete", "final_output_field": "output", **answers}
    return selfcheck.event_labels(runs.events[decision], **values)


# --- exercise 1: event_labels ------------------------------------------------------------


def test_event_labels_passes_the_counts_of_an_approved_stream(runs: SimpleNamespace) -> None:
    assert_pass(labels(runs), "23 events of 7 types", "published content in 'output'")


def test_event_labels_says_a_rejected_stream_published_nothing(runs: SimpleNamespace) -> None:
    verdict = labels(runs, "reject")
    assert_pass(verdict, "null", "rejected the draft at the gate")
    assert "carries" not in verdict.message


@pytest.mark.parametrize("spelling", ["run_complete", " Run_Complete ", "EventType.RUN_COMPLETE",
                                      EventType.RUN_COMPLETE])
def test_event_labels_accepts_ways_of_naming_the_final_event(runs: SimpleNamespace,
                                                             spelling: Any) -> None:
    assert_pass(labels(runs, final_output_event=spelling))


def test_event_labels_accepts_counts_keyed_by_event_type_or_computed(runs: SimpleNamespace) -> None:
    events = runs.events["approve"]
    assert_pass(labels(runs, type_counts=Counter(e.type for e in events)))
    assert_pass(labels(runs, type_counts={k.upper(): np.int64(v)
                                          for k, v in type_counts(events).items()}))
    assert_pass(labels(runs, type_counts={**type_counts(events), "node_failed": 0}))


def wrong_counts(runs: SimpleNamespace, **changes: Any) -> dict[str, Any]:
    counts = type_counts(runs.events["approve"])
    counts.update(changes)
    return {k: v for k, v in counts.items() if v is not None}


@pytest.mark.parametrize(("changes", "says"), [
    ({"node_start": 8}, "the count of node_start is off"),
    ({"node_complete": 7}, "the count of node_complete is off"),
    ({"loop_iteration": None}, "leaves out 1 type"),
    ({"gate_pause": None, "gate_resume": None}, "leaves out 2 types"),
    ({"gate_reject": 1}, "your stream has no gate_reject event"),
    ({"node_end": 9}, "'node_end']: that is not a type of event"),
    ({"agent_completed": 9}, "course text's name; this toolkit calls it node_complete"),
    ({"Node_Start": 9}, "names the type 'node_start' twice"),
])
def test_event_labels_points_at_the_table_for_wrong_counts(runs: SimpleNamespace,
                                                           changes: dict, says: str) -> None:
    assert_hint(labels(runs, type_counts=wrong_counts(runs, **changes)), says, hides="9 ")


def test_event_labels_refuses_an_empty_count(runs: SimpleNamespace) -> None:
    assert_hint(labels(runs, type_counts={}), "type_counts is empty")


@pytest.mark.parametrize(("event", "says"), [
    ("node_complete", "one node's output each time"),
    ("gate_pause", "the draft the reviewer reads"),
    ("node_start", "node_start carries no final output"),
    ("run_start", "run_start carries no final output"),
    ("run_completed", "course text's name; this toolkit calls it run_complete"),
    ("finish", "not a type of event"),
])
def test_event_labels_points_at_the_stream_for_a_wrong_final_event(runs: SimpleNamespace,
                                                                   event: str, says: str) -> None:
    assert_hint(labels(runs, final_output_event=event), says)


@pytest.mark.parametrize(("field", "says"), [
    ("payload", "not the one with the output"),
    ("seq", "not the one with the output"),
    ("status", "inside the payload"),
    ("cost_usd", "inside the payload"),
    ("content", "not a field of an event"),
])
def test_event_labels_points_at_the_json_line_for_a_wrong_field(runs: SimpleNamespace,
                                                                field: str, says: str) -> None:
    assert_hint(labels(runs, final_output_field=field), "final_output_field", says,
                hides="'output'")


@pytest.mark.parametrize("name", ["type_counts", "final_output_event", "final_output_field"])
@pytest.mark.parametrize("value", WRONG_TYPES)
def test_event_labels_answers_any_value_with_a_hint(runs: SimpleNamespace, name: str,
                                                    value: Any) -> None:
    verdict = labels(runs, **{name: value})
    assert not verdict.passed, str(verdict)
    if value is None:
        assert_hint(verdict, f"set {name}")


@pytest.mark.parametrize("value", FILLER)
def test_event_labels_refuses_filler(runs: SimpleNamespace, value: str) -> None:
    assert_hint(labels(runs, final_output_event=value), "final_output_event")
    assert_hint(labels(runs, final_output_field=value), "final_output_field")


def test_event_labels_never_repeats_a_huge_answer(runs: SimpleNamespace) -> None:
    for answers in ({"final_output_event": HUGE}, {"final_output_field": HUGE},
                    {"type_counts": {HUGE: 1}}):
        verdict = labels(runs, **answers)
        assert_hint(verdict)
        assert len(verdict.message) < 400, verdict.message[:400]


def test_event_labels_needs_one_whole_stream(runs: SimpleNamespace) -> None:
    events = runs.events["approve"]
    answers = {"type_counts": type_counts(events), "final_output_event": "run_complete",
               "final_output_field": "output"}
    assert_hint(selfcheck.event_labels(events[:-1], **answers), "not one whole run")
    assert_hint(selfcheck.event_labels(events + runs.events["reject"], **answers),
                "more than one run")


@pytest.mark.parametrize("given", [None, [], "events", [1, 2, 3], {"a": 1}, math.nan])
def test_event_labels_needs_events_to_judge(given: Any) -> None:
    verdict = selfcheck.event_labels(given, type_counts={"run_start": 1},
                                     final_output_event="run_complete",
                                     final_output_field="output")
    assert_hint(verdict, "ex1_events")


# --- exercise 2: cost_stop ---------------------------------------------------------------


def stop_verdict(runs: SimpleNamespace, taken: Any, threshold: Any) -> Any:
    return selfcheck.cost_stop(taken, runs.ledger, cost_threshold=threshold)


@pytest.mark.parametrize(("threshold", "at"), [(0.05, "writer"), (0.001, "researcher"),
                                               (0.03, "writer")])
def test_cost_stop_passes_a_consumer_that_leaves_where_the_cost_passes(
        runs: SimpleNamespace, threshold: float, at: str) -> None:
    taken = consume(runs, stop_at_cost, threshold)
    assert_pass(stop_verdict(runs, taken, threshold), f"of {at})", "cancelled there")
    assert runs.ledger.events(taken[0].run_id)[-1].payload["status"] == "cancelled"


def test_cost_stop_passes_at_an_analyst_whose_twin_finishes_too(runs: SimpleNamespace) -> None:
    """The analysts finish together: one more node_complete after the stop is the run's."""
    taken = consume(runs, stop_at_cost, 0.015)
    assert taken[-1].node_id in ("analyst_a", "analyst_b")
    assert_pass(stop_verdict(runs, taken, 0.015), "cancelled there")


@pytest.mark.parametrize(("decision", "threshold"), [("approve", 0.078), ("reject", 0.07)])
def test_cost_stop_passes_when_the_run_ended_before_the_cancel(runs: SimpleNamespace,
                                                               decision: str,
                                                               threshold: float) -> None:
    """Past the threshold at the last paid node: nothing was left to cancel."""
    taken = consume(runs, stop_at_cost, threshold, decision)
    verdict = stop_verdict(runs, taken, threshold)
    assert_pass(verdict)
    status = runs.ledger.events(taken[0].run_id)[-1].payload["status"]
    assert ("no paid work left" in verdict.message) is (status != "cancelled")


def test_cost_stop_accepts_a_numpy_threshold(runs: SimpleNamespace) -> None:
    taken = consume(runs, stop_at_cost, 0.05)
    assert_pass(stop_verdict(runs, taken, np.float64(0.05)))


@pytest.mark.parametrize(("consumer", "says"), [
    (one_late, "1 event after the cost passed"),
    (too_early, "not yet past cost_threshold"),
    (never_stops, "took the whole run, through run_complete"),
    (trims, "went on after seq"),
])
def test_cost_stop_points_at_the_loop_for_wrong_consumers(runs: SimpleNamespace,
                                                          consumer: Callable, says: str) -> None:
    taken = consume(runs, consumer, 0.05)
    assert_hint(stop_verdict(runs, taken, 0.05), says)


def test_cost_stop_says_a_threshold_the_run_never_passes(runs: SimpleNamespace) -> None:
    taken = consume(runs, stop_at_cost, 5.0)
    assert_hint(stop_verdict(runs, taken, 5.0), "without its cost passing", "smaller threshold")


def test_cost_stop_says_a_missing_return(runs: SimpleNamespace) -> None:
    assert_hint(stop_verdict(runs, None, 0.05), "returned nothing", "return taken")
    assert_hint(stop_verdict(runs, [], 0.05), "took no event")


def test_cost_stop_needs_events_of_one_recorded_run(runs: SimpleNamespace,
                                                    tmp_path: Path) -> None:
    both = runs.events["approve"][:3] + runs.events["reject"][:3]
    assert_hint(stop_verdict(runs, both, 0.05), "more than one run")
    elsewhere = ReplayLedger(str(tmp_path / "other.duckdb"))
    assert_hint(selfcheck.cost_stop(runs.events["approve"][:3], elsewhere, cost_threshold=0.05),
                "no record of your run")


@pytest.mark.parametrize(("value", "says"), [
    (None, "set cost_threshold"),
    (0, "choose an amount above zero"),
    (-0.05, "cannot be negative"),
    ("0.05", "drop the quotes"),
    ("$0.05", "drop the quotes and the $"),
    (math.nan, "should be a number of USD"),
    (math.inf, "should be a number of USD"),
    (True, "should be a number of USD"),
    ([0.05], "should be a number of USD"),
    ({"usd": 0.05}, "should be a number of USD"),
    (HUGE, "should be a number of USD"),
])
def test_cost_stop_answers_any_threshold_with_a_hint(runs: SimpleNamespace, value: Any,
                                                     says: str) -> None:
    verdict = stop_verdict(runs, runs.events["approve"], value)
    assert_hint(verdict, says)
    assert len(verdict.message) < 400


@pytest.mark.parametrize("given", ["events", [1, 2], {"a": 1}, 3, object()])
def test_cost_stop_needs_events_and_a_ledger(runs: SimpleNamespace, given: Any) -> None:
    assert_hint(selfcheck.cost_stop(given, runs.ledger, cost_threshold=0.05), "ex2_events")
    assert_hint(selfcheck.cost_stop(runs.events["approve"], given, cost_threshold=0.05),
                "ledger")


# --- exercise 3: node_counter ------------------------------------------------------------


def counted(result: Any, *, run_level: bool = False, factor: int = 1,
            key: Callable[[MeshEvent], Any] = lambda e: e.node_id) -> dict[Any, int]:
    """What a subscriber would have counted over the run's events."""
    counts: Counter[Any] = Counter()
    for event in result.events:
        if event.node_id is not None or run_level:
            counts[key(event)] += factor
    return dict(counts)


def counter_verdict(runs: SimpleNamespace, counts: Any, decision: str = "approve",
                    subscriber: Any = print) -> Any:
    return selfcheck.node_counter(runs.result[decision], counts, count_per_node=subscriber)


@pytest.mark.parametrize("decision", DECISIONS)
def test_node_counter_passes_the_counts_of_the_learners_run(runs: SimpleNamespace,
                                                            decision: str) -> None:
    result = runs.result[decision]
    verdict = counter_verdict(runs, counted(result), decision)
    assert_pass(verdict, "the most for quality_gate (5)", "2 events of the run itself")
    assert ("over 7 nodes" in verdict.message) is (decision == "approve")


def test_node_counter_passes_a_real_subscriber_run(runs: SimpleNamespace) -> None:
    """The lesson's way: the learner's function as on_event= fills the dict."""
    node_counts: dict[str, int] = {}

    def count_per_node(event: MeshEvent) -> None:
        node_counts[event.node_id] = node_counts.get(event.node_id, 0) + 1

    result = runs.pipeline.run(CAPSTONE_TASK, approver=approver("approve"),
                               on_event=count_per_node)
    assert None in node_counts
    assert_pass(selfcheck.node_counter(result, node_counts, count_per_node=count_per_node))


def test_node_counter_accepts_the_run_counted_under_none(runs: SimpleNamespace) -> None:
    result = runs.result["approve"]
    assert_pass(counter_verdict(runs, counted(result, run_level=True)))
    assert_hint(counter_verdict(runs, {**counted(result), None: 5}), "node_counts[None]")


def test_node_counter_points_at_node_id_for_wrong_counts(runs: SimpleNamespace) -> None:
    result = runs.result["approve"]
    assert_hint(counter_verdict(runs, {}), "counted nothing", "warnings under the run cell")
    assert_hint(counter_verdict(runs, {"writer": 0}), "counted nothing")
    assert_hint(counter_verdict(runs, counted(result, key=lambda e: e.type.value)),
                "keyed by event type")
    assert_hint(counter_verdict(runs, counted(result, factor=2)), "twice")
    assert_hint(counter_verdict(runs, {**counted(result), "Writer": 4}), "'Writer']",
                "no event of your run is about that node")
    without_gate = {k: v for k, v in counted(result).items() if k != "hitl_gate"}
    assert_hint(counter_verdict(runs, without_gate), "no entry for 1 node")
    only_completions = Counter(e.node_id for e in result.events
                               if e.type is EventType.NODE_COMPLETE)
    assert_hint(counter_verdict(runs, dict(only_completions)), "is off", "whatever its type",
                hides=5)


@pytest.mark.parametrize(("counts", "says"), [
    ({"writer": "4"}, "drop the quotes"),
    ({"writer": -4}, "cannot be negative"),
    ({"writer": 2.5}, "should be a whole number"),
    ({"writer": math.nan}, "should be a whole number"),
    ({"writer": True}, "should be a whole number"),
    ({("writer",): 4}, "should be text in quotes"),
    ({HUGE: 4}, "no event of your run is about that node"),
    ({None: "2"}, "drop the quotes"),
])
def test_node_counter_answers_wrong_counts_with_a_hint(runs: SimpleNamespace, counts: Any,
                                                       says: str) -> None:
    verdict = counter_verdict(runs, counts)
    assert_hint(verdict, says)
    assert len(verdict.message) < 400


@pytest.mark.parametrize("value", [["writer", 4], "writer", 4, 4.5, object(), True])
def test_node_counter_needs_a_dict_of_counts(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(counter_verdict(runs, value), "node_counts should be a dict")


@pytest.mark.parametrize("value", [None, "count_per_node", 3, [print], dict, object()])
def test_node_counter_needs_a_subscriber(runs: SimpleNamespace, value: Any) -> None:
    counts = counted(runs.result["approve"])
    expected = "set count_per_node" if value is None else "count_per_node should be a function"
    assert_hint(counter_verdict(runs, counts, subscriber=value), expected)


@pytest.mark.parametrize("given", [None, "result", [], {"run": 1}, 3])
def test_node_counter_needs_a_run_to_judge(given: Any) -> None:
    assert_hint(selfcheck.node_counter(given, {"writer": 4}, count_per_node=print),
                "ex3_result")
