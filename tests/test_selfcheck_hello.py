"""Lesson 1's self-checks, judged against real runs of its workflows in mock mode on a
ledger of their own.

Every check is called with a right answer (PASS), wrong answers, values of the wrong
type, filler and duplicates (HINT): it never raises, and a HINT never gives the answer
away.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from meshflow_nb import EventType, Node, ReplayLedger, Role, WorkflowDefinition, agent_for
from meshflow_nb.notebook.selfcheck import Verdict
from meshflow_nb.notebook.selfcheck import hello as checks

TASK = "Summarise what a small team needs before adopting AI agents"
OTHER_TASK = "Compare three ways to keep an audit trail for AI agents in a regulated bank"
CHANGED = ["tokens_in", "tokens_out", "tokens", "cost_usd"]
"""What moves between hello's runs on TASK and on OTHER_TASK (asserted below)."""
REASON = ("The new task is longer, so every agent reads more characters and writes other "
          "text: tokens and cost moved. The workflow is the same two nodes, so "
          "node_executions stayed.")

WRONG_TYPES = [["3"], {"a": 1}, 9.5, math.nan, "nine", object(), True, b"3"]
"""Values of every kind a learner might type where another kind belongs."""
FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a", "your answer here",
          "asdf", "..."]
HUGE = "run_start " * 20_000


@pytest.fixture(scope="module")
def mock_env() -> Iterator[None]:
    """Mock agents without simulated latency, for every run of this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        patch.delenv("MESHFLOW_MOCK_SEED", raising=False)
        yield


def hello(name: str = "hello", third: Node | None = None, edge: bool = True) -> WorkflowDefinition:
    """The lesson's workflow; with ``third``, that node too (after the writer if ``edge``)."""
    workflow = (WorkflowDefinition(name)
                .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER))
                .add_node(Node("writer", agent_for(Role.EXECUTOR, angle="writer"),
                               Role.EXECUTOR))
                .add_edge("researcher", "writer"))
    if third is not None:
        workflow.add_node(third)
        if edge:
            workflow.add_edge("writer", third.id)
    return workflow


def reviewer() -> Node:
    return Node("reviewer", agent_for(Role.CRITIC), Role.CRITIC)


def broken_agent(ctx: Any) -> str:
    raise RuntimeError("this agent always fails")


@pytest.fixture(scope="module")
def runs(mock_env: None, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Real runs, one of each kind the lesson's exercises judge, on one ledger."""
    tmp = tmp_path_factory.mktemp("hello")
    ledger = ReplayLedger(str(tmp / "hello.duckdb"))
    found = SimpleNamespace(ledger=ledger, other_ledger=ReplayLedger(str(tmp / "other.duckdb")))
    found.hello = ledger.attach(hello())
    found.result = found.hello.run(TASK)
    found.ex3 = found.hello.run(OTHER_TASK)
    found.three = hello("hello_plus_one", reviewer())
    found.ex1 = ledger.attach(found.three).run(TASK)
    found.loose = hello("hello_plus_one", reviewer(), edge=False)
    found.loose_run = ledger.attach(found.loose).run(TASK)
    found.failing = hello("hello_plus_one", Node("reviewer", broken_agent, Role.CRITIC))
    found.failed_run = ledger.attach(found.failing).run(TASK)
    found.elsewhere = found.other_ledger.attach(hello("hello_plus_one", reviewer())).run(TASK)
    ledger.flush()
    found.other_ledger.flush()
    return found


def assert_pass(verdict: Verdict, *phrases: str) -> None:
    assert isinstance(verdict, Verdict), verdict
    assert verdict.passed, str(verdict)
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)


def assert_hint(verdict: Verdict, *phrases: str, hides: Any = None) -> None:
    """A HINT naming each phrase; with ``hides``, the right answer is not in it."""
    assert isinstance(verdict, Verdict), verdict
    assert not verdict.passed, str(verdict)
    assert str(verdict).startswith("HINT: ")
    for phrase in phrases:
        assert phrase in verdict.message, str(verdict)
    if hides is not None:
        assert str(hides) not in verdict.message, str(verdict)


