"""Conditions tried on values and loops read draft by draft (meshflow_nb.notebook.routing):
what lesson 04 shows with explain_condition, condition_table and loop_history."""

from __future__ import annotations

import builtins
import math
from typing import Any

import pytest

from meshflow_nb import ConfigError, HumanGate, Node, Role, WorkflowDefinition, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import condition_table, explain_condition, loop_history

BACK, ON = "quality_score < 0.8", "quality_score >= 0.8"
APPROVE = fixed_approver(True, "tester", "a test")


def scripted(scores: list[Any]) -> Any:
    """A critic that gives draft n the n-th score."""
    def critic(ctx: Any) -> dict[str, Any]:
        return {"quality_score": scores[min(ctx.iteration, len(scores)) - 1], "feedback": "x"}
    return critic


def draft_loop(scores: list[Any], back: str = BACK, on: str = ON) -> WorkflowDefinition:
    """writer -> critic -> (writer | gate) -> publisher, the lesson's loop in short."""
    return (WorkflowDefinition("loop")
            .add_node(Node("writer", lambda ctx: f"draft {ctx.iteration}", Role.EXECUTOR))
            .add_node(Node("critic", scripted(scores), Role.CRITIC,
                           exports=["quality_score", "feedback"]))
            .add_node(HumanGate("gate", content_from="writer"))
            .add_node(Node("publisher", lambda ctx: "published", Role.ORCHESTRATOR))
            .add_edge("writer", "critic")
            .add_conditional_edge("critic", "writer", back, max_iterations=2)
            .add_conditional_edge("critic", "gate", on)
            .add_edge("gate", "publisher"))


# --- explain_condition ----------------------------------------------------------


@pytest.mark.parametrize(("text", "names", "grouped"), [
    ("quality_score < 0.8", ("quality_score",), "quality_score < 0.8"),
    ("0.5 <= s < 0.8", ("s",), "0.5 <= s < 0.8"),
    ("not a == 1 or b and c", ("a", "b", "c"), "(not (a == 1)) or (b and c)"),
    ("a == true and b != null or c == 'x'", ("a", "b", "c"),
     "((a == true) and (b != null)) or (c == 'x')"),
    ("not not x", ("x",), "not (not x)"),
    ("(a or b) and c", ("a", "b", "c"), "(a or b) and c"),
    ("1 == 1", (), "1 == 1"),
])
def test_explain_reads_names_and_brackets_every_part(text: str, names: tuple[str, ...],
                                                     grouped: str) -> None:
    explained = explain_condition(text)
    assert explained.ok and explained.error is None
    assert explained.names == names
    assert explained.grouped == grouped
    reads = ", ".join(names) or "no variable"
    assert str(explained) == f"{text}\n    reads: {reads}\n    means: {grouped}"


@pytest.mark.parametrize(("text", "column", "words"), [
    ("__import__('os').system('ls')", 1, "names starting with '__'"),
    ("x.__class__ != null", 2, "attribute access"),
    ("open('f') != null", 1, "function calls"),
    ("9**9**9**9 > 0", 2, "arithmetic operator '**'"),
    ("quality_score =< 0.8", 15, "did you mean '<='"),
    ("(" * 10_000 + "x" + ")" * 10_000, 33, "nested too deeply"),
    ("x" * 1_000_000, 501, "too long"),
])
def test_explain_refuses_with_the_rule_and_the_column(text: str, column: int,
                                                      words: str) -> None:
    explained = explain_condition(text)
    assert not explained.ok and explained.names == () and explained.grouped == ""
    shown = str(explained)
    assert shown.startswith("refused:\n") and words in shown and f"(column {column})" in shown
    assert "^" in shown.splitlines()[2]
    assert len(shown) < 600  # a huge text is shown as an excerpt


@pytest.mark.parametrize("junk", [None, 42, ["x < 1"], {"x": 1}, math.nan])
def test_explain_refuses_what_is_not_text(junk: Any) -> None:
    explained = explain_condition(junk)
    assert not explained.ok and "must be text in quotes" in str(explained)


