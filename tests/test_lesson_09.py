"""Lesson 09 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "09_uncertainty.ipynb"
SCRIPT = ROOT / "hands_on" / "09_uncertainty.py"

RIGHT = {
    "ex1_escalate": "ex1_escalate = 0.25\nex1_block = 0.9",
    "unsure_agent": '''def unsure_agent(ctx):
    return AgentResult(text="Maybe: I found nothing on water resistance.", confidence=0.05)''',
    "blocked_seq": "blocked_seq = 3\nblocked_uncertainty = 0.95",
    "ex3_choices": 'ex3_choices = {"editor_at_desk": "escalate", "night_batch": "block", '
                   '"pure_guess": "block", "shelf_check": "escalate"}\n'
                   'ex3_rule = ("I escalate when a person who can judge the output is there to '
                   'answer in time; otherwise I block, because nobody would check it.")',
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_escalate": "ex1_escalate = 0.2\nex1_block = 0.9",
    "unsure_agent": '''def unsure_agent(ctx):
    return AgentResult(text="Maybe.", confidence=0.2)   # uncertainty 0.8: escalated''',
    "blocked_seq": "blocked_seq = 3\nblocked_uncertainty = 0.2",
    "ex3_choices": 'ex3_choices = dict.fromkeys(EX3_SITUATIONS, "escalate")\nex3_rule = "todo"',
}
"""The answer cells filled in wrong: an escalate threshold below two executions, an agent
that escalates instead of blocking, and escalate everywhere with a placeholder rule."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson09"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    one, blocked, choice = answered
    assert "exactly one node escalated: quality_gate (uncertainty 0.291, above your 0.25)" in one
    assert "node_blocked at seq 3 stopped the run before outbox started" in blocked
    assert "(editor_at_desk, shelf_check)" in choice


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    one, blocked, choice = verdicts(notebook)
    assert one.startswith("HINT: 2 node executions escalated (analyst_b, quality_gate)")
    assert blocked.startswith("HINT: your node escalated instead: its uncertainty 0.800")
    assert choice == "HINT: ex3_rule is placeholder text ('todo')"


@pytest.mark.parametrize(("name", "says"), [
    ("right-approve", ("completed | Queued for the customer: Dear customer, Probably not",
                       "the ledger records: gate_resume of lookup by headless via headless")),
    ("right-reject", ("rejected_at_gate | nothing was sent",
                      "the ledger records: gate_reject of lookup by headless via headless")),
])
def test_the_panel_decides_the_escalation(executed: dict, name: str, says: tuple) -> None:
    text = printed(executed[name])
    for shown in says:
        assert shown in text, shown


def test_the_cells_show_what_the_layer_prevents_and_its_limits(executed: dict) -> None:
    text = printed(executed["right-reject"])
    for shown in ("layer off completed layer off", "Yes, the X200 is waterproof to 50 m. Kind",
                  "layer on  blocked   blocked", "0 of 8 executions above STANDARD's 0.70",
                  "the reviewer was asked 5 times in one run",
                  "completed | passed | Queued for the customer",
                  "completed | not reported | Queued", "decided by policy via policy",
                  "blocked | blocked | messages it sent anyway: 1"):
        assert shown in text, shown


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in ``tmp_path``, its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, ledger="uncertainty.duckdb")


def statuses(tmp_path: Path) -> list[str]:
    """The status of every run in the script's ledger, read by another process."""
    return ledger_statuses(tmp_path / "uncertainty.duckdb")


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--escalate", "--block", "--off", "--reject", "--stream", "--capstone"):
        assert flag in proc.stdout


def test_the_standard_run_escalates_blocks_and_verifies(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lookup           uncertainty 0.750  escalated, approved by reviewer" in proc.stdout
    assert "lookup           uncertainty 0.950  blocked" in proc.stdout
    assert "blocked: nothing reached the outbox" in proc.stdout
    assert proc.stdout.count("Ledger chain VALID") == 3
    assert statuses(tmp_path) == ["completed", "completed", "blocked"]


@pytest.mark.parametrize(("args", "code", "ends", "says"), [
    (("--off",), 1, ["completed"] * 3, "A guess that the agent itself called a guess reached"),
    (("--reject",), 0, ["completed", "rejected_at_gate", "blocked"], "escalated, rejected by"),
    (("--block", "0.96"), 1, ["completed"] * 3, "lookup           uncertainty 0.950  escalated"),
    (("--escalate", "0.75"), 0, ["completed", "completed", "blocked"], "0.750  passed"),
])
def test_each_setting_exits_by_whether_the_guess_got_out(tmp_path: Path, args: tuple, code: int,
                                                        ends: list, says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert says in proc.stdout
    assert statuses(tmp_path) == ends


def test_stream_prints_every_event(tmp_path: Path) -> None:
    proc = run(tmp_path, "--stream")
    assert proc.returncode == 0, proc.stderr
    assert "uncertainty_escalated lookup (researcher)" in proc.stdout.replace("  ", " ")
    assert "node_blocked" in proc.stdout and proc.stdout.count("run_complete") == 3


def test_capstone_prints_its_distribution(tmp_path: Path) -> None:
    proc = run(tmp_path, "--capstone", "--escalate", "0.22", "--reject")
    assert proc.returncode == 0, proc.stderr
    assert "quality_gate     uncertainty 0.250  escalated, rejected by reviewer" in proc.stdout
    assert "rejected_at_gate: the publisher ran: False" in proc.stdout
    assert statuses(tmp_path) == ["rejected_at_gate"]


@pytest.mark.parametrize(("args", "says"), [
    (("--escalate", "high"), "argument --escalate: 'high' is not a number from 0 to 1"),
    (("--block", "1.5"), "argument --block: '1.5': a threshold is from 0 to 1"),
    (("--escalate", "0.95"), "--escalate 0.95 is above --block 0.9"),
    (("--nope",), "unrecognized arguments: --nope"),
])
def test_a_flag_that_cannot_work_exits_2_with_one_line(tmp_path: Path, args: tuple,
                                                       says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("09_uncertainty.py: error: ") and says in line, line
    assert proc.stdout == "" and not (tmp_path / "uncertainty.duckdb").exists()