def test_the_checks_are_exported_for_the_lesson() -> None:
    from meshflow_nb.notebook import selfcheck

    assert {"third_node", "run_in_ledger", "task_totals"} <= set(selfcheck.__all__)
    assert selfcheck.third_node is checks.third_node


# --- exercise 1: third_node -------------------------------------------------------------


def test_third_node_passes_the_count_of_the_learners_run(runs: SimpleNamespace) -> None:
    verdict = checks.third_node(runs.ex1, my_workflow=runs.three, predicted_node_executions=3)
    assert_pass(verdict, "3 node executions, as you predicted: researcher, writer, reviewer")


def test_third_node_accepts_a_numpy_count(runs: SimpleNamespace) -> None:
    assert_pass(checks.third_node(runs.ex1, my_workflow=runs.three,
                                  predicted_node_executions=np.int64(3)))


@pytest.mark.parametrize(("predicted", "says"), [
    (2, "you counted the edges"),
    (4, "not your run's count"),
    (0, "not your run's count"),
    (1, "ex1_result.executed lists them"),
])
def test_third_node_points_at_the_run_for_a_wrong_prediction(runs: SimpleNamespace,
                                                             predicted: int, says: str) -> None:
    assert_hint(checks.third_node(runs.ex1, my_workflow=runs.three,
                                  predicted_node_executions=predicted), says, hides=3)


def test_third_node_asks_for_a_third_node_in_the_untouched_copy(runs: SimpleNamespace) -> None:
    two = hello("hello_plus_one")
    run = two.run(TASK)
    assert_hint(checks.third_node(run, my_workflow=two, predicted_node_executions=2),
                "my_workflow has 2 nodes: add a third")


def test_third_node_refuses_more_than_one_new_node(runs: SimpleNamespace) -> None:
    four = hello("hello_plus_one", reviewer())
    four.add_node(Node("publisher", agent_for(Role.ORCHESTRATOR), Role.ORCHESTRATOR))
    four.add_edge("reviewer", "publisher")
    assert_hint(checks.third_node(four.run(TASK), my_workflow=four, predicted_node_executions=4),
                "has 4 nodes", "adds one node")


def test_third_node_sends_a_rejected_workflow_to_the_preflight_report(
        runs: SimpleNamespace) -> None:
    assert runs.loose_run.status.value == "rejected_preflight"
    assert_hint(checks.third_node(runs.loose_run, my_workflow=runs.loose,
                                  predicted_node_executions=3),
                "pre-flight rejected my_workflow", "read the report")


def test_third_node_sends_a_failed_run_to_its_error(runs: SimpleNamespace) -> None:
    assert_hint(checks.third_node(runs.failed_run, my_workflow=runs.failing,
                                  predicted_node_executions=3), "ended failed")


def test_third_node_notices_a_run_of_another_workflow(runs: SimpleNamespace) -> None:
    assert_hint(checks.third_node(runs.result, my_workflow=runs.three,
                                  predicted_node_executions=3),
                "another workflow than my_workflow")


def test_third_node_asks_for_the_run_when_there_is_none(runs: SimpleNamespace) -> None:
    assert_hint(checks.third_node(None, my_workflow=runs.three, predicted_node_executions=3),
                "ex1_result is None", "run the cell after the answer cell")


def test_third_node_asks_for_the_prediction_first(runs: SimpleNamespace) -> None:
    assert_hint(checks.third_node(runs.ex1, my_workflow=runs.three,
                                  predicted_node_executions=None),
                "set predicted_node_executions")


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_third_node_answers_any_prediction_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(checks.third_node(runs.ex1, my_workflow=runs.three,
                                  predicted_node_executions=value),
                "predicted_node_executions should be a whole number")


def test_third_node_says_a_quoted_count_is_text(runs: SimpleNamespace) -> None:
    assert_hint(checks.third_node(runs.ex1, my_workflow=runs.three,
                                  predicted_node_executions="3"), "drop the quotes")


