"""Lesson 05 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, answer_cells, cell_errors, execute_answered, verdicts

LESSON = ROOT / "lessons" / "05_streaming_events.ipynb"
SCRIPT = ROOT / "hands_on" / "05_streaming_events.py"

RIGHT = {
    "type_counts": "type_counts = dict(Counter(e.type.value for e in ex1_events))\n"
                   "final_output_event = 'run_complete'\nfinal_output_field = 'output'",
    "cost_threshold": '''cost_threshold = 0.05


def stop_at_cost(stream, threshold):
    taken, spent = [], 0.0
    for event in stream:
        taken.append(event)
        spent += event.cost_usd or 0.0
        if spent > threshold:
            break
    return taken''',
    "count_per_node": '''def count_per_node(event):
    if event.node_id is not None:
        node_counts[event.node_id] = node_counts.get(event.node_id, 0) + 1''',
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "type_counts": "type_counts = {'run_start': 1, 'node_start': 9, 'node_complete': 9, "
                   "'gate_pause': 1, 'gate_resume': 1, 'loop_iteration': 1, 'run_complete': 1}"
                   "\nfinal_output_event = 'node_complete'\nfinal_output_field = 'output'",
    "cost_threshold": answer_cells(nbformat.read(LESSON, as_version=4))["cost_threshold"]
    .source.replace("cost_threshold = None", "cost_threshold = 0.05"),  # a loop that never stops
    "count_per_node": '''def count_per_node(event):
    node_counts[event.node_id] += 1   # a KeyError on every event: nothing is counted''',
}
"""The answer cells filled in wrong: an approved run's counts in a rejected one, a
consumer that never leaves the loop, a subscriber that raises on every event."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson05"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    labels, stop, counter = answered
    assert "of 7 types, each labelled" in labels
    assert "the ledger shows the run cancelled there" in stop
    assert "the most for quality_gate (5)" in counter
    if name == "right-reject":
        assert "in your run it is null" in labels


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    labels, stop, counter = verdicts(notebook)
    assert labels == "HINT: your stream has no gate_resume event: count only the types in its " \
                     "table"
    assert stop.startswith("HINT: your consumer took the whole run, through run_complete")
    assert counter.startswith("HINT: node_counts is empty: your subscriber counted nothing")
    warnings = [out["text"] for cell in notebook.cells for out in cell.get("outputs", [])
                if out.get("name") == "stderr"]
    assert any("event subscriber count_per_node failed" in text for text in warnings)


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="streaming.duckdb",
                        latency="0.02")


def statuses(tmp_path: Path) -> list[str]:
    """The status of every run in the script's ledger, read by another process."""
    return ledger_statuses(tmp_path / "streaming.duckdb")


def test_help_names_every_mode(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--json", "--stop-at-cost", "--stop-after", "--reject", "--reviewer"):
        assert flag in proc.stdout


def test_the_standard_run_prints_each_event_and_verifies_its_ledger(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("#")]
    assert len(lines) == 23 and "run_start" in lines[0] and "run_complete" in lines[-1]
    assert "quality_gate      5" in proc.stdout  # the subscriber's count
    assert "Ledger chain VALID: 23 entries in 1 run checked." in proc.stdout
    assert statuses(tmp_path) == ["completed"]


def test_json_mode_prints_nothing_but_json_lines(tmp_path: Path) -> None:
    proc = run(tmp_path, "--json", "--reject")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_start" and events[-1]["type"] == "run_complete"
    assert events[-1]["payload"]["status"] == "rejected_at_gate"
    assert "VALID" in proc.stderr


@pytest.mark.parametrize(("flags", "at"), [(("--stop-at-cost", "0.03"), "seq 9: the cost"),
                                           (("--stop-after", "researcher"), "seq 3: researcher")])
def test_a_stop_leaves_the_stream_and_the_ledger_records_a_cancel(tmp_path: Path,
                                                                   flags: tuple, at: str) -> None:
    proc = run(tmp_path, *flags)
    assert proc.returncode == 0, proc.stderr
    assert f"Left the stream at {at}" in proc.stdout
    assert "with status cancelled" in proc.stdout and "Ledger chain VALID" in proc.stdout
    assert statuses(tmp_path) == ["cancelled"]


@pytest.mark.parametrize(("args", "says"), [
    (("--stop-at-cost", "-1"), "--stop-at-cost must be a positive number of USD"),
    (("--stop-at-cost", "nan"), "--stop-at-cost must be a positive number of USD"),
    (("--stop-after", "wrtier"), "the pipeline has no such node; its nodes are researcher"),
    (("--nope",), "unrecognized arguments: --nope"),
])
def test_a_flag_that_cannot_work_exits_2_with_one_line(tmp_path: Path, args: tuple,
                                                       says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("05_streaming_events.py: error: ") and says in line, line
    assert proc.stdout == "" and not (tmp_path / "streaming.duckdb").exists()


def test_without_agents_it_says_how_to_get_some_in_one_line(tmp_path: Path) -> None:
    proc = run(tmp_path, mock=False)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert "MESHFLOW_MOCK=1" in line and "ANTHROPIC_API_KEY" in line
