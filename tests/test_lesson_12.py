"""Lesson 12 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "12_circuit_breakers_and_retries.ipynb"
SCRIPT = ROOT / "hands_on" / "12_circuit_breakers_and_retries.py"

RIGHT = {
    "ex1_config": "ex1_config = CircuitBreakerConfig(max_retries=0, failure_threshold=3,\n"
                  "                                  failure_window_s=60)",
    "ex1_opened_at": "ex1_opened_at = 80",
    "ex2_result": "ex2_result = None\nex2_clock.advance(10)\nex2_service.down = False\n"
                  "ex2_result = ex2_flow.run(TASK, policy=EX2_POLICY)",
    "ex3_max_retries": "ex3_max_retries = 3",
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_config": "ex1_config = CircuitBreakerConfig(failure_threshold=3, failure_window_s=60)",
    "ex1_opened_at": "ex1_opened_at = 1.5",
    "ex2_result": "ex2_result = None\nex2_clock.advance(5)\nex2_service.down = False\n"
                  "ex2_result = ex2_flow.run(TASK, policy=EX2_POLICY)",
    "ex3_max_retries": "ex3_max_retries = 2",
}
"""The answer cells filled in wrong: the retries left in (each call three failures), too
short a wait before the probe, and one retry too few."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson12"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    opened, probe, retries = answered
    assert "your breaker opened at t=80 s, on the third failure within 60 s" in opened
    assert "open -> half_open -> closed" in probe
    assert "max_retries=3: 100 of 100 executions succeeded" in retries


def test_the_gate_decision_reaches_the_capstone_run(executed: dict) -> None:
    assert "completed after 2 researcher calls" in printed(executed["right-approve"])
    assert "rejected_at_gate after 2 researcher calls" in printed(executed["right-reject"])
    assert "the researcher's breaker: closed" in printed(executed["right-reject"])


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    opened, probe, retries = verdicts(notebook)
    assert opened.startswith("HINT: each call made up to 3 attempts")
    assert probe.startswith("HINT: your run was refused without reaching the agent")
    assert retries.startswith("HINT: with max_retries=2, 97 of 100 executions succeeded")


def test_the_cells_show_what_the_lesson_says(executed: dict) -> None:
    text = printed(executed["right-approve"])
    for shown in ("3 of 10 failed; the agent got 10 calls",
                  "the agent got 15 calls, 5 of them failed",
                  "pause before retry 1..6: [0.5, 1.0, 2.0, 4.0, 8.0, 8.0] seconds",
                  "failed after 3 calls; pauses: [0.5, 1.0]",
                  "t=  5.0 s  refused    agent calls: 0  breaker: open",
                  "half-opens in 6.5 s (clock 11.500)",
                  "t= 12.0 s  completed  agent calls: 1  breaker: closed",
                  "half_open -> closed    failures=0  the probe call succeeded",
                  "chain valid: True"):
        assert shown in text, shown
    layer = next(line for line in text.splitlines() if line.startswith("calls to the down"))
    assert layer.split()[-2:] == ["24", "9"]


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="circuit.duckdb")


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("12_circuit_breakers_and_retries.py: error: ")
    assert not proc.stdout
    return lines[0]


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--no-breaker", "--max-retries", "--threshold", "--window",
                 "--half-open-after", "--outage", "--runs", "--every"):
        assert flag in proc.stdout


def test_an_outage_opens_the_breaker_and_a_probe_closes_it(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "t=   0.0 s  failed     service calls: 3" in out
    assert "circuit_state  closed -> open: 3 failure(s) within 30 s" in out
    assert "t=   5.0 s  refused    service calls: 0" in out
    assert "circuit_state  half_open -> closed: the probe call succeeded" in out
    assert "3 of 6 runs completed; the service got 6 calls, 3 of them while it was down." in out
    assert "6 runs, chains VALID." in out
    assert ledger_statuses(tmp_path / "circuit.duckdb") == ["failed"] * 3 + ["completed"] * 3


def test_the_layer_off_calls_the_service_every_run(tmp_path: Path) -> None:
    proc = run(tmp_path, "--no-breaker", "--outage", "20")
    assert proc.returncode == 0, proc.stderr
    assert "Circuit breaker: off" in proc.stdout
    assert "the service got 6 calls, 4 of them while it was down" in proc.stdout
    assert "refused" not in proc.stdout and "node_retry" not in proc.stdout


def test_a_window_of_a_minute_without_retries(tmp_path: Path) -> None:
    proc = run(tmp_path, "--max-retries", "0", "--window", "60", "--outage", "100",
               "--runs", "5", "--every", "20")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("closed -> open: 3 failure(s) within 60 s") == 1
    assert proc.stdout.count("half_open -> open: the probe call failed") == 2


@pytest.mark.parametrize(("args", "says"), [
    (("--threshold", "0"), "failure_threshold must be a whole number >= 1"),
    (("--window", "-3"), "seconds are a number of 0 or more"),
    (("--window", "0"), "failure_window_s"),
    (("--max-retries", "two"), "is not a whole number"),
    (("--every", "soon"), "is not a number of seconds"),
])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple, says: str) -> None:
    assert says in one_line_error(run(tmp_path, *args))


def test_without_mock_mode_it_says_what_to_set(tmp_path: Path) -> None:
    assert "MESHFLOW_MOCK=1" in one_line_error(run(tmp_path, mock=False))
