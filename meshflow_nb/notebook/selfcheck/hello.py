"""Lesson 1's self-checks: each exercise judged against the learner's own runs and ledger.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ledger``, ``result``, ``ex3_result``) and the answer variables (``my_workflow``,
``predicted_node_executions``, ``my_rows``, ``first_event_type``, ``last_event_type``,
``new_task``, ``changed_totals``, ``why_changed``). A run made by the cell after an
answer cell is None until the answer is a workflow or a task: `OrNone` lets it through,
and the check asks for the answer first.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ...engine.results import RunResult, Totals
from ...errors import shown
from ...events import EventType, plural
from ...ledger.replay import ReplayLedger
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from .expect import RUN, Count, Expect, Instance, ListOf, OrNone, Text
from .framework import Verdict, hint, passed, self_check
from .text import stems

WANTED_NODES = 3
"""Exercise 1 adds one node to hello's two."""

TOTALS = ("node_executions", "loop_iterations", "tokens_in", "tokens_out", "tokens",
          "cost_usd", "carbon_g")
"""The rows of exercise 3's table: every total of a run but its duration."""

TOTAL_ALIASES = {"cost": "cost_usd", "carbon": "carbon_g", "nodes": "node_executions",
                 "node_count": "node_executions", "loops": "loop_iterations",
                 "total_tokens": "tokens", "input_tokens": "tokens_in",
                 "output_tokens": "tokens_out"}
"""Other names a learner may give a total, and the total each one means."""

VOLATILE_TOTALS = ("duration_ms", "duration", "time")
"""Totals that change on every run, whatever the task: exercise 3's table leaves them out."""

CAUSE_STEMS = frozenset({"lengt", "longe", "short", "chara", "word", "text", "size",
                         "promp", "input", "conte", "lette", "read", "write", "wrote"})
"""Stems that say what about the task's text moves the tokens: its length, the words an
agent reads and writes."""

SHAPE_STEMS = frozenset({"graph", "edge", "struc", "workf", "shape", "defin", "same",
                         "conne", "wire", "wired", "topol", "depen", "uncha", "fixed",
                         "step"})
"""Stems that say why the node count stays: the workflow's shape did not change."""

ROW_COLUMNS = ("run_id", "event_type")


class Frame(Expect):
    """A pandas DataFrame (rows of the ledger, as `ReplayLedger.to_dataframe` gives them)."""

    kind = "a DataFrame (what ledger.to_dataframe(...) returns)"

    def clean(self, value: Any, where: str) -> pd.DataFrame:
        """The frame itself, once it is one."""
        if not isinstance(value, pd.DataFrame):
            raise self.refuse(value, where)
        return value


# --- exercise 1: a third node -------------------------------------------------------


@self_check(
    given={"ex1_result": OrNone(Instance(RunResult, "the run of my_workflow", kind=RUN))},
    answers={"my_workflow": Instance(WorkflowDefinition, "hello with a third node",
                                     kind="a workflow (a WorkflowDefinition)"),
             "predicted_node_executions": Count("how many node executions you expect")})
def third_node(ex1_result: RunResult | None, my_workflow: WorkflowDefinition,
               predicted_node_executions: int) -> Verdict:
    """Exercise 1: my_workflow has a third node, its run completed, and the prediction is
    the run's count of node executions."""
    wrong = _shape_hint(my_workflow) or _run_hint(ex1_result, my_workflow)
    if wrong:
        return hint(wrong)
    run = ex1_result
    actual = run.totals.node_executions
    if predicted_node_executions != actual:
        return hint(_prediction_hint(run, my_workflow, predicted_node_executions))
    order = ", ".join(run.executed)
    return passed(f"{plural(actual, 'node execution')}, as you predicted: {order}")


def _shape_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when my_workflow is not hello plus one node (None when it is)."""
    count = len(workflow.nodes)
    if count < WANTED_NODES:
        return (f"my_workflow has {plural(count, 'node')}: add a third with .add_node(...) "
                "and connect it with .add_edge(...)")
    if count > WANTED_NODES:
        return (f"my_workflow has {plural(count, 'node')}: this exercise adds one node to "
                "hello's two")
    return None


def _run_hint(run: RunResult | None, workflow: WorkflowDefinition) -> str | None:
    """Where to look when ex1_result is not a completed run of my_workflow (None if it is)."""
    if run is None:
        return "ex1_result is None: run the cell after the answer cell, which runs my_workflow"
    if run.workflow != workflow.name or set(run.nodes) != {node.id for node in workflow.nodes}:
        return ("ex1_result is a run of another workflow than my_workflow: run the cell after "
                "the answer cell again")
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return ("pre-flight rejected my_workflow, so no node ran: read the report under the "
                "run cell, it names the problem and how to fix it")
    if not run.ok:
        return (f"the run of my_workflow ended {run.status.value}: read the error under the "
                "run cell")
    return None


def _prediction_hint(run: RunResult, workflow: WorkflowDefinition, predicted: int) -> str:
    """Where to look when the prediction is not the run's count."""
    if predicted == len(workflow.edges) and len(workflow.edges) != len(workflow.nodes):
        return ("predicted_node_executions: you counted the edges; count what runs: each "
                "node that completes is one execution")
    return ("predicted_node_executions is not your run's count: each node that completes is "
            "one execution; ex1_result.executed lists them")


