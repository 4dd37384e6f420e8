"""Lesson 15's self-checks, judged against real runs: live agents against local Messages
API servers and recordings, as the lesson makes them.

Every check is called with a right answer (PASS), wrong answers, values of the wrong
type and filler (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import (
    AnthropicAgent,
    Fault,
    LocalMessagesServer,
    ReplayLedger,
    Role,
    WorkflowDefinition,
    estimate_cost,
)
from meshflow_nb.notebook import selfcheck
from meshflow_nb.notebook.selfcheck.live import Dollars, OrNone
from meshflow_nb.pipelines import (
    CAPSTONE_CASSETTE,
    CAPSTONE_TASK,
    build_capstone_pipeline,
    recorded_policy,
    replay_rows,
)

LIVE_VARS = ("MESHFLOW_MOCK", "MESHFLOW_REPLAY", "MESHFLOW_RECORD", "ANTHROPIC_BASE_URL",
             "ANTHROPIC_API_KEY", "MESHFLOW_MODEL", "MESHFLOW_PRICES")
EX3_TASK = "Compare heat pumps and gas boilers for heating a small office"
CURRENT, LEGACY, RETIRED = "claude-sonnet-5-5", "claude-sonnet-4-6", "claude-sonnet-4-5"


def brief_pipeline(model: str | None = None) -> WorkflowDefinition:
    """The lesson's small pipeline: a researcher, then a writer that streams."""
    return (WorkflowDefinition("brief", policy=recorded_policy())
            .add_node("researcher", AnthropicAgent(Role.RESEARCHER, model=model),
                      role=Role.RESEARCHER)
            .add_node("writer", AnthropicAgent(Role.EXECUTOR, angle="writer", model=model,
                                               stream=True, max_tokens=600), role=Role.EXECUTOR)
            .add_edge("researcher", "writer"))


@contextmanager
def calls_to(patch: pytest.MonkeyPatch, **variables: str) -> Iterator[None]:
    """Exactly these live-mode variables for the block (the lesson's environment())."""
    with patch.context() as inner:
        for name in LIVE_VARS:
            inner.delenv(name, raising=False)
        for name, value in variables.items():
            inner.setenv(name, value)
        yield


def with_fault(server: LocalMessagesServer, patch: pytest.MonkeyPatch,
               fault: Fault) -> tuple[Any, list[Fault]]:
    """Exercise 2's run cell: the fault injected, the pipeline run, what it left."""
    server.clear_faults()
    server.inject(fault)
    with calls_to(patch, ANTHROPIC_BASE_URL=server.url):
        result = brief_pipeline().run(CAPSTONE_TASK)
    left = server.faults_pending()
    server.clear_faults()
    return result, left


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Real runs, one of each kind lesson 15's exercises judge."""
    tmp = tmp_path_factory.mktemp("live")
    found = SimpleNamespace(faults={}, ex4={})
    with pytest.MonkeyPatch.context() as patch, LocalMessagesServer() as server, \
            LocalMessagesServer() as ex3_server, \
            LocalMessagesServer(models=[CURRENT, LEGACY, "claude-haiku-4-5"]) as up_to_date:
        with calls_to(patch, MESHFLOW_REPLAY=CAPSTONE_CASSETTE):
            found.preview = estimate_cost(build_capstone_pipeline(policy=recorded_policy()),
                                          CAPSTONE_TASK)
        for name, fault in {
                "twice": Fault("overloaded", times=2), "rate_twice": Fault("rate_limit", times=2),
                "writer_twice": Fault("overloaded", times=2, match="the writer"),
                "once": Fault("overloaded"), "thrice": Fault("overloaded", times=3),
                "auth": Fault("unauthorized", times=2), "slow": Fault("slow", delay_s=0.01),
                "unmatched": Fault("overloaded", times=2, match="no prompt says this"),
                "tools": Fault("bad_tool_input")}.items():
            found.faults[name] = (fault, *with_fault(server, patch, fault))
        exercise3(found, tmp, server, ex3_server, patch)
        for model in (CURRENT, RETIRED, LEGACY):
            with calls_to(patch, ANTHROPIC_BASE_URL=up_to_date.url):
                found.ex4[model] = brief_pipeline(model).run(CAPSTONE_TASK)
        found.ex3_server = ex3_server
        yield found


