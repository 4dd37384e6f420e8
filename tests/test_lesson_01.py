"""Lesson 1 as a learner does it: the notebook with its answer cells filled in right, wrong
and with junk (papermill, one kernel each, at the same time), and the terminal script.

The plain approve/reject runs and nbval of the untouched notebook are tests/test_lessons.py's.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import run_hands_on
from lesson_runner import ROOT, execute

from meshflow_nb.ledger import ReplayLedger

LESSON = ROOT / "lessons" / "01_hello_meshflow.ipynb"
SCRIPT = ROOT / "hands_on" / "01_hello_meshflow.py"

THREE_NODES = '''my_workflow = (
    WorkflowDefinition("hello_plus_one")
    .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER))
    .add_node(Node("writer", agent_for(Role.EXECUTOR, angle="writer"), Role.EXECUTOR))
    .add_node(Node("reviewer", agent_for(Role.CRITIC), Role.CRITIC))
    .add_edge("researcher", "writer")
{edge})'''

RIGHT = {
    "my_workflow": THREE_NODES.format(edge='    .add_edge("writer", "reviewer")\n'),
    "predicted_node_executions": "predicted_node_executions = 3",
    "my_rows": 'my_rows = ledger.to_dataframe(ex1_result.run_id)\n'
               'first_event_type = "run_start"\nlast_event_type = "run_complete"',
    "new_task": 'new_task = "Compare three ways to keep an audit trail for AI agents in a bank"',
    "changed_totals": 'changed_totals = ["tokens_in", "tokens_out", "tokens", "cost_usd"]\n'
                      'why_changed = ("A longer task means more characters for each agent to '
                      'read, and other text to write, so tokens and cost moved; the graph is '
                      'the same two nodes, so node_executions stayed.")',
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "my_workflow": THREE_NODES.format(edge=""),  # the third node is left unconnected
    "predicted_node_executions": "predicted_node_executions = 3",
    "my_rows": 'my_rows = ledger.to_dataframe()\n'
               'first_event_type = "researcher"\nlast_event_type = "run_complete"',
    "new_task": 'new_task = "Summarise what a small team needs before adopting AI agents"',
    "changed_totals": 'changed_totals = ["cost", "cost_usd"]\nwhy_changed = "The numbers '
                      'went up because the words were different this time around."',
}
"""Wrong answers: an unconnected node, the whole ledger, a node id for an event type, the
lesson's own task again."""

JUNK = {
    "my_workflow": 'my_workflow = "researcher -> writer -> reviewer"',
    "predicted_node_executions": 'predicted_node_executions = "three"',
    "my_rows": "# the learner deleted the lines",
    "new_task": "new_task = 42",
    "changed_totals": 'changed_totals = "tokens"\nwhy_changed = None',
}
"""Values of the wrong kind, and deleted lines."""