# --- exercise 2: your run in the ledger ---------------------------------------------


EVENT_KIND = "one event type in quotes, such as 'node_start'"


@self_check(
    given={"ledger": Instance(ReplayLedger, "the lesson's ledger",
                              kind="a ledger (a ReplayLedger)"),
           "ex1_result": Instance(RunResult, "exercise 1's run", kind=RUN)},
    answers={"my_rows": Frame("your run's rows of the ledger"),
             "first_event_type": Text("the event_type of its first row", max_words=2,
                                      kind=EVENT_KIND),
             "last_event_type": Text("the event_type of its last row", max_words=2,
                                     kind=EVENT_KIND)})
def run_in_ledger(ledger: ReplayLedger, ex1_result: RunResult, my_rows: pd.DataFrame,
                  first_event_type: str, last_event_type: str) -> Verdict:
    """Exercise 2: my_rows are all the ledger's rows of exercise 1's run, and the first and
    last event types are theirs."""
    ledger.flush()
    stored = ledger.to_dataframe(ex1_result.run_id)
    if stored.empty:
        return hint("exercise 1's run is not in ledger: run exercise 1's run cell, which "
                    "attaches my_workflow to ledger")
    wrong = _rows_hint(my_rows, ledger, ex1_result, len(stored))
    if wrong:
        return hint(wrong)
    ordered = stored.sort_values("seq")
    first, last = ordered["event_type"].iloc[0], ordered["event_type"].iloc[-1]
    named = _event_type(first_event_type), _event_type(last_event_type)
    wrong = _types_hint(named, (first, last), ordered)
    if wrong:
        return hint(wrong)
    return passed(f"your run's {plural(len(stored), 'row')}, from {first} to {last}: every "
                  "run begins and ends this way, whatever happens in between")


def _rows_hint(rows: pd.DataFrame, ledger: ReplayLedger, run: RunResult,
               stored: int) -> str | None:
    """Where to look when my_rows are not exactly the ledger's rows of ``run``."""
    missing = [column for column in ROW_COLUMNS if column not in rows.columns]
    if missing:
        return (f"my_rows has no {' or '.join(missing)} column: keep the columns the ledger "
                "gives (ledger.to_dataframe(...))")
    if rows.empty:
        return "my_rows has no rows: select your run's rows by its run_id"
    runs = set(rows["run_id"].astype(str))
    if len(runs) > 1:
        return (f"my_rows holds rows of {len(runs)} runs: keep only your run's "
                "(to_dataframe takes a run_id)")
    if runs != {run.run_id}:
        known = runs <= set(ledger.runs()["run_id"].astype(str))
        where = "another run of the ledger" if known else "a run that is not in ledger"
        return (f"my_rows is {where}, not your exercise 1 run: its run_id is in "
                "ex1_result.run_id")
    if len(rows) != stored:
        return ("my_rows has only some of your run's rows (head()? a filter?): take all of "
                "them")
    return None


def _event_type(answer: str) -> str:
    """The event type an answer names: ``run_start`` of "Run start", "EventType.RUN_START"
    or "'run_start'"."""
    text = answer.strip().strip("'\"`").lower()
    text = text.removeprefix("eventtype.")
    return "_".join(text.replace("-", " ").split())


def _types_hint(named: tuple[str, str], actual: tuple[str, str],
                rows: pd.DataFrame) -> str | None:
    """Where to look when the named first and last event types are not the run's."""
    known = {t.value for t in EventType}
    nodes = {str(n) for n in rows["node_id"].dropna()} if "node_id" in rows else set()
    for name, label in zip(named, ("first_event_type", "last_event_type"), strict=True):
        if name in nodes:
            return (f"{label}: {shown(name)} is a node_id; the event_type column names what "
                    "happened")
        if name not in known:
            return (f"{label}: {shown(name)} is not an event type: read the event_type "
                    "column of my_rows")
    if named == actual:
        return None
    if named[0] == named[1]:
        return ("first_event_type and last_event_type are the same: a run's first and last "
                "rows are different events")
    if named == actual[::-1]:
        return ("first_event_type and last_event_type are the other way round: seq counts "
                "up, the first row has the smallest")
    label = "first_event_type" if named[0] != actual[0] else "last_event_type"
    end = "smallest" if label.startswith("first") else "largest"
    return f"{label}: sort my_rows by seq and read the event_type of the row with the {end}"