@pytest.mark.parametrize("value", [*WRONG_TYPES, len, WorkflowDefinition])
def test_third_node_answers_any_workflow_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(checks.third_node(runs.ex1, my_workflow=value, predicted_node_executions=3),
                "my_workflow should be a workflow")


@pytest.mark.parametrize("value", ["run", 3, [], {"run": 1}])
def test_third_node_needs_a_run_to_judge(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(checks.third_node(value, my_workflow=runs.three, predicted_node_executions=3),
                "ex1_result should be")


# --- exercise 2: run_in_ledger ----------------------------------------------------------


def ex2(runs: SimpleNamespace, rows: Any, first: Any = "run_start",
        last: Any = "run_complete", ledger: Any = None) -> Verdict:
    return checks.run_in_ledger(ledger or runs.ledger, runs.ex1, my_rows=rows,
                                first_event_type=first, last_event_type=last)


def test_run_in_ledger_passes_the_rows_of_the_learners_run(runs: SimpleNamespace) -> None:
    verdict = ex2(runs, runs.ledger.to_dataframe(runs.ex1.run_id))
    assert_pass(verdict, "your run's 8 rows, from run_start to run_complete")
    assert runs.ex1.run_id not in verdict.message  # nothing volatile in a stored output


@pytest.mark.parametrize(("first", "last"), [
    ("Run start", "RUN_COMPLETE"), ("EventType.RUN_START", "'run_complete'"),
    (EventType.RUN_START, EventType.RUN_COMPLETE), (" run-start ", "`run_complete`"),
])
def test_run_in_ledger_accepts_ways_of_writing_a_type(runs: SimpleNamespace, first: Any,
                                                      last: Any) -> None:
    assert_pass(ex2(runs, runs.ledger.to_dataframe(runs.ex1.run_id), first, last))


def test_run_in_ledger_takes_rows_in_any_order(runs: SimpleNamespace) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id).sort_values("seq", ascending=False)
    assert_pass(ex2(runs, rows))


def test_run_in_ledger_takes_a_query_with_the_ledger_columns(runs: SimpleNamespace) -> None:
    rows = runs.ledger.sql("SELECT run_id, seq, event_type FROM ledger_entries "
                           f"WHERE run_id = '{runs.ex1.run_id}'")
    assert_pass(ex2(runs, rows))


def test_run_in_ledger_wants_one_run_not_the_whole_ledger(runs: SimpleNamespace) -> None:
    assert_hint(ex2(runs, runs.ledger.to_dataframe()), "holds rows of", "runs",
                "to_dataframe takes a run_id")


def test_run_in_ledger_wants_the_learners_run_not_another(runs: SimpleNamespace) -> None:
    assert_hint(ex2(runs, runs.ledger.to_dataframe(runs.result.run_id)),
                "another run of the ledger", "ex1_result.run_id")


def test_run_in_ledger_notices_rows_from_another_ledger(runs: SimpleNamespace) -> None:
    rows = runs.other_ledger.to_dataframe(runs.elsewhere.run_id)
    assert_hint(ex2(runs, rows), "a run that is not in ledger")


def test_run_in_ledger_wants_every_row(runs: SimpleNamespace) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id)
    assert_hint(ex2(runs, rows.head(3)), "only some of your run's rows")
    assert_hint(ex2(runs, rows.iloc[0:0]), "has no rows")


def test_run_in_ledger_wants_the_ledger_columns(runs: SimpleNamespace) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id)
    assert_hint(ex2(runs, rows[["seq", "node_id"]]), "no run_id or event_type column")
    assert_hint(ex2(runs, rows.drop(columns=["event_type"])), "no event_type column")


