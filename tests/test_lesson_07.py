"""Lesson 07 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "07_budgets_and_cost_caps.ipynb"
SCRIPT = ROOT / "hands_on" / "07_budgets_and_cost_caps.py"

RIGHT = {
    "ex1_budget": "ex1_budget = 0.065",
    "stop_when": 'stop_when = "after"\nstop_node = "quality_gate"\nover_budget_by = 0.0042',
    "ex3_pipeline": "ex3_pipeline = build_capstone_pipeline(\n    agents={'writer': MockAgent("
                    "Role.EXECUTOR, angle='writer', model='claude-haiku-4-5')})",
    "ex3_ratio": "ex3_ratio = 0.333\nex3_explanation = ('The writer read and wrote the same "
                 "tokens in both runs; only the price per million tokens changed, and "
                 "haiku-4-5 costs a third of sonnet-4-5.')",
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_budget": "ex1_budget = 0.05   # the spend after five executions, not the estimate",
    "stop_when": 'stop_when = "before"\nstop_node = "quality_gate"\nover_budget_by = 0.0492',
    "ex3_ratio": "ex3_ratio = '0.333'\nex3_explanation = 'todo'",
}
"""The answer cells filled in wrong: a budget that forgets the estimate, the wrong check
and the spend for the overshoot, and (the pipeline left unchanged) a quoted ratio."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson07"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    budget, stop, change = answered
    assert "exactly 6 node executions ran under your budget of $0.065" in budget
    assert "the after check stopped the run at quality_gate" in stop
    assert "writer on claude-haiku-4-5 cost 0.333x" in change


def test_the_gate_decision_reaches_the_capstone_run(executed: dict) -> None:
    assert "completed $0.0804" in printed(executed["right-approve"])
    assert "the publisher ran: True" in printed(executed["right-approve"])
    rejected = printed(executed["right-reject"])
    assert "rejected_at_gate $0.0758" in rejected and "the publisher ran: False" in rejected


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    budget, stop, change = verdicts(notebook)
    assert budget.startswith("HINT: only 5 node executions ran: the layer refused writer #2 "
                             "before it started")
    assert stop.startswith("HINT: stop_when: quality_gate has a node_complete just before")
    assert change == "HINT: ex3_ratio should be a number, not the text '0.333': drop the quotes"


def test_the_governance_cells_show_what_the_layer_prevents(executed: dict) -> None:
    text = printed(executed["right-approve"])
    for shown in ("budget               off  no cost cap",
                  "budget off    completed        23 node executions  8 revisions  $0.2616",
                  "calls the writer's agent got: 1",
                  "CostCapError: the run could cost up to $0.0621, above the budget $0.05",
                  "spent $0.0275 against a cap of $0.01: 2.8x the budget",
                  "together: $0.1475 in 3 runs", "chain valid: True"):
        assert shown in text, shown


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="budgets.duckdb",
                        latency="0.01")


def statuses(tmp_path: Path) -> list[str]:
    """The status of every run in the script's ledger, read by another process."""
    return ledger_statuses(tmp_path / "budgets.duckdb")


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("07_budgets_and_cost_caps.py: error: ")
    assert not proc.stdout
    return lines[0]


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--budget", "--no-budget", "--runaway", "--model", "--reject", "--reviewer"):
        assert flag in proc.stdout


def test_the_standard_run_stops_at_its_budget_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Budget: $0.05. Before each execution the layer refuses it" in proc.stdout
    assert "budget_exceeded  when=before node=writer spent=0.049173 estimate=0.012273 " \
           "cap=0.05" in proc.stdout
    assert "budget_exceeded: $0.0492 over 5 node executions" in proc.stdout
    assert "Ledger chain VALID: 15 entries in 1 run checked." in proc.stdout
    assert statuses(tmp_path) == ["budget_exceeded"]


def test_the_layer_off_lets_the_runaway_loop_run_to_its_guard(tmp_path: Path) -> None:
    proc = run(tmp_path, "--runaway", "--no-budget")
    assert proc.returncode == 0, proc.stderr
    assert "Budget: none (budget_usd=None), the budget layer is off" in proc.stdout
    assert "completed: $0.2616 over 23 node executions" in proc.stdout
    assert "writer #9" in proc.stdout and "budget_exceeded" not in proc.stdout
    capped = run(tmp_path, "--runaway", "--budget", "0.10", "--reject")
    assert capped.returncode == 0, capped.stderr
    assert "budget_exceeded: $0.0935 over 8 node executions" in capped.stdout
    assert statuses(tmp_path) == ["completed", "budget_exceeded"]


def test_a_node_on_another_model_costs_its_price_ratio(tmp_path: Path) -> None:
    proc = run(tmp_path, "--no-budget", "--model", "writer=claude-haiku-4-5")
    assert proc.returncode == 0, proc.stderr
    assert "  writer         $0.0103" in proc.stdout  # a third of $0.0308
    assert "writer           claude-haiku-4-5" in proc.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--budget", "-1"), "a budget is a number of USD above 0"),
    (("--budget", "lots"), "is not a number of USD"),
    (("--budget", "0.1", "--no-budget"), "not allowed with argument"),
    (("--model", "writer=gpt-9"), "'gpt-9' is not in the price table"),
    (("--model", "editor=claude-haiku-4-5"), "write NODE=MODEL"),
])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple, says: str) -> None:
    assert says in one_line_error(run(tmp_path, *args))


def test_without_mock_mode_or_a_key_it_says_which_to_set(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, mock=False))
    assert "MESHFLOW_MOCK=1" in line and "ANTHROPIC_API_KEY" in line