# --- exercise 3: another task ---------------------------------------------------------


TOTAL_NAME = Text("the name of a total", max_words=2,
                  kind="the name of a total in quotes, such as 'loop_iterations'")


@self_check(
    given={"result": Instance(RunResult, "section 3's run of hello on TASK", kind=RUN),
           "ex3_result": OrNone(Instance(RunResult, "the run on new_task", kind=RUN))},
    answers={"new_task": Text("a task of your own", min_words=3, min_distinct=2),
             "changed_totals": ListOf(TOTAL_NAME, "the totals that changed", min_len=1,
                                      kind="a list of names in square brackets, such as "
                                           "['loop_iterations']"),
             "why_changed": Text("why those totals changed, and why the node count did not",
                                 min_words=10, min_distinct=6)})
def task_totals(result: RunResult, ex3_result: RunResult | None, new_task: str,
                changed_totals: list[str], why_changed: str) -> Verdict:
    """Exercise 3: a run of hello on another task, the totals that changed named exactly,
    and a reason for what moved and what stayed."""
    wrong = _task_hint(result, ex3_result, new_task)
    if wrong:
        return hint(wrong)
    changed = changed_between(result.totals, ex3_result.totals)
    if not changed:
        return hint("no total changed between the two runs: pick a task of a different "
                    "length and run the cell after it again")
    named = [_total_name(name) for name in changed_totals]
    wrong = _names_hint(named, changed_totals, changed) or _reason_hint(why_changed)
    if wrong:
        return hint(wrong)
    kept = [name for name in TOTALS if name not in changed]
    return passed(f"{', '.join(changed)} changed with the task; {', '.join(kept)} did not: "
                  "your reason says why")


def changed_between(before: Totals, after: Totals) -> list[str]:
    """The totals of `TOTALS` that differ between two runs, in the table's order."""
    return [name for name in TOTALS
            if not math.isclose(float(getattr(before, name)), float(getattr(after, name)),
                                rel_tol=1e-9, abs_tol=1e-12)]


def _task_hint(result: RunResult, run: RunResult | None, task: str) -> str | None:
    """Where to look when ex3_result is not hello's run on a new task (None when it is)."""
    if " ".join(task.lower().split()) == " ".join(result.task.lower().split()):
        return "new_task is the lesson's TASK again: write a task of your own"
    if run is None:
        return "ex3_result is None: run the cell after your task, which runs hello on it"
    if run.task != task:
        return "ex3_result ran another task than new_task: run the cell after your task again"
    if run.workflow != result.workflow:
        return (f"ex3_result is a run of {shown(run.workflow)}: compare two runs of the same "
                "workflow, hello")
    if not run.ok:
        return f"the run on new_task ended {run.status.value}: read the output of its cell"
    return None


def _total_name(name: str) -> str:
    """The total a name means: ``cost_usd`` of "cost", "Cost USD" or "totals.cost_usd"."""
    text = "_".join(name.strip().strip("'\"`").lower().replace("-", " ").split())
    text = text.removeprefix("totals.").removeprefix("result.totals.")
    return TOTAL_ALIASES.get(text, text)


def _names_hint(named: list[str], typed: list[str], changed: list[str]) -> str | None:
    """Where to look when changed_totals is not exactly the totals that changed."""
    for n, name in enumerate(named):
        if name in VOLATILE_TOTALS:
            return (f"changed_totals[{n}]: the duration changes on every run, even on the same "
                    "task, so the table leaves it out: name totals of the table")
        if name not in TOTALS:
            return (f"changed_totals[{n}]: {shown(typed[n])} is not one of the totals: use the "
                    "names in the table's first column")
    twice = next((n for n, name in enumerate(named) if name in named[:n]), None)
    if twice is not None:
        return (f"changed_totals[{twice}] repeats changed_totals[{named.index(named[twice])}]: "
                "name each total once")
    stayed = [name for name in named if name not in changed]
    if stayed:
        return (f"changed_totals: {stayed[0]} is the same in both runs: read its row of the "
                "table again")
    left_out = len([name for name in changed if name not in named])
    if left_out:
        return (f"changed_totals leaves out {plural(left_out, 'total')} that changed: compare "
                "the two columns of every row")
    return None


def _reason_hint(why: str) -> str | None:
    """Where to look when why_changed does not give both reasons (None when it does)."""
    said = stems(why)
    if not said & CAUSE_STEMS:
        return ("why_changed: say what about the new task moved the tokens (how does a mock "
                "agent count them? section 1)")
    if not said & SHAPE_STEMS:
        return ("why_changed: say too why node_executions stayed the same: what decides how "
                "many nodes run?")
    return None


__all__ = ["Frame", "changed_between", "run_in_ledger", "task_totals", "third_node"]