@pytest.mark.parametrize(("first", "last", "says"), [
    ("researcher", "run_complete", "is a node_id"),
    ("run_start", "writer", "is a node_id"),
    ("banana", "run_complete", "is not an event type"),
    ("run_complete", "run_start", "the other way round"),
    ("run_start", "run_start", "are the same"),
    ("node_start", "run_complete", "first_event_type: sort my_rows by seq"),
    ("run_start", "node_complete", "last_event_type: sort my_rows by seq"),
])
def test_run_in_ledger_points_at_the_event_type_column(runs: SimpleNamespace, first: str,
                                                       last: str, says: str) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id)
    verdict = ex2(runs, rows, first, last)
    assert_hint(verdict, says)
    right = {"run_start", "run_complete"} - {first, last}
    for answer in right:
        assert answer not in verdict.message, str(verdict)


def test_run_in_ledger_asks_for_exercise_1_in_the_ledger(runs: SimpleNamespace) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id)
    assert_hint(ex2(runs, rows, ledger=runs.other_ledger), "exercise 1's run is not in ledger")


@pytest.mark.parametrize("value", [*WRONG_TYPES, [{"run_id": "x"}], "my rows"])
def test_run_in_ledger_answers_any_rows_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(ex2(runs, value), "my_rows should be a DataFrame")


@pytest.mark.parametrize("value", [*FILLER, HUGE, 3, math.nan, ["run_start"], None, "  "])
def test_run_in_ledger_answers_any_type_name_with_a_hint(runs: SimpleNamespace,
                                                         value: Any) -> None:
    rows = runs.ledger.to_dataframe(runs.ex1.run_id)
    assert_hint(ex2(runs, rows, first=value), "first_event_type")


def test_run_in_ledger_asks_for_every_unset_answer_at_once(runs: SimpleNamespace) -> None:
    assert_hint(ex2(runs, None, None, None),
                "set my_rows (your run's rows of the ledger), first_event_type")


@pytest.mark.parametrize("value", [None, "ledger", pd.DataFrame()])
def test_run_in_ledger_needs_the_ledger(runs: SimpleNamespace, value: Any) -> None:
    verdict = checks.run_in_ledger(value, runs.ex1, my_rows=pd.DataFrame(),
                                   first_event_type="run_start", last_event_type="run_complete")
    assert_hint(verdict, "ledger")


# --- exercise 3: task_totals ------------------------------------------------------------


def ex3(runs: SimpleNamespace, changed: Any = None, why: Any = REASON, task: Any = OTHER_TASK,
        run: Any = "ex3") -> Verdict:
    return checks.task_totals(runs.result, runs.ex3 if run == "ex3" else run, new_task=task,
                              changed_totals=CHANGED if changed is None else changed,
                              why_changed=why)


def test_the_other_task_moves_the_totals_the_tests_expect(runs: SimpleNamespace) -> None:
    assert checks.changed_between(runs.result.totals, runs.ex3.totals) == CHANGED


def test_task_totals_passes_the_totals_that_changed_and_a_reason(runs: SimpleNamespace) -> None:
    verdict = ex3(runs)
    assert_pass(verdict, "tokens_in, tokens_out, tokens, cost_usd changed with the task",
                "node_executions, loop_iterations, carbon_g did not")


@pytest.mark.parametrize("names", [
    ["cost", "tokens_in", "tokens_out", "tokens"],
    ["Tokens In", "tokens-out", "total tokens", "cost_usd"],
    ("tokens", "cost_usd", "tokens_out", "totals.tokens_in"),
])
def test_task_totals_accepts_other_names_and_orders(runs: SimpleNamespace, names: Any) -> None:
    assert_pass(ex3(runs, changed=names))


@pytest.mark.parametrize(("names", "says", "hides"), [
    (["tokens_in", "tokens", "cost_usd"], "leaves out 1 total that changed", "tokens_out"),
    (["cost_usd"], "leaves out 3 totals that changed", "tokens_in"),
    ([*CHANGED, "node_executions"], "node_executions is the same in both runs", None),
    ([*CHANGED, "carbon_g"], "carbon_g is the same in both runs", None),
    ([*CHANGED, "duration_ms"], "changes on every run", None),
    (["price", *CHANGED], "'price' is not one of the totals", None),
    (["cost", "cost_usd", "tokens"], "changed_totals[1] repeats changed_totals[0]", None),
    (["tokens_in", "tokens_in"], "changed_totals[1] repeats changed_totals[0]", None),
])
def test_task_totals_points_at_the_table(runs: SimpleNamespace, names: list[str], says: str,
                                         hides: str | None) -> None:
    assert_hint(ex3(runs, changed=names), says, hides=hides)


