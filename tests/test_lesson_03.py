"""Lesson 03 (fan-out and fan-in) as a learner does it: the notebook under papermill with
its answer cells filled in right (every self-check says PASS) and wrong (every one says
HINT, and no cell fails), and its terminal twin hands_on/03_fan_out_fan_in.py.

The plain approve and reject runs, and nbval, are tests/test_lessons.py's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import run_hands_on
from lesson_runner import ROOT, cell_errors, execute_all, verdicts

LESSON = ROOT / "lessons" / "03_fan_out_fan_in.ipynb"
SCRIPT = ROOT / "hands_on" / "03_fan_out_fan_in.py"

RIGHT_FANOUT = '''my_fanout = (
    WorkflowDefinition("my_fanout")
    .add_node(Node("planner", slow_agent("planner", 0.05), Role.PLANNER))
    .add_node(Node("technical", slow_agent("technical", 0.3), Role.EXECUTOR))
    .add_node(Node("business", slow_agent("business", 0.3), Role.EXECUTOR))
    .add_node(Node("legal", slow_agent("legal", 0.3), Role.EXECUTOR))
    .add_node(Node("writer", slow_agent("writer", 0.05), Role.EXECUTOR))
    .add_edge("planner", "technical").add_edge("planner", "business")
    .add_edge("planner", "legal").add_edge("technical", "writer")
    .add_edge("business", "writer").add_edge("legal", "writer")
)'''

RIGHT_FAN_POINTS = '''def fan_points(workflow):
    outs, ins = {}, {}
    for edge in workflow.edges:
        if edge.max_iterations:   # a loop edge re-runs a node: no parallel branch
            continue
        outs.setdefault(edge.source, set()).add(edge.target)
        ins.setdefault(edge.target, set()).add(edge.source)
    return ([n for n, t in outs.items() if len(t) > 1], [n for n, s in ins.items() if len(s) > 1])


ex3_marks = fan_points(pipeline)'''

RIGHT = {
    "my_fanout": RIGHT_FANOUT,
    "join_prediction": 'join_prediction = "never starts"\nsiblings_prediction = "finish"\n'
                       'status_prediction = "failed"',
    "ex3_marks": RIGHT_FAN_POINTS,
}

WRONG = {
    "my_fanout": RIGHT_FANOUT.replace('.add_edge("planner", "legal")',
                                      '.add_edge("business", "legal")'),  # two-way fan-out
    "join_prediction": 'join_prediction = "runs"\nsiblings_prediction = "are cancelled"\n'
                       'status_prediction = "failed"',
    "ex3_marks": RIGHT_FAN_POINTS.replace("        if edge.max_iterations:   # a loop edge "
                                          "re-runs a node: no parallel branch\n"
                                          "            continue\n", ""),  # counts loop edges
}
"""Exercise 1 with a branch hung below another (two-way), two predictions wrong, and the
loop edge counted as a branch."""


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answers right (approved) and wrong (rejected), run at once."""
    base = tmp_path_factory.mktemp("lesson03")
    jobs = [(LESSON, base / "right", "approve", RIGHT), (LESSON, base / "wrong", "reject", WRONG)]
    return dict(zip(("right", "wrong"), execute_all(jobs), strict=True))


def test_right_answers_pass_every_self_check(answered: dict) -> None:
    notebook = answered["right"]
    assert not cell_errors(notebook)
    found = verdicts(notebook)
    assert len(found) == 3 and all(v.startswith("PASS: ") for v in found), found
    assert "3 branches overlapped" in found[0] and "faster than a chain" in found[0]
    assert "writer never starts, the other branches finish" in found[1]
    assert found[2].startswith("PASS: fan-out researcher and fan-in writer")


def test_wrong_answers_get_hints_and_no_cell_fails(answered: dict) -> None:
    notebook = answered["wrong"]
    assert not cell_errors(notebook)
    found = verdicts(notebook)
    assert [v.split(":")[0] for v in found] == ["HINT"] * 3, found
    assert "fans out to 2 branches at most" in found[0]
    assert "2 predictions of 3 did not happen" in found[1]
    assert "never starts" not in found[1] and "'finish'" not in found[1]
    assert "quality_gate" in found[2] and "loop edge" in found[2]


def test_the_timelines_render_as_images(answered: dict) -> None:
    """Every plot_timeline cell shows a PNG, with its text beside it for plain readers."""
    plots = [out for cell in answered["right"].cells if "plot_timeline(" in cell.source
             for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(plots) >= 9
    assert all("node executions in" in out["data"]["text/plain"] for out in plots)


def run_script(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script as a learner runs it, in ``tmp_path`` with a ledger of its own there."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock)


def test_help_names_every_mode(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--fail", "--nested", "--capstone", "--branches", "--seconds", "--plot"):
        assert flag in proc.stdout


def test_the_standard_run_times_both_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "--seconds", "0.2", "--plot", "timeline.png")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "'fan_out' completed: 5 node executions" in proc.stdout
    assert "'chain' completed: 5 node executions" in proc.stdout
    speedup = float(proc.stdout.split("s, ")[1].split("x faster than a chain")[0])
    assert speedup >= 2.0
    assert proc.stdout.count("Ledger chain VALID: 12 entries in 1 run checked.") == 2
    assert (tmp_path / "fan_out_fan_in.duckdb").exists()
    assert (tmp_path / "timeline.png").read_bytes().startswith(b"\x89PNG")


def test_a_failing_branch_stops_the_join_and_exits_0(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "--fail", "legal", "--seconds", "0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "legal       " in proc.stdout and "failed" in proc.stdout
    assert "the writer (the join) started: False" in proc.stdout
    assert "Ledger chain VALID: 10 entries in 1 run checked." in proc.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--branches", "1"), "--branches must be 2 to 6, not 1"),
    (("--fail", "marketing"), "--fail marketing: no such branch"),
    (("--seconds", "-1"), "--seconds must be above 0"),
    (("--nested", "--capstone"), "not allowed with argument"),
])
def test_a_bad_flag_exits_2_with_one_line(tmp_path: Path, args: tuple[str, ...],
                                          says: str) -> None:
    proc = run_script(tmp_path, *args)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("03_fan_out_fan_in.py: error: ") and says in line, line
    assert proc.stdout == "" and not (tmp_path / "fan_out_fan_in.duckdb").exists()


def test_the_capstone_without_agents_says_how_in_one_line(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "--capstone", mock=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("03_fan_out_fan_in.py: error: ") and "MESHFLOW_MOCK=1" in line
    assert not (tmp_path / "fan_out_fan_in.duckdb").exists()  # nothing ran, nothing recorded