def exercise3(found: SimpleNamespace, tmp: Path, server: LocalMessagesServer,
              ex3_server: LocalMessagesServer, patch: pytest.MonkeyPatch) -> None:
    """Exercise 3 for real: a recording on a server of its own, then replays of every
    kind a learner might write."""
    cassette = str(tmp / "ex3.json")
    found.ex3_ledger = ReplayLedger(str(tmp / "ex3.duckdb"))
    with calls_to(patch, ANTHROPIC_BASE_URL=ex3_server.url, MESHFLOW_RECORD=cassette):
        found.ex3_recorded = found.ex3_ledger.attach(brief_pipeline()).run(EX3_TASK)
    found.ex3_calls = len(ex3_server.requests)
    found.replays = {}
    for name, variables, task in (
            ("right", {"MESHFLOW_REPLAY": cassette}, EX3_TASK),
            ("miss", {"MESHFLOW_REPLAY": cassette}, CAPSTONE_TASK),
            ("shipped", {"MESHFLOW_REPLAY": CAPSTONE_CASSETTE}, EX3_TASK),
            ("other_server", {"ANTHROPIC_BASE_URL": server.url}, EX3_TASK)):
        ledger = ReplayLedger(str(tmp / f"replay-{name}.duckdb"))
        with calls_to(patch, **variables):
            found.replays[name] = (ledger, ledger.attach(brief_pipeline()).run(task))
    found.unattached = ReplayLedger(str(tmp / "unattached.duckdb"))
    # the live run again, on the recording's own server: it reaches the server
    found.reached_ledger = ReplayLedger(str(tmp / "reached.duckdb"))
    with calls_to(patch, ANTHROPIC_BASE_URL=ex3_server.url):
        found.reached = found.reached_ledger.attach(brief_pipeline()).run(EX3_TASK)
    found.ex3_calls_now = len(ex3_server.requests)


# --- exercise 1: cost_bound ---------------------------------------------------------


def bound_verdict(runs: SimpleNamespace, bound: Any = None, node: Any = "writer",
                  **changes: Any) -> Any:
    values = {"capstone_bound": runs.preview.cost_usd if bound is None else bound,
              "priciest_node": node, **changes}
    return selfcheck.cost_bound(runs.preview, **values)


@pytest.mark.parametrize("bound", ["exact", "printed", "numpy"])
def test_cost_bound_passes_the_bound_as_printed(runs: SimpleNamespace, bound: str) -> None:
    value = {"exact": runs.preview.cost_usd, "printed": round(runs.preview.cost_usd, 4),
             "numpy": np.float64(runs.preview.cost_usd)}[bound]
    assert_pass(bound_verdict(runs, value), f"at most ${runs.preview.cost_usd:.4f}",
                "writer can cost the most", "3 calls")


@pytest.mark.parametrize("node", ["writer", " Writer ", "WRITER", "'writer'"])
def test_cost_bound_accepts_ways_of_writing_the_node(runs: SimpleNamespace, node: str) -> None:
    assert_pass(bound_verdict(runs, node=node))


def test_cost_bound_points_at_the_first_line_for_wrong_bounds(runs: SimpleNamespace) -> None:
    bound = runs.preview.cost_usd
    row = next(c for c in runs.preview.calls if c.node_id == "researcher")
    cases = {row.cost_usd: "one node's row", 10: "number of model calls",
             bound * 100: "cents", 0.0083: "first line", bound * 1.1: "first line"}
    for value, says in cases.items():
        assert_hint(bound_verdict(runs, value), "capstone_bound", says,
                    hides=f"{bound:.4f}")


@pytest.mark.parametrize(("node", "says"), [
    ("quality_gate", "compare the cost_usd column"),
    ("researcher", "compare the cost_usd column"),
    ("hitl_gate", "not a node of the preview"),
    ("editor", "not a node of the preview"),
])
def test_cost_bound_points_at_the_table_for_wrong_nodes(runs: SimpleNamespace, node: str,
                                                        says: str) -> None:
    assert_hint(bound_verdict(runs, node=node), "priciest_node", says, hides="writer")


def test_cost_bound_says_quoted_numbers_are_text(runs: SimpleNamespace) -> None:
    assert_hint(bound_verdict(runs, "0.0621"), "drop the quotes")
    assert_hint(bound_verdict(runs, "$0.0621"), "drop the quotes and the $")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_cost_bound_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    if isinstance(value, float):  # a number is no wrong type for an amount
        value = float("nan")
    says = "set capstone_bound" if value is None else "capstone_bound should be"
    assert_hint(bound_verdict(runs, capstone_bound=value), says)
    assert_hint(bound_verdict(runs, node=value), "priciest_node")


def test_cost_bound_refuses_negative_amounts(runs: SimpleNamespace) -> None:
    assert_hint(bound_verdict(runs, -0.06), "cannot be negative")


@pytest.mark.parametrize("value", FILLER)
def test_cost_bound_refuses_filler_for_the_node(runs: SimpleNamespace, value: str) -> None:
    assert_hint(bound_verdict(runs, node=value), "priciest_node")