@pytest.mark.parametrize(("why", "says"), [
    ("The totals changed because I asked the workflow about a different subject entirely "
     "this time.", "what about the new task moved the tokens"),
    ("A longer task gives each agent more characters to read, so the tokens and the cost "
     "went up accordingly.", "why node_executions stayed the same"),
])
def test_task_totals_wants_both_reasons(runs: SimpleNamespace, why: str, says: str) -> None:
    assert_hint(ex3(runs, why=why), says)


@pytest.mark.parametrize("why", [*FILLER, "tokens changed", 42, ["because"], math.nan])
def test_task_totals_refuses_a_reason_that_says_nothing(runs: SimpleNamespace, why: Any) -> None:
    assert_hint(ex3(runs, why=why), "why_changed")


def test_task_totals_answers_a_huge_pasted_reason_with_a_hint(runs: SimpleNamespace) -> None:
    assert_hint(ex3(runs, why=REASON + " " + "Each agent reads its input text. " * 30_000),
                "why_changed repeats the same words")


@pytest.mark.parametrize("task", [TASK, TASK.upper(), f"  {TASK}  "])
def test_task_totals_wants_a_task_of_the_learners_own(runs: SimpleNamespace, task: str) -> None:
    assert_hint(ex3(runs, task=task), "TASK again")


def test_task_totals_asks_for_the_run_of_the_new_task(runs: SimpleNamespace) -> None:
    assert_hint(ex3(runs, run=None), "ex3_result is None")
    assert_hint(ex3(runs, task="Explain what a ledger row holds, field by field"),
                "ran another task than new_task")


def test_task_totals_compares_two_runs_of_hello(runs: SimpleNamespace) -> None:
    other = runs.three.run(OTHER_TASK)
    assert_hint(ex3(runs, run=other), "'hello_plus_one'", "the same workflow")


def test_task_totals_says_when_nothing_changed(runs: SimpleNamespace) -> None:
    same = dataclasses.replace(runs.result, task=OTHER_TASK, run_id="0" * 16)
    assert_hint(ex3(runs, run=same), "no total changed")


@pytest.mark.parametrize("value", [*WRONG_TYPES, [], [None], [3], [math.nan], ["todo"]])
def test_task_totals_answers_any_list_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(ex3(runs, changed=value), "changed_totals")


@pytest.mark.parametrize("value", [*FILLER, 3, math.nan, ["a task"], "two words"])
def test_task_totals_answers_any_task_with_a_hint(runs: SimpleNamespace, value: Any) -> None:
    assert_hint(ex3(runs, task=value), "new_task")


def test_task_totals_asks_for_every_unset_answer_at_once(runs: SimpleNamespace) -> None:
    verdict = checks.task_totals(runs.result, None, new_task=None, changed_totals=None,
                                 why_changed="")
    assert_hint(verdict, "set new_task (a task of your own), changed_totals", "why_changed")


@pytest.mark.parametrize("value", [None, "result", 3, print])
def test_task_totals_needs_section_3s_run(runs: SimpleNamespace, value: Any) -> None:
    verdict = checks.task_totals(value, runs.ex3, new_task=OTHER_TASK, changed_totals=CHANGED,
                                 why_changed=REASON)
    assert_hint(verdict, "result")


def test_no_check_reads_a_value_it_was_not_given(tmp_path: Path) -> None:
    """Outside a notebook nothing is looked up: every check asks for its values."""
    for check in (checks.third_node, checks.run_in_ledger, checks.task_totals):
        verdict = check()
        assert not verdict.passed and "not there yet" in verdict.message, (check, verdict)
