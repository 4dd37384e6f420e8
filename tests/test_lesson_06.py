"""Lesson 06 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "06_policies_and_preflight.ipynb"
SCRIPT = ROOT / "hands_on" / "06_policies_and_preflight.py"


def product_update(gated: tuple[str, ...]) -> str:
    """Exercise 1's answer cell with its four problems fixed, and a gate on the paths from
    ``gated`` into the publisher (the others go straight to it)."""
    targets = {end: "approve_publisher" if end in gated else "publisher"
               for end in ("writer", "translator")}
    edges = "".join(f'    .add_edge("{end}", "{to}")\n' for end, to in targets.items())
    return f'''ex1_workflow = ledger.attach(
    WorkflowDefinition("product_update", policy=Policy(PolicyMode.REGULATED,
                                                       budget_usd=budget_usd,
                                                       carbon_budget_g=carbon_budget_g))
    .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER, RiskTier.READ_ONLY))
    .add_node(Node("writer", agent_for(Role.EXECUTOR), Role.EXECUTOR))
    .add_node(Node("translator", agent_for(Role.EXECUTOR), Role.EXECUTOR))
    .add_node(HumanGate("approve_publisher", timeout_s=gate_timeout_s))
    .add_node(Node("publisher", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
    .add_edge("researcher", "writer")
    .add_edge("researcher", "translator")
{edges}    .add_edge("approve_publisher", "publisher")
)'''


REASON = ("STANDARD only asks for an approval when the run reaches the publisher, and an "
          "unattended approver says yes, so the release still goes out")

RIGHT = {
    "ex1_workflow": product_update(("writer", "translator")),
    "ex2_rules": 'ex2_rules = ["S015", "S016", "P003", "P002", "P006"]',
    "mildest_mode": f"mildest_mode = PolicyMode.REGULATED\nwhy_not_milder = {REASON!r}",
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_workflow": product_update(("writer",)),
    "ex2_rules": 'ex2_rules = ["S015", "S016", "P007", "P002", "P006"]',
    "mildest_mode": f"mildest_mode = PolicyMode.STANDARD\nwhy_not_milder = {REASON!r}",
}
"""The answer cells filled in wrong: a gate on one of the publisher's two paths, one
rule mistaken for another, a mode that only asks."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson06"), RUNS)


@pytest.mark.parametrize(("name", "gate"), [
    ("right-approve", "the publisher ran once your gate was approved"),
    ("right-reject", "the reviewer rejected it, so the publisher never ran")])
def test_right_answers_pass_every_self_check(executed: dict, name: str, gate: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    fixed, rules, mode = answered
    assert gate in fixed and "ledger entries verify" in fixed
    assert "all 5 rules named" in rules
    assert "REGULATED refused ex3_probe before any node ran (P001)" in mode


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    fixed, rules, mode = verdicts(notebook)
    assert fixed.startswith("HINT: pre-flight still finds 1 problem in ex1_workflow (P001)")
    assert "every path into it must pass one" in fixed
    assert rules.startswith("HINT: ex2_rules[2]: problem 3 is not P007") and "P003" not in rules
    assert mode.startswith("HINT: under STANDARD the publisher ran") and "REGULATED" not in mode


def test_the_lesson_shows_what_the_layer_prevents(executed: dict) -> None:
    """The demonstrations the prose relies on, as a learner's run printed them."""
    text = printed(executed["right-reject"])
    assert "layer off (DEV)       completed           publisher ran: True" in text
    assert "layer on (REGULATED)  rejected_preflight  publisher ran: False" in text
    assert "approved=True by 'policy' via 'policy'" in text      # DEV ignores the reviewer
    assert "after the edit:  rejected_preflight ['P008']" in text
    assert "'careless_release': 6 problems" in text
    assert "5 problems, no node run" in text
    assert "the publisher labelled INTERNAL:    completed | messages sent without a gate: 1" \
        in text
    assert "rejected_at_gate | publisher ran: False" in text     # STANDARD asked; reject


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="policies.duckdb",
                        latency="0.01")


def statuses(tmp_path: Path) -> list[str]:
    """The status of every run in the script's ledger, read by another process."""
    return ledger_statuses(tmp_path / "policies.duckdb")


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--mode", "--no-gate", "--no-role", "--no-caps", "--check-only", "--compare",
                 "--reject", "--budget"):
        assert flag in proc.stdout


def test_the_standard_run_passes_pre_flight_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Policy REGULATED (set explicitly: budget_usd, carbon_budget_g)" in proc.stdout
    assert "Pre-flight passed for workflow 'press_release'" in proc.stdout
    assert ">>> sent to the press wire" in proc.stdout
    assert "Ledger chain VALID: 12 entries in 1 run checked." in proc.stdout
    assert statuses(tmp_path) == ["completed"]


def test_every_problem_at_once_and_the_refusal_is_recorded(tmp_path: Path) -> None:
    proc = run(tmp_path, "--no-gate", "--no-role", "--no-caps")
    assert proc.returncode == 0, proc.stderr
    assert "4 problems. No node was run." in proc.stdout
    for rule in ("P001", "P003", "P006"):
        assert f"[{rule} " in proc.stdout
    assert ">>> sent" not in proc.stdout
    assert "Ledger chain VALID: 3 entries in 1 run checked." in proc.stdout
    assert statuses(tmp_path) == ["rejected_preflight"]


@pytest.mark.parametrize(("args", "status", "says"), [
    (("--mode", "dev", "--no-gate"), "completed", ">>> sent to the press wire"),
    (("--mode", "dev", "--reject"), "completed", "--reject was never asked"),
    (("--mode", "standard", "--no-gate", "--reject"), "rejected_at_gate",
     "publisher is EXTERNAL_IO: approve it to run?"),
    (("--reject",), "rejected_at_gate", "REJECTED by reviewer via script"),
])
def test_each_mode_does_what_the_lesson_says(tmp_path: Path, args: tuple, status: str,
                                             says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert says in proc.stdout
    assert statuses(tmp_path) == [status]


def test_check_only_runs_nothing_and_fails_on_a_problem(tmp_path: Path) -> None:
    passing = run(tmp_path, "--check-only")
    assert passing.returncode == 0, passing.stderr
    assert "Pre-flight passed" in passing.stdout
    failing = run(tmp_path, "--check-only", "--no-gate")
    assert failing.returncode == 1
    assert "[P001 ungated-risky-node]" in failing.stdout and "Running" not in failing.stdout
    assert statuses(tmp_path) == []


def test_compare_prints_the_modes_side_by_side(tmp_path: Path) -> None:
    proc = run(tmp_path, "--compare")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("DEV | STANDARD | REGULATED")
    assert "pre-flight needs a human gate before every node at EXTERNAL_IO or above (P001)" \
        in proc.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--budget", "-1"), "Policy.budget_usd must be a finite number > 0"),
    (("--carbon", "nan"), "Policy.carbon_budget_g must be a finite number > 0"),
    (("--mode", "strict"), "argument --mode: invalid choice: 'strict'"),
    (("--nope",), "unrecognized arguments: --nope"),
])
def test_a_flag_that_cannot_work_exits_2_with_one_line(tmp_path: Path, args: tuple,
                                                       says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("06_policies_and_preflight.py: error: ") and says in line, line
    assert proc.stdout == "" and not (tmp_path / "policies.duckdb").exists()


def test_without_agents_it_says_how_to_get_some_in_one_line(tmp_path: Path) -> None:
    proc = run(tmp_path, mock=False)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert "MESHFLOW_MOCK=1" in line and "ANTHROPIC_API_KEY" in line