def test_explain_never_runs_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A condition that eval would run is only read: nothing it names is called."""
    called = []
    monkeypatch.setattr(builtins, "print", lambda *a, **k: called.append(a))
    explained = explain_condition("print('ran') or x < 1")
    assert not explained.ok and called == []


# --- condition_table ------------------------------------------------------------


def test_table_has_a_row_per_condition_and_a_column_per_case() -> None:
    cases = [{"quality_score": s} for s in (0.79, 0.8, math.nan)]
    table = condition_table([BACK, ON, "quality_score > 0.8"], cases)
    assert table.index.name == "condition"
    assert list(table.index) == [BACK, ON, "quality_score > 0.8"]
    assert list(table.columns) == ["quality_score=0.79", "quality_score=0.8",
                                   "quality_score=nan"]
    assert table.loc[BACK].tolist() == [True, False, False]
    assert table.loc[ON].tolist() == [False, True, False]
    assert table.loc["quality_score > 0.8"].tolist() == [False, False, False]


def test_table_follows_the_engine_on_kinds_and_errors() -> None:
    case = {"quality_score": 0.8, "approved": True, "feedback": "ready"}
    table = condition_table(["quality_score == '0.8'", "approved == 1", "approved == true",
                             "feedback < 0.8", "quality_score", "missing > 1", "x =< 1"],
                            [case])
    column = table.iloc[:, 0].tolist()
    assert column[:3] == [False, False, True]
    assert column[3] == "cannot compare 'ready' (text) with 0.8 (number)"
    assert column[4] == "'quality_score' is 0.8 (number), not true/false"
    assert column[5].startswith("unknown variable 'missing'")
    assert column[6] == "invalid at column 3"
    assert all(";" not in cell for cell in column[3:])


def test_table_takes_one_condition_and_labels_every_case_apart() -> None:
    table = condition_table("a == b", [{"a": 1, "b": 1.0}, {"a": True, "b": 1},
                                       {"a": None, "b": None}, {"a": 1, "b": 1.0}, {}])
    assert list(table.columns) == ["a=1, b=1.0", "a=true, b=1", "a=null, b=null",
                                   "a=1, b=1.0 (#4)", "(none)"]
    assert table.loc["a == b"].tolist()[:4] == [True, False, True, True]
    assert table.loc["a == b"].tolist()[4].startswith("unknown variable 'a'")


def test_table_labels_are_short_and_junk_conditions_are_rows() -> None:
    table = condition_table([None, 7], [{"text": "x" * 500}])
    assert list(table.index) == ["#1: None", "#2: 7"]
    assert table.iloc[:, 0].tolist() == ["invalid at column 1", "invalid at column 1"]
    assert len(table.columns[0]) <= 60


@pytest.mark.parametrize(("conditions", "cases", "argument"), [
    ({"a": "x < 1"}, [{}], "conditions"),
    (3, [{}], "conditions"),
    ([BACK], {"quality_score": 0.5}, "cases"),
    ([BACK], "quality_score=0.5", "cases"),
    ([BACK], 0.5, "cases"),
    ([BACK], [0.5], "cases"),
])
def test_table_says_what_to_pass_instead(conditions: Any, cases: Any, argument: str) -> None:
    with pytest.raises(ConfigError) as raised:
        condition_table(conditions, cases)
    assert raised.value.argument == argument and raised.value.fix


# --- loop_history ---------------------------------------------------------------


def history(scores: list[Any], **edges: str) -> list[dict[str, Any]]:
    workflow = draft_loop(scores, **edges)
    result = workflow.run("t", approver=APPROVE)
    return loop_history(result, workflow).to_dict("records")


def test_history_of_a_loop_that_passes_on_the_third_draft() -> None:
    rows = history([0.5, 0.7, 0.9])
    assert [(r["execution"], r["quality_score"], r["holds"]) for r in rows] == [
        (1, 0.5, True), (2, 0.7, True), (3, 0.9, False)]
    assert [r["outcome"] for r in rows] == ["back to writer (revision 1 of 2)",
                                           "back to writer (revision 2 of 2)",
                                           "on: the loop's condition is false"]
    assert {r["edge"] for r in rows} == {"critic -> writer"}


def test_history_of_a_spent_guard() -> None:
    rows = history([0.4, 0.5, 0.6])
    assert [r["holds"] for r in rows] == [True, True, True]
    assert rows[-1]["outcome"] == "guard spent: on, whatever the conditions say"


def test_history_when_the_condition_fails_or_never_parses() -> None:
    failed = history(["high"])  # text ordered against a number: the run fails
    assert failed == [{"edge": "critic -> writer", "execution": 1, "quality_score": "high",
                       "holds": None, "outcome": "the condition could not be evaluated"}]
    assert history([0.5], back="quality_score =< 0.8") == []  # pre-flight: nothing ran


def test_history_reads_the_ledger_the_same_way(tmp_path: Any) -> None:
    ledger = ReplayLedger(str(tmp_path / "l.duckdb"))
    workflow = ledger.attach(draft_loop([0.4, 0.9]))
    result = workflow.run("t", approver=APPROVE)
    from_ledger = loop_history(ledger.events(result.run_id), workflow)
    assert from_ledger.equals(loop_history(result, workflow))
    assert list(from_ledger.columns) == ["edge", "execution", "quality_score", "holds",
                                         "outcome"]


def test_history_of_a_workflow_without_loops_is_empty() -> None:
    workflow = (WorkflowDefinition("line").add_node(Node("a", lambda ctx: "a", Role.EXECUTOR))
                .add_node(Node("b", lambda ctx: "b", Role.EXECUTOR)).add_edge("a", "b"))
    table = loop_history(workflow.run("t"), workflow)
    assert table.empty and list(table.columns) == ["edge", "execution", "holds", "outcome"]
