"""Lesson 10 as a learner does it: the notebook under papermill with its answer cells
filled in right (every self-check says PASS) and wrong (HINTs, no traceback), and the
terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import nbformat
import pytest
from hands_on_runner import run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "10_human_in_the_loop.ipynb"
SCRIPT = ROOT / "hands_on" / "10_human_in_the_loop.py"

RIGHT = {
    "my_name": 'my_name = "Ada Lovelace"',
    "decision_seq": "decision_seq = 8",
    "ex2_gate": 'ex2_gate = HumanGate("review", prompt="Send it?", timeout_s=0.5)',
    "who_rejected": 'who_rejected = "system"\nwhy_rejected = "timeout"',
    "reject_reason": 'reject_reason = "the store count is wrong: we have 132 stores"\n'
                     'ex3_approver = fixed_approver(False, "Ada Lovelace", reject_reason)',
    "external_io_started": "external_io_started = []",
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "my_name": 'my_name = "Ada Lovelace"',
    "decision_seq": "decision_seq = 7   # the pause, not the decision",
    "ex2_gate": 'ex2_gate = HumanGate("review", prompt="Send it?", timeout_s=0.5)',
    "who_rejected": 'who_rejected = "dana"\nwhy_rejected = "nobody clicked"',
    "reject_reason": 'reject_reason = "the store count is wrong: we have 132 stores"\n'
                     'ex3_approver = fixed_approver(True, "Ada Lovelace", reject_reason)',
    "external_io_started": 'external_io_started = ["publish"]',
}
"""The answer cells filled in wrong: the pause's seq, a made-up reviewer and reason, and
an approver that approves."""

RUNS = {"right-approve": ("approve", RIGHT), "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson10"), RUNS)


def test_right_answers_pass_every_self_check(executed: dict) -> None:
    notebook = executed["right-approve"]
    answered = verdicts(notebook)
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(notebook)
    webhook, timeout, rejected = answered
    assert "entry 8 of your run records 'Ada Lovelace' approving through cli" in webhook
    assert "after 0.5 s with no answer the gate rejected by itself" in timeout
    assert "rejected by 'Ada Lovelace' with your reason" in rejected


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    webhook, timeout, rejected = verdicts(notebook)
    assert webhook.startswith("HINT: entry 7 is where the gate paused")
    assert timeout.startswith("HINT: why_rejected and who_rejected: read the gate_reject")
    assert "system" not in timeout and "'timeout'" not in timeout
    assert rejected.startswith("HINT: ex3_result was not rejected at its gate")


def test_the_governance_cells_show_what_the_layer_prevents(executed: dict) -> None:
    for name, verdict in (("right-approve", "approved by sam"),
                          ("wrong-reject", "rejected by sam")):
        text = printed(executed[name])
        for shown in ("status: completed\ngates asked: 0\nposts sent: 1",
                      "status: rejected_at_gate\ngate: rejected by dana via headless",
                      "tier_threshold=INTERNAL     paused before: write, publish",
                      "[P001 ungated-risky-node] node 'publish'",
                      "rejected_at_gate | rejected by ci-nightly via headless",
                      "signature valid: True", f"decided: {verdict} via cli",
                      "signed with another secret: 401", "body changed after signing: 401",
                      "rejected by system via timeout: timeout",
                      "is waiting for approval", "its process", "is gone",
                      "gate_pause, then gate_resume ... ending with run_complete",
                      "Ledger chain VALID: 23 entries in 1 run checked."):
            assert shown in text, (name, shown)


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents, its ledger and store there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args,
                        MESHFLOW_APPROVALS_DIR=str(tmp_path / "approvals"))


def decisions(tmp_path: Path) -> list[tuple[str, str]]:
    """(status, event type of the decision) of each run in the ledger, by another process."""
    with duckdb.connect(str(tmp_path / "gates.duckdb"), read_only=True) as con:
        return [tuple(row) for row in con.execute(
            "SELECT r.status, e.event_type FROM ledger_runs r LEFT JOIN ledger_entries e "
            "ON e.run_id = r.run_id AND e.event_type IN ('gate_resume', 'gate_reject') "
            "ORDER BY r.started_at").fetchall()]


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--reject", "--ask", "--store", "--no-hitl", "--reviewer", "--reason",
                 "--timeout", "--ledger"):
        assert flag in proc.stdout


def test_the_standard_run_is_approved_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run(tmp_path, "--reviewer", "dana")
    assert proc.returncode == 0, proc.stderr
    assert "Decided: approved by dana via script: approved by script" in proc.stdout
    assert "Ledger chain VALID: 12 entries in 1 run checked." in proc.stdout
    rejected = run(tmp_path, "--reject", "--reason", "wrong store count")
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected by reviewer via script: wrong store count" in rejected.stdout
    assert "sent to 12,000 customers" not in rejected.stdout
    assert decisions(tmp_path) == [("completed", "gate_resume"),
                                   ("rejected_at_gate", "gate_reject")]


def test_the_layer_off_sends_unasked_and_a_silent_store_times_out(tmp_path: Path) -> None:
    off = run(tmp_path, "--no-hitl")
    assert off.returncode == 0 and "Nobody was asked" in off.stdout
    silent = run(tmp_path, "--store", "--timeout", "0.5")
    assert silent.returncode == 0, silent.stderr
    assert "rejected by system via timeout: timeout" in silent.stdout
    assert decisions(tmp_path) == [("completed", None), ("rejected_at_gate", "gate_reject")]


@pytest.mark.parametrize(("args", "says"), [
    (("--timeout", "soon"), "'soon' is not a number of seconds"),
    (("--timeout", "-1"), "above 0"),
    (("--reject", "--store"), "not allowed with argument"),
    (("--ask",), "--ask needs a terminal"),
])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple, says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("10_human_in_the_loop.py: error: ")
    assert says in lines[0] and not proc.stdout
