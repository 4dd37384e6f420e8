"""Values no column can hold are refused when they are recorded, not when their batch is
written: such a value made the database refuse the whole batch, which was retried for
ever while every later entry of the process queued behind it. A refusal names the field
and the value, queues nothing, and leaves the next run of the process untouched."""

from __future__ import annotations

import dataclasses
import time

import pytest

from meshflow_nb import MeshflowError
from meshflow_nb.events import EventType, MeshEvent, utc_now
from meshflow_nb.ledger import LedgerError, LedgerWriteError, ReplayLedger
from meshflow_nb.ledger.errors import LedgerGapError, LedgerValueError
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")

DONE = MeshEvent("r", 2, "2026-01-05T09:00:00.000000+00:00", EventType.NODE_COMPLETE,
                 "writer", "executor", output="a draft", cost_usd=0.002, tokens_in=120,
                 tokens_out=80, uncertainty=0.2, carbon_g=0.01, payload={"model": "mock-1"})
"""A node_complete event every column can hold; each case below spoils one field."""

UNSTORABLE = {
    "nan_cost": ({"cost_usd": float("nan")}, "cost_usd = nan"),
    "huge_cost": ({"cost_usd": 1e12}, "cost_usd = 1000000000000.0"),
    "infinite_carbon": ({"carbon_g": float("-inf")}, "carbon_g = -inf"),
    "text_cost": ({"cost_usd": "cheap"}, "cost_usd = 'cheap'"),
    "tokens_beyond_bigint": ({"tokens_in": 2**70}, "tokens_in = 1180591620717411303424"),
    "fractional_tokens": ({"tokens_out": 1.5}, "tokens_out = 1.5"),
    "nul_in_node_id": ({"node_id": "writer\x00"}, "node_id = 'writer\\x00'"),
    "lone_surrogate": ({"output": "draft \ud800"}, "output = 'draft \\ud800'"),
    "keys_json_cannot_sort": ({"output": {1: "a", "b": 2}}, "output = {1: 'a', 'b': 2}"),
    "no_run_id": ({"run_id": None}, "run_id = None"),
    "position_zero": ({"seq": 0}, "seq = 0"),
}


def bad(**changes) -> MeshEvent:
    return dataclasses.replace(DONE, **changes)


def event(run_id: str, seq: int, kind: EventType = EventType.NODE_START, **fields) -> MeshEvent:
    return MeshEvent(run_id, seq, utc_now(), kind, **fields)


def capstone(ledger: ReplayLedger):
    return ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run("t")


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_a_value_no_column_can_hold_is_refused_naming_the_field(location, case):
    changes, shown = UNSTORABLE[case]
    ledger = ReplayLedger(location)
    with pytest.raises(LedgerValueError) as err:
        ledger.record(bad(**changes))
    assert isinstance(err.value, LedgerError) and isinstance(err.value, MeshflowError)
    assert shown in str(err.value) and "nothing was queued" in str(err.value)
    assert ledger.writer._queued == 0


def test_a_long_refused_value_is_cut_short_in_the_message(tmp_path):
    with pytest.raises(LedgerValueError) as err:
        ReplayLedger(tmp_path / "l.duckdb").record(bad(node_id="x" * 5000 + "\x00"))
    assert len(str(err.value)) < 300 and "…" in str(err.value)


def test_after_a_refused_value_the_next_run_records_everything(location):
    ledger = ReplayLedger(location)
    for changes in ({"cost_usd": float("nan")}, {"cost_usd": 1e12}, {"tokens_in": 2**70}):
        with pytest.raises(LedgerValueError):
            ledger.record(bad(**changes))
    began = time.monotonic()
    result = capstone(ledger)
    assert time.monotonic() - began < 5  # it used to wait 30 s at each commit barrier
    assert result.ok and (result.unrecorded, result.recording_error) == (0, None)
    assert len(result.events) == 23 and ledger.events(result.run_id) == result.events
    check = ledger.verify_chain()
    assert check.valid and check.entries_checked == 23, check.report()


def test_a_run_with_a_refused_entry_stores_a_whole_chain_up_to_it(location):
    ledger = ReplayLedger(location)
    ledger.record(event("r", 1, EventType.RUN_START, payload={"workflow": "w", "task": "t"}))
    ledger.record(event("r", 2, node_id="a"))
    with pytest.raises(LedgerValueError):
        ledger.record(event("r", 3, EventType.NODE_COMPLETE, node_id="a", cost_usd=float("nan")))
    with pytest.raises(LedgerGapError, match="lost its entries from #3 on"):
        ledger.record(event("r", 4, node_id="b"))  # it would leave a hole at #3
    with pytest.raises(LedgerGapError):
        ledger.record(event("r", 5, EventType.RUN_COMPLETE, payload={"status": "completed"}))
    with pytest.raises(LedgerWriteError, match="cost_usd = nan"):
        ledger.flush(run_id="r")
    ledger.flush()  # a refusal tells its run; the ledger itself is fine
    check = ledger.verify_chain()
    assert check.valid and check.incomplete_runs == ["r"], check.report()
    assert [e.seq for e in ledger.events("r")] == [1, 2]


def test_an_event_recorded_twice_is_refused_the_second_time(location):
    ledger = ReplayLedger(location)
    start = event("r", 1, EventType.RUN_START, payload={"workflow": "w", "task": "t"})
    ledger.record(start)
    with pytest.raises(LedgerValueError, match="stored twice"):
        ledger.record(start)
    with pytest.raises(LedgerValueError, match="out of order"):
        ledger.record(event("r", 3, node_id="a"))
    ledger.record(event("r", 2, node_id="a"))  # the run goes on: nothing was lost
    ledger.record(event("r", 3, EventType.RUN_COMPLETE, payload={"status": "completed"}))
    ledger.flush(run_id="r")
    assert ledger.verify_chain().valid
    assert [e.seq for e in ledger.events("r")] == [1, 2, 3]


def test_a_task_that_is_not_text_is_stored_as_json_in_the_run_record(location):
    ledger = ReplayLedger(location)
    ledger.record(event("r", 1, EventType.RUN_START,
                        payload={"workflow": "w", "task": {"topic": "batteries"}}))
    ledger.record(event("r", 2, EventType.RUN_COMPLETE, payload={"status": "completed"}))
    assert ledger.runs().loc[0, "task"] == '{"topic": "batteries"}'
    assert ledger.verify_chain().valid
