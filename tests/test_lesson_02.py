"""Lesson 02 run headlessly with its answer cells filled in, right (approve and reject) and
wrong, and its terminal twin, hands_on/02_agents_and_roles.py, run as a learner runs it.

The plain approve/reject runs and nbval are tests/test_lessons.py's; here the self-check
cells must answer PASS to right answers and HINT to wrong ones, from the real runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, verdicts

from meshflow_nb.ledger import ReplayLedger

LESSON = ROOT / "lessons" / "02_agents_and_roles.ipynb"
SCRIPT = ROOT / "hands_on" / "02_agents_and_roles.py"

EX1_RIGHT = '''
def counter(ctx):
    brief = ctx.inputs["researcher"]
    return {"word_count": len(brief.split())}


def reporter(ctx):
    return f"The brief has {ctx.variables['word_count']} words."


ex1_workflow = (
    WorkflowDefinition("word_count")
    .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER, RiskTier.READ_ONLY))
    .add_node(Node("counter", counter, Role.EXECUTOR, RiskTier.READ_ONLY, exports=["word_count"]))
    .add_node(Node("reporter", reporter, Role.EXECUTOR, RiskTier.INTERNAL))
    .add_edge("researcher", "counter")
    .add_edge("counter", "reporter")
)
'''

EX2_RIGHT = '''
ex2_price = PRICES["claude-haiku-4-5"]


def summariser(ctx):
    brief = ctx.inputs["researcher"]
    text = "Heat pumps cost least to run where power is cheap and winters are mild."
    tokens_in, tokens_out = len(brief) // 4, len(text) // 4
    return AgentResult(text=text, tokens_in=tokens_in, tokens_out=tokens_out,
                       cost_usd=(tokens_in * ex2_price.input_usd_per_mtok
                                 + tokens_out * ex2_price.output_usd_per_mtok) / 1_000_000,
                       model=ex2_price.model, confidence=0.7)
'''

DESK = '''
refund_desk = (
    WorkflowDefinition("refund_desk")
    .add_node(desk_node("fetch_order", role=Role.RESEARCHER, risk_tier=RiskTier.READ_ONLY))
    .add_node(desk_node("draft_reply", role=Role.EXECUTOR, risk_tier=RiskTier.INTERNAL))
    .add_node(desk_node("review_reply", role=Role.CRITIC, risk_tier=RiskTier.READ_ONLY))
    .add_node(desk_node("screen_reply", role=Role.GUARDIAN, risk_tier=RiskTier.READ_ONLY))
    .add_node(HumanGate("approve", content_from="draft_reply", timeout_s=gate_timeout_s,
                        prompt="Send this reply and pay the refund?"))
    .add_node(desk_node("send_reply", role=Role.ORCHESTRATOR, risk_tier=RiskTier.EXTERNAL_IO))
    .add_node(desk_node("pay_refund", role=Role.ORCHESTRATOR, risk_tier=RiskTier.{pay}))
    .add_edge("fetch_order", "draft_reply")
    .add_edge("draft_reply", "review_reply")
    .add_edge("review_reply", "screen_reply")
    .add_edge("screen_reply", "approve")
    .add_edge("approve", "send_reply")
    .add_edge("approve", "pay_refund")
)
'''

RIGHT = {"ex1_workflow": EX1_RIGHT, "ex2_price": EX2_RIGHT,
         "refund_desk": DESK.format(pay="IRREVERSIBLE")}
WRONG = {
    # the reporter reads its input, not the run's variables
    "ex1_workflow": EX1_RIGHT.replace("ctx.variables['word_count']",
                                      "ctx.inputs['counter']['word_count']"),
    # priced per token, not per million tokens
    "ex2_price": EX2_RIGHT.replace(") / 1_000_000,", "),"),
    # money paid back marked as if it could be corrected later
    "refund_desk": DESK.format(pay="EXTERNAL_IO"),
}
RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson executed once per entry of RUNS, all at the same time (one kernel each)."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson02"), RUNS)


def text_of(notebook: nbformat.NotebookNode) -> str:
    """All printed and plain-text output of the notebook, in order."""
    return "\n".join(out.get("text") or out.get("data", {}).get("text/plain", "")
                     for cell in notebook.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed, name):
    notebook = executed[name]
    assert not cell_errors(notebook)
    answered = verdicts(notebook)
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert "reporter, a later node, read it from ctx.variables" in answered[0]
    assert "at claude-haiku-4-5's prices" in answered[1]
    assert "pay_refund (IRREVERSIBLE)" in answered[2]
    text = text_of(notebook)
    assert "Pre-flight passed for workflow 'refund_desk'" in text
    assert "It protects pay_refund and send_reply: IRREVERSIBLE" in text


def ran(notebook: nbformat.NotebookNode) -> list[str]:
    """The nodes exercise 3's run of the refund desk executed (its "ran:" line)."""
    line = next(line for line in text_of(notebook).splitlines() if line.startswith("ran: "))
    return line.removeprefix("ran: ").split(", ")


