"""Lesson 04 as a learner does it: the notebook run with its answer cells filled in right
(every self-check says PASS, approved and rejected) and wrong (HINTs, no traceback), and
its terminal twin hands_on/04_conditions_and_loops.py run from a shell.

The plain approve/reject runs and nbval of the untouched lesson are tests/test_lessons.py's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, verdicts

LESSON = ROOT / "lessons" / "04_conditions_and_loops.ipynb"
SCRIPT = ROOT / "hands_on" / "04_conditions_and_loops.py"


def fixed_review_source() -> str:
    """Exercise 3's answer cell with both typos fixed, and nothing else changed."""
    notebook = nbformat.read(LESSON, as_version=4)
    cell = next(c for c in notebook.cells if c.source.startswith("# answer cell: fix"))
    fixed = cell.source.replace("acuracy <", "accuracy <").replace("tone = 'formal'",
                                                                   "tone == 'formal'")
    assert "acuracy" not in fixed and "tone = " not in fixed
    return fixed


RIGHT = {
    "send_back": 'send_back = f"quality_score < {threshold}"\n'
                 'send_on = f"quality_score >= {threshold}"',
    "ex2_scores": "ex2_scores = [0.4, 0.5, 0.6]",
    "exhausted_seq": "exhausted_seq = next(e.seq for e in ex2_result.events\n"
                     "                     if e.type.value == 'loop_exhausted')\n"
                     "drafts_written = ex2_result.nodes['writer'].executions",
    "fixed_review": fixed_review_source(),
}
"""Lesson 04's answer cells as a learner who got everything right fills them in."""

WRONG = {
    "send_back": 'send_back = "quality_score <= 0.75"\nsend_on = "quality_score > 0.75"',
    "exhausted_seq": "exhausted_seq = 5\ndrafts_written = 1",  # the untouched [0.9] run
    "fixed_review": RIGHT["fixed_review"].replace("tone == 'formal'", "tone = 'formal'"),
}
"""Answers a learner gets wrong: the threshold on the wrong side, the scores left as
they are (so the loop never runs out), one of the two typos left in."""

ANSWERED = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
            "wrong-approve": ("approve", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with each set of answers, executed at the same time (one kernel each)."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson04"), ANSWERED)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    assert "every hidden score below 0.75 goes back to the writer" in answered[0]
    assert "the guard was spent after 3 drafts" in answered[1]
    gate = "approved it below the bar" if name == "right-approve" else "rejected it"
    assert gate in answered[1]
    assert "your fixed definition ran (completed)" in answered[2]  # its gate is scripted


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    answered = verdicts(executed["wrong-approve"])
    assert [v.split(":")[0] for v in answered] == ["HINT", "HINT", "HINT"], answered
    assert not cell_errors(executed["wrong-approve"])
    assert "exactly at the threshold goes back to the writer" in answered[0]
    assert "quality_score < 0.75" not in answered[0]
    assert "the loop did not run out in your run" in answered[1]
    assert "pre-flight still finds 1 problem in fixed_review" in answered[2]


# --- the terminal twin -------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in mock mode, its ledger in ``tmp_path``."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, ledger="conditions.duckdb")


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--scores", "--send-back", "--send-on", "--max-iterations", "--reject",
                 "--reviewer", "--stream", "--task"):
        assert flag in proc.stdout


def test_the_standard_run_revises_once_publishes_and_verifies(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loop    critic -> writer [quality_score < 0.8] -> revision 1 of 2" in proc.stdout
    assert "draft 2: quality_score=0.85\n    -> on to the human gate" in proc.stdout
    assert "\nPublished.\n" in proc.stdout
    assert "Ledger chain VALID: 17 entries in 1 run checked." in proc.stdout


def test_a_spent_guard_still_reaches_the_gate(tmp_path: Path) -> None:
    proc = run(tmp_path, "--scores", "0.4,0.5,0.6", "--reject", "--reviewer", "dana")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loop_exhausted (seq 16): the guard is spent" in proc.stdout
    assert "REJECTED by dana" in proc.stdout and "rejected_at_gate" in proc.stdout
    assert "Ledger chain VALID" in proc.stdout


def test_a_typo_is_reported_by_pre_flight_and_exits_1(tmp_path: Path) -> None:
    proc = run(tmp_path, "--send-back", "qualty_score < 0.8", "--send-on",
               "quality_score =< 0.8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[S015 unknown-variable]" in proc.stdout and "[S014 condition-syntax]" in proc.stdout
    assert "(column 15)" in proc.stdout and "no node ran" in proc.stdout


def test_a_gap_between_the_conditions_exits_1(tmp_path: Path) -> None:
    proc = run(tmp_path, "--scores", "0.8", "--send-on", "quality_score > 0.8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Nothing was published" in proc.stdout


def test_the_stream_is_json_lines_only(tmp_path: Path) -> None:
    proc = run(tmp_path, "--stream")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('{"run_id"') and all(line.startswith("{") for line in lines)
    assert "draft by draft" in proc.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--bogus",), "unrecognized arguments: --bogus"),
    (("--scores", "0.4,high"), "is not a list of numbers"),
    (("--scores", "40,50"), "between 0 and 1"),
    (("--max-iterations", "two"), "invalid int value"),
])
def test_a_bad_flag_exits_2_with_one_line(tmp_path: Path, args: tuple[str, ...],
                                          says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("04_conditions_and_loops.py: error: ")
    assert says in lines[0]