def test_cost_bound_needs_a_live_preview() -> None:
    """A preview built in mock mode has no rows: the HINT says how the lesson sets up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        mock = estimate_cost(build_capstone_pipeline(), CAPSTONE_TASK)
    assert_hint(selfcheck.cost_bound(mock, capstone_bound=0.06, priciest_node="writer"),
                "MESHFLOW_MOCK")
    assert_hint(selfcheck.cost_bound("preview", capstone_bound=0.06, priciest_node="writer"),
                "preview")


# --- exercise 2: retry_fault --------------------------------------------------------


def fault_verdict(runs: SimpleNamespace, name: str, **changes: Any) -> Any:
    fault, result, left = runs.faults[name]
    values = {"ex2_result": result, "ex2_left": left, "my_fault": fault, **changes}
    return selfcheck.retry_fault(**values)


@pytest.mark.parametrize(("name", "node", "kind"), [
    ("twice", "researcher", "overloaded"),
    ("rate_twice", "researcher", "rate_limit"),
    ("writer_twice", "writer", "overloaded"),
])
def test_retry_fault_passes_a_fault_retried_twice(runs: SimpleNamespace, name: str, node: str,
                                                  kind: str) -> None:
    assert_pass(fault_verdict(runs, name), f"{node} failed twice ({kind})",
                "retried twice after pauses of 0.05 s and 0.1 s", "completed")


@pytest.mark.parametrize(("name", "says"), [
    ("once", "1 retry, and two are asked for"),
    ("thrice", "failed after 3 attempts"),
    ("auth", "was not retried"),
    ("slow", "does not make the call fail"),
    ("unmatched", "hit no request"),
    ("tools", "hit no request"),
])
def test_retry_fault_says_where_to_look(runs: SimpleNamespace, name: str, says: str) -> None:
    assert_hint(fault_verdict(runs, name), says, hides="times=2")


def test_retry_fault_needs_the_run_after_the_answer(runs: SimpleNamespace) -> None:
    assert_hint(fault_verdict(runs, "twice", ex2_result=None), "run the cell after your answer")


def test_retry_fault_asks_for_the_answer_first() -> None:
    """Before the learner answers, the run cell leaves ex2_result None: the HINT asks for
    my_fault, not for the run."""
    assert_hint(selfcheck.retry_fault(None, [], my_fault=None), "set my_fault")


def test_retry_fault_refuses_a_run_of_another_fault(runs: SimpleNamespace) -> None:
    _, rate_limited, left = runs.faults["rate_twice"]
    assert_hint(fault_verdict(runs, "twice", ex2_result=rate_limited, ex2_left=left),
                "another fault than my_fault")


@pytest.mark.parametrize("value", [*WRONG_TYPES, Fault, "Fault('overloaded', times=2)"])
def test_retry_fault_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    says = "set my_fault" if value is None else "my_fault should be a fault"
    assert_hint(fault_verdict(runs, "twice", my_fault=value), says)
    if value is not None:
        assert_hint(fault_verdict(runs, "twice", ex2_result=value), "ex2_result")
        assert_hint(fault_verdict(runs, "twice", ex2_left=value), "ex2_left")


# --- exercise 3: replay_equal -------------------------------------------------------


def replay_verdict(runs: SimpleNamespace, name: str = "right", **changes: Any) -> Any:
    ledger, replayed = runs.replays[name]
    values = {"ex3_recorded": runs.ex3_recorded, "ex3_ledger": runs.ex3_ledger,
              "ex3_server": runs.ex3_server, "ex3_calls": runs.ex3_calls_now,
              "ex3_replay_ledger": ledger, "ex3_replayed": replayed, **changes}
    return selfcheck.replay_equal(**values)


def test_replay_equal_passes_a_replay_from_the_cassette(runs: SimpleNamespace) -> None:
    assert_pass(replay_verdict(runs), "2 node rows equal to the recording's",
                "no request reached the server")
    ledger, replayed = runs.replays["right"]
    assert replay_rows(ledger, replayed.run_id).equals(
        replay_rows(runs.ex3_ledger, runs.ex3_recorded.run_id))


def test_replay_equal_sends_a_miss_to_its_error(runs: SimpleNamespace) -> None:
    assert_hint(replay_verdict(runs, "miss"), "ex3_replayed.error names the first field")
    assert_hint(replay_verdict(runs, "shipped"), "ex3_replayed.error names the first field")


def test_replay_equal_finds_a_run_that_reached_the_server(runs: SimpleNamespace) -> None:
    assert_hint(replay_verdict(runs, ex3_replay_ledger=runs.reached_ledger,
                               ex3_replayed=runs.reached, ex3_calls=runs.ex3_calls),
                "reached ex3_server", "2 requests")


def test_replay_equal_finds_a_live_run_on_another_server(runs: SimpleNamespace) -> None:
    """The other server already cached the prompts: same outputs, another cost."""
    assert_hint(replay_verdict(runs, "other_server"), "cost_usd of researcher",
                "answer from ex3_cassette")


def test_replay_equal_wants_a_ledger_of_its_own_holding_the_run(runs: SimpleNamespace) -> None:
    assert_hint(replay_verdict(runs, ex3_replay_ledger=runs.ex3_ledger,
                               ex3_replayed=runs.ex3_recorded), "recording's own ledger")
    assert_hint(replay_verdict(runs, ex3_replay_ledger=runs.unattached), "attach it")
    assert_hint(replay_verdict(runs, ex3_replayed=runs.ex3_recorded), "holds no entry")


def test_replay_equal_needs_a_completed_recording(runs: SimpleNamespace) -> None:
    assert_hint(replay_verdict(runs, ex3_recorded=runs.replays["miss"][1]),
                "recording did not complete")


def test_replay_equal_asks_for_the_replay_first(runs: SimpleNamespace) -> None:
    assert_hint(replay_verdict(runs, ex3_replayed=None), "set ex3_replayed (the replayed run)")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_replay_equal_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(replay_verdict(runs, ex3_replayed=value), "ex3_replayed")
    assert_hint(replay_verdict(runs, ex3_replay_ledger=value), "ex3_replay_ledger")
    assert_hint(replay_verdict(runs, ex3_server=value), "ex3_server")
    assert_hint(replay_verdict(runs, ex3_calls=value), "ex3_calls")


# --- exercise 4: model_moved --------------------------------------------------------


def model_verdict(runs: SimpleNamespace, model: Any, run: str | None = None) -> Any:
    result = runs.ex4.get(run or model) if run != "none" else None
    return selfcheck.model_moved(result, lesson_model=model)


def test_model_moved_passes_a_current_model_every_agent_used(runs: SimpleNamespace) -> None:
    assert_pass(model_verdict(runs, CURRENT), f"every agent answered on {CURRENT}",
                "a current model")


@pytest.mark.parametrize(("model", "says"), [
    (RETIRED, "is retired"),
    (LEGACY, "legacy"),
    ("claude-opus-4-1", "is retired"),
    ("mock-free", "mock agents' price row"),
    ("gpt-4o", "not in the price table"),
    ("claude-sonnet-5.5", "not in the price table"),
])
def test_model_moved_points_at_the_price_table(runs: SimpleNamespace, model: str,
                                               says: str) -> None:
    assert_hint(model_verdict(runs, model, run=RETIRED), "lesson_model", says, hides=CURRENT)


def test_model_moved_wants_the_run_on_the_new_model(runs: SimpleNamespace) -> None:
    assert_hint(model_verdict(runs, CURRENT, run="none"), "run the cell after your answer")
    assert_hint(model_verdict(runs, CURRENT, run=RETIRED), "another model than lesson_model")
    assert_hint(model_verdict(runs, "claude-haiku-4-5", run=CURRENT),
                "another model than lesson_model")


@pytest.mark.parametrize("value", [*WRONG_TYPES, *FILLER, "claude sonnet 5"])
def test_model_moved_answers_any_value_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(model_verdict(runs, value, run=CURRENT), "lesson_model")
    if value is not None:
        assert_hint(selfcheck.model_moved(value, lesson_model=CURRENT), "ex4_result")


# --- the expectations ---------------------------------------------------------------


def test_every_lesson_15_check_answers_a_call_with_nothing() -> None:
    for check in (selfcheck.cost_bound, selfcheck.retry_fault, selfcheck.replay_equal,
                  selfcheck.model_moved):
        assert_hint(check(), "not")


@pytest.mark.parametrize(("value", "says"), [
    ("1.5", "drop the quotes"), ("$.5", "drop the quotes and the $"), (True, "not True"),
    (float("inf"), "a number of USD"), ([0.5], "not a list of 1 item")])
def test_dollars_says_what_an_amount_is(value: Any, says: str) -> None:
    with pytest.raises(Exception, match="x ") as caught:
        Dollars().clean(value, "x")
    assert says in str(caught.value)


def test_or_none_lets_none_through_and_judges_the_rest() -> None:
    inner = Dollars()
    assert OrNone(inner).clean(None, "x") is None and not OrNone(inner).unset(None)
    assert OrNone(inner).clean(2, "x") == 2.0