def test_the_decision_reaches_the_desk_and_the_brief_desk(executed):
    approved, rejected = text_of(executed["right-approve"]), text_of(executed["right-reject"])
    assert "run: completed" in approved and "run: rejected_at_gate" in rejected
    assert {"send_reply", "pay_refund"} <= set(ran(executed["right-approve"]))
    assert not {"send_reply", "pay_refund"} & set(ran(executed["right-reject"]))
    assert "publisher ran: True" in approved and "publisher ran: False" in rejected
    assert "ledger records: gate_reject by headless via headless" in rejected


def test_wrong_answers_get_hints_and_no_traceback(executed):
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    answered = verdicts(notebook)
    assert [v.split(":")[0] for v in answered] == ["HINT", "HINT", "HINT"], answered
    assert "somewhere other than ctx.variables" in answered[0]
    assert "USD per million tokens" in answered[1]
    assert "pay_refund (its risk tier is too low" in answered[2]
    assert "EXTERNAL_IO" not in answered[2]  # the hint points, it does not answer
    # the policy trusted the tier given: the gate asked about EXTERNAL_IO work only
    assert "It protects pay_refund and send_reply: EXTERNAL_IO" in text_of(notebook)


# --- the terminal twin ---------------------------------------------------------------


def run_script(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The hands-on script as a learner runs it, in ``cwd``."""
    return run_hands_on(SCRIPT.name, cwd, *args, **env)


def test_the_script_explains_its_flags(tmp_path):
    proc = run_script("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--reject", "--tier", "--context", "--stream", "--reviewer", "--task"):
        assert flag in proc.stdout
    assert "MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py" in proc.stdout


def test_the_standard_run_asks_once_and_verifies_its_ledger(tmp_path):
    proc = run_script("--context", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "context editor (executor), iteration 1" in proc.stdout
    assert "variables {'quality_score':" in proc.stdout
    assert "Approvals asked: 1 (the publisher is EXTERNAL_IO" in proc.stdout
    assert "Ledger chain VALID" in proc.stdout
    ledger = ReplayLedger(str(tmp_path / "agents_and_roles.db"))
    [run_id] = ledger.runs().run_id
    assert ledger.verify_chain(run_id).valid
    events = ledger.to_dataframe(run_id)
    assert set(events.role.dropna()) == {"researcher", "executor", "critic", "orchestrator"}


@pytest.mark.parametrize(("args", "asked", "published"), [
    (("--reject",), 1, False),
    (("--reject", "--tier", "INTERNAL"), 0, True),
], ids=["rejected", "a tier below the threshold"])
def test_the_tier_decides_who_is_asked(tmp_path, args, asked, published):
    proc = run_script(*args, cwd=tmp_path, MESHFLOW_LEDGER_DB=str(tmp_path / "mine.db"))
    assert proc.returncode == 0, proc.stderr
    assert f"Approvals asked: {asked}" in proc.stdout
    assert ("Final output:" in proc.stdout) is published
    assert "Ledger chain VALID" in proc.stdout and (tmp_path / "mine.db").exists()


@pytest.mark.parametrize("args", [("--bogus",), ("--tier", "HIGH")], ids=["unknown", "bad tier"])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path, args):
    proc = run_script(*args, cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("02_agents_and_roles.py: error: ") and line.endswith("(see --help)")
    assert proc.stdout == "" and not list(tmp_path.iterdir())  # nothing ran, nothing recorded


def test_a_ledger_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path):
    proc = run_script(cwd=tmp_path, MESHFLOW_LEDGER_DB=str(tmp_path / "no" / "such" / "x.db"))
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("02_agents_and_roles.py: error: cannot open")