ANSWERED = {"right": ("approve", RIGHT), "wrong": ("reject", WRONG), "junk": ("approve", JUNK)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson run once per entry of ANSWERED, all at the same time. Each kernel starts
    in a process of its own: papermill enters a notebook's working directory with
    os.chdir, which threads of one process would share."""
    base = tmp_path_factory.mktemp("lesson01")
    with ProcessPoolExecutor(max_workers=len(ANSWERED), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(execute, LESSON, base / name, decision, answers)
                   for name, (decision, answers) in ANSWERED.items()}
        return {name: future.result() for name, future in futures.items()}


def verdicts(notebook: nbformat.NotebookNode) -> list[str]:
    """What each self-check cell answered, in order."""
    return [out.get("data", {}).get("text/plain", "") for cell in notebook.cells
            if cell.cell_type == "code" and cell.source.startswith("selfcheck.")
            for out in cell.get("outputs", [])]


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    return [f"{out.get('ename')}: {out.get('evalue')}" for cell in notebook.cells
            for out in cell.get("outputs", []) if out.get("output_type") == "error"]


@pytest.mark.parametrize("name", list(ANSWERED))
def test_no_answer_makes_a_cell_fail(executed: dict, name: str) -> None:
    assert not errors(executed[name])
    assert len(verdicts(executed[name])) == 3


def test_right_answers_pass_every_self_check(executed: dict) -> None:
    third, found, totals = verdicts(executed["right"])
    assert third == "PASS: 3 node executions, as you predicted: researcher, writer, reviewer"
    assert found.startswith("PASS: your run's 8 rows, from run_start to run_complete")
    assert totals.startswith("PASS: tokens_in, tokens_out, tokens, cost_usd changed")


def test_wrong_answers_get_hints_that_point_where_to_look(executed: dict) -> None:
    third, found, totals = verdicts(executed["wrong"])
    assert third.startswith("HINT: pre-flight rejected my_workflow")
    assert found.startswith("HINT: my_rows holds rows of")
    assert "to_dataframe takes a run_id" in found
    assert totals == "HINT: new_task is the lesson's TASK again: write a task of your own"


def test_junk_answers_get_hints_and_no_traceback(executed: dict) -> None:
    third, found, totals = verdicts(executed["junk"])
    assert third.startswith("HINT: my_workflow should be a workflow")
    assert found.startswith("HINT: ex1_result is not there yet")
    assert totals.startswith("HINT: new_task should be text in quotes")
    text = json.dumps([cell.get("outputs", []) for cell in executed["junk"].cells])
    assert "not a workflow yet" in text and "not a task yet" in text


# --- the terminal twin ------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True, **env: str) -> subprocess.CompletedProcess:
    """The script as a learner runs it, in ``tmp_path``, with no key and no ledger set."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, **env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints: exit status 2, nothing on stdout."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("01_hello_meshflow.py: error: "), proc.stderr
    assert not proc.stdout
    return lines[0]


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--task", "--stream", "--third-node", "--seed", "--db"):
        assert flag in proc.stdout


def test_the_standard_run_completes_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done    researcher" in proc.stdout and "done    writer" in proc.stdout
    assert "status:   completed" in proc.stdout and "executed: researcher, writer" in proc.stdout
    assert "Ledger chain VALID: 6 entries in 1 run checked." in proc.stdout
    ledger = ReplayLedger(str(tmp_path / "meshflow_ledger.duckdb"))  # the default location
    assert ledger.verify_chain().valid and len(ledger.runs()) == 1
    assert list(ledger.to_dataframe().event_type) == [
        "run_start", "node_start", "node_complete", "node_start", "node_complete",
        "run_complete"]


def test_the_ledger_is_where_the_flag_or_the_variable_says(tmp_path: Path) -> None:
    assert run(tmp_path, MESHFLOW_LEDGER_DB="env.duckdb").returncode == 0
    assert run(tmp_path, "--db", "flag.duckdb", MESHFLOW_LEDGER_DB="env.duckdb").returncode == 0
    assert len(ReplayLedger(str(tmp_path / "env.duckdb")).runs()) == 1
    assert len(ReplayLedger(str(tmp_path / "flag.duckdb")).runs()) == 1
    assert not (tmp_path / "meshflow_ledger.duckdb").exists()


def test_the_third_node_is_exercise_1_and_runs_are_appended(tmp_path: Path) -> None:
    assert run(tmp_path).returncode == 0
    proc = run(tmp_path, "--third-node")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "executed: researcher, writer, reviewer" in proc.stdout
    assert "Ledger chain VALID: 8 entries in 1 run checked." in proc.stdout
    assert len(ReplayLedger(str(tmp_path / "meshflow_ledger.duckdb")).runs()) == 2


def test_stream_prints_only_json_lines(tmp_path: Path) -> None:
    proc = run(tmp_path, "--stream")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # nothing but JSON
    assert [e["type"] for e in events][::5] == ["run_start", "run_complete"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert "Ledger chain VALID" in proc.stderr


def test_the_same_seed_gives_the_same_run_and_another_seed_another(tmp_path: Path) -> None:
    def output(*args: str) -> str:
        proc = run(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split("Final output:")[1].split("\nstatus:")[0]

    default = output()
    assert output("--seed", "16") == default
    assert output("--seed", "17") != default


@pytest.mark.parametrize(("args", "says"), [
    (("--bogus",), "unrecognized arguments: --bogus"),
    (("--seed", "x"), "invalid int value: 'x'"),
    (("--task", "  "), "--task is empty"),
])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                           says: str) -> None:
    assert says in one_line_error(run(tmp_path, *args))


def test_without_mock_mode_or_a_key_it_says_both_in_one_line(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, mock=False))
    assert "MESHFLOW_MOCK=1" in line and "ANTHROPIC_API_KEY" in line
    assert not list(tmp_path.iterdir())  # no ledger was opened


def test_a_ledger_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    assert "notes.txt" in one_line_error(run(tmp_path, "--db", "notes.txt"))
