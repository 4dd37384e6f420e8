"""Lesson 14 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "14_cross_run_learning.ipynb"
SCRIPT = ROOT / "hands_on" / "14_cross_run_learning.py"
LESSON_TEXT = ("coverage: answer the researcher's open question directly; the draft "
               "currently leaves it out.")

RIGHT = {
    "ex1_revisions": f"ex1_revisions = (1, 0)\nex1_lesson = {LESSON_TEXT!r}",
    "ex2_result": "ex1_store.reset()\nex2_result = run(ex1_pipeline)",
    "ex3_risk": "ex3_risk = ('A wrong or hostile review is stored as a lesson and fed to "
                "every later run, so one bad reviewer keeps steering the writer.')\n"
                "ex3_policy = Policy(enable_cross_run_learning=False)",
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_revisions": "ex1_revisions = (2, 1)\n"
                     "ex1_lesson = 'structure (optional): the section headings could be more "
                     "specific.'",
    "ex2_result": "ex2_result = run(ex1_pipeline)   # forgot to empty the store",
    "ex3_risk": "ex3_risk = 'todo'\nex3_policy = Policy('dev')",
}
"""The answer cells filled in wrong: the writer's executions for its revisions, the store
not emptied, filler and a whole other mode."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson14"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    fewer, reset, off = answered
    assert "ex1_first needed 1 revision, ex1_second 0" in fewer and "coverage, evidence" in fewer
    assert "after the reset the store held nothing" in reset
    assert "with enable_cross_run_learning=False the writer got none" in off


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    fewer, reset, off = verdicts(notebook)
    assert fewer.startswith("HINT: the first count: 2 is how often the writer ran")
    assert reset.startswith("HINT: ex1_store still holds outcomes of 2 other runs")
    assert off == "HINT: ex3_risk is placeholder text ('todo')"


def test_the_lesson_shows_what_the_layer_changes(executed: dict) -> None:
    text = printed(executed["right-approve"])
    for shown in ("learning store: learning/lesson14.learning.duckdb",
                  "completed | revisions of the writer: 1",
                  "completed | revisions of the writer: 0",
                  "## Lessons from earlier runs",
                  "layer off     False          1                9    0.0804",
                  "outcomes in the store before and after: 10 -> 10",
                  "learning on    1 0 0 1 0", "learning off   1 1 1 1 1",
                  "taught store      True          0                7    0.0577"):
        assert shown in text, shown


def test_the_gate_decision_is_remembered(executed: dict) -> None:
    assert '"approved": true, "channel": "headless"' in printed(executed["right-approve"])
    rejected = printed(executed["right-reject"])
    assert '"approved": false' in rejected
    assert "rejected the work" not in rejected  # nobody made that rejection: no lesson


def test_the_store_lives_in_the_lessons_own_folder(executed: dict, tmp_path_factory) -> None:
    folder = Path(executed["right-approve"].metadata.papermill.output_path).parent
    assert (folder / "learning" / "lesson14.learning.duckdb").exists()


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="learning.duckdb")


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--runs", "--no-learning", "--keep", "--reject", "--reviewer", "--task"):
        assert flag in proc.stdout


def test_the_second_run_learns_and_the_ledger_verifies(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Run 2: the writer was given 1 lesson(s)" in proc.stdout
    assert "Revisions of the writer per run: 1 0 0" in proc.stdout
    assert "3 run(s): chain VALID" in proc.stdout
    assert (tmp_path / "learning.learning.duckdb").exists()
    assert ledger_statuses(tmp_path / "learning.duckdb") == ["completed"] * 3


def test_the_layer_off_and_the_store_kept_or_emptied(tmp_path: Path) -> None:
    off = run(tmp_path, "--runs", "2", "--no-learning")
    assert off.returncode == 0, off.stderr
    assert "Revisions of the writer per run: 1 1" in off.stdout
    assert "The store holds 0 outcomes" in off.stdout
    run(tmp_path, "--runs", "1")
    kept = run(tmp_path, "--runs", "1", "--keep", "--reject")
    assert kept.returncode == 0, kept.stderr
    assert "(kept)" in kept.stdout and "Revisions of the writer per run: 0" in kept.stdout
    again = run(tmp_path, "--runs", "1")
    assert "emptied, " in again.stdout and "Revisions of the writer per run: 1" in again.stdout


@pytest.mark.parametrize("args", [("--runs", "0"), ("--runs", "many"), ("--runs", "99")])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2 and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--runs is a whole number from 1 to 20" in lines[0]


def test_without_mock_mode_or_a_key_it_says_which_to_set(tmp_path: Path) -> None:
    proc = run(tmp_path, mock=False)
    assert proc.returncode == 2 and not proc.stdout
    assert "MESHFLOW_MOCK=1" in proc.stderr and "ANTHROPIC_API_KEY" in proc.stderr
