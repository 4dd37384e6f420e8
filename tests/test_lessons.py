"""Every lesson notebook runs headlessly under papermill (approve and reject where it has
a gate), its deterministic cells match under nbval, and the executed notebook stays
readable without widgets and carries valid widget metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from lesson_runner import (
    LESSONS,
    ROOT,
    decided_copy,
    decisions_for,
    execute_all,
    printed,
    verdicts,
)
from test_selfcheck import COUNTS, RIGHT_CHECKLIST, RIGHT_RISK

CAPSTONE = "16_production_pipeline"
CAPSTONE_PATH = ROOT / "lessons" / f"{CAPSTONE}.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
JOBS = [(lesson, decision) for lesson in LESSONS for decision in decisions_for(lesson)]


def right_answers(decision: str) -> dict[str, str]:
    """Lesson 16's answer cells as a learner who got everything right fills them in."""
    nodes, loops = COUNTS[decision]
    return {
        "nodes_executed": f"nodes_executed = {nodes}\nloop_iterations = {loops}",
        "final_output_field": 'final_output_field = "output"',
        "violated_rule": 'violated_rule = "P001"',
        "fixed_pipeline": "fixed_pipeline = ledger.attach(build_capstone_pipeline("
                          "policy=POLICY, gate_timeout_s=gate_timeout_s))",
        "checklist": f"checklist = {RIGHT_CHECKLIST!r}\nhighest_risk = {RIGHT_RISK!r}",
    }


WRONG_ANSWERS = {
    "nodes_executed": "nodes_executed = 9\nloop_iterations = 1",  # the approve count
    "final_output_field": 'final_output_field = ["output"]',
    "violated_rule": "# the learner deleted the line",
    "checklist": 'checklist = {c: [("x", "Low")] * 3 for c in ["agents", "secrets", "ledger", '
                 '"hitl", "observability", "infrastructure"]}\nhighest_risk = "a a a a a a a a"',
}
"""Lesson 16's answer cells filled in wrong: a count from an approved run in a rejected
one, a list for a name, a variable deleted, filler."""

ANSWERED = {"right-approve": ("approve", right_answers("approve")),
            "right-reject": ("reject", right_answers("reject")),
            "wrong-reject": ("reject", WRONG_ANSWERS)}


def test_the_capstone_lesson_exists() -> None:
    assert any(lesson.stem == CAPSTONE for lesson in LESSONS), "lessons/16 is missing"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str | None], dict]:
    """Every lesson x decision as written, and lesson 16 with its answer cells filled in
    (keyed by the name in ANSWERED), executed once, all at the same time (one kernel each)."""
    base = tmp_path_factory.mktemp("lessons")
    keys = [(lesson.stem, decision) for lesson, decision in JOBS] + \
        [(CAPSTONE, name) for name in ANSWERED]
    jobs = [(lesson, base / f"{lesson.stem}-{decision}", decision) for lesson, decision in JOBS]
    jobs += [(CAPSTONE_PATH, base / f"{CAPSTONE}-{name}", decision, answers)
             for name, (decision, answers) in ANSWERED.items()]
    return dict(zip(keys, execute_all(jobs), strict=True))


@pytest.mark.parametrize(("stem", "decision"), [(lesson.stem, d) for lesson, d in JOBS])
def test_lesson_runs_without_a_cell_error(executed: dict, stem: str, decision: str | None) -> None:
    notebook = executed[(stem, decision)]
    errors = [out for cell in notebook.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    nbformat.validate(notebook)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_capstone_gate_decision_reaches_publisher_and_ledger(executed: dict,
                                                             decision: str) -> None:
    text = printed(executed[(CAPSTONE, decision)])
    approved = decision == "approve"
    said = "\n".join(line for line in text.splitlines() if line.startswith((
        "Run ", "  gate ", "  error", "publisher ran", "ledger records")))
    assert f"publisher ran: {approved}" in text, said
    verdict = "gate_resume" if approved else "gate_reject"
    assert f"ledger records: {verdict} by headless via headless" in text
    status = "completed" if approved else "rejected_at_gate"
    assert f"': {status}" in text  # the run summary


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_capstone_self_checks_answer_from_the_real_run(executed: dict, decision: str) -> None:
    notebook = executed[(CAPSTONE, decision)]
    # untouched answer cells give hints; the cells the lesson performs itself pass
    assert verdicts(notebook) == [
        "HINT: set nodes_executed (node executions in your run) and loop_iterations (trips "
        "back from quality_gate to the writer) in the answer cell above",
        "HINT: set final_output_field (the field of the final event that holds the published "
        "content) in the answer cell above",
        "HINT: set violated_rule (the rule id in the rejection report) and fixed_pipeline "
        "(the pipeline built again, fixed) in the answer cell above",
        "PASS: seq 2 found edited; the fresh ledger verifies VALID",
        "HINT: add items under ledger, hitl, observability, infrastructure",
    ]
    assert "[P001 ungated-risky-node]" in printed(notebook)  # exercise 3's rejection


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_capstone_self_checks_pass_right_answers(executed: dict, name: str) -> None:
    """Each exercise's run is the same whatever ran before it in the kernel: the counts
    of the course text (9 and 1 approved) pass, after the lesson's own runs."""
    answered = verdicts(executed[(CAPSTONE, name)])
    assert len(answered) == 5 and all(v.startswith("PASS: ") for v in answered), answered
    nodes, loops = COUNTS[ANSWERED[name][0]]
    assert answered[0].startswith(f"PASS: {nodes} node executions and {loops} loop")
    assert "1 loop iteration;" in answered[1]
    if name == "right-reject":
        assert "publisher never ran" in answered[0]
        assert "in your run it is null" in answered[1]


def test_capstone_self_checks_hint_at_wrong_answers(executed: dict) -> None:
    answered = verdicts(executed[(CAPSTONE, "wrong-reject")])
    assert [v.split(":")[0] for v in answered] == ["HINT", "HINT", "HINT", "PASS", "HINT"]
    assert "rejected at the gate" in answered[0] and "7" not in answered[0]
    assert "final_output_field should be one field name" in answered[1]
    assert "violated_rule is not defined" in answered[2]
    assert "is too short" in answered[4]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_widgets_have_readable_fallbacks_and_valid_state(executed: dict, decision: str) -> None:
    notebook = executed[(CAPSTONE, decision)]
    views = [out for cell in notebook.cells for out in cell.get("outputs", [])
             if WIDGET_VIEW in out.get("data", {})]
    assert views, "the lesson shows no widget"
    for out in views:
        plain = out["data"]["text/plain"]
        assert "text/html" in out["data"]
        assert not plain.startswith(("VBox(", "HBox(")), plain[:80]
    state = notebook.metadata["widgets"][WIDGET_STATE]
    assert state["version_major"] == 2
    referenced = {out["data"][WIDGET_VIEW]["model_id"] for out in views}
    assert referenced <= set(state["state"]), "an output names a widget the state lacks"


def test_live_view_fallback_shows_the_final_state(executed: dict) -> None:
    """The text an executed notebook keeps is the run's end, not its first frame."""
    notebook = executed[(CAPSTONE, "reject")]
    texts = [out["data"]["text/plain"] for cell in notebook.cells
             for out in cell.get("outputs", []) if WIDGET_VIEW in out.get("data", {})]
    assert any("status rejected_at_gate" in t and "publisher     pending" in t for t in texts)
    assert any("rejected by headless via headless" in t for t in texts)


def test_deterministic_cells_match_under_nbval(tmp_path: Path) -> None:
    """nbval re-runs each lesson (a scratch copy in a folder of its own) and compares the
    tagged outputs; the lessons run in parallel processes, four at a time, so the check
    takes about as long as the slowest few lessons rather than all of them in a row."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda lesson: _nbval(lesson, tmp_path / lesson.stem), LESSONS))
    failed = [f"{lesson.name}:\n{out[-3000:]}" for lesson, (code, out) in zip(
        LESSONS, results, strict=True) if code != 0]
    assert not failed, "\n\n".join(failed)


def _nbval(lesson: Path, folder: Path) -> tuple[int, str]:
    """nbval on a copy of ``lesson`` in ``folder`` (its ledgers land there), its gates
    decided headlessly: nbval passes no parameters, and a lesson that asks for a click
    would wait for its gate's timeout."""
    folder.mkdir()
    decision = decisions_for(lesson)[0]
    copy = decided_copy(lesson, folder, decision)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(folder), str(copy)],
        cwd=folder, capture_output=True, text=True, timeout=600,
        env=_env())
    return proc.returncode, proc.stdout


def test_committed_lessons_carry_only_checked_outputs() -> None:
    """Notebooks are source: no volatile output (run ids, timings) is committed."""
    for lesson in LESSONS:
        notebook = nbformat.read(lesson, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            checked = "nbval-check-output" in cell.metadata.get("tags", [])
            assert checked or not cell.outputs, f"{lesson.name}: output in {cell.source[:60]!r}"
            assert "widgets" not in notebook.metadata
            assert "run_id" not in json.dumps(cell.outputs), cell.source[:60]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MESHFLOW_HITL"}


# --- lesson 15: real models and replay ----------------------------------------------------

REAL_MODELS = "15_real_models"
REAL_MODELS_PATH = ROOT / "lessons" / f"{REAL_MODELS}.ipynb"
REAL_MODELS_RUNS = {"approve": ("approve", None), "reject": ("reject", None),
                    "right-approve": ("approve", True), "wrong-reject": ("reject", False)}
"""Lesson 15 as written (approve, reject) and with its answer cells filled in (right,
wrong): run by a fixture of its own, so that its tests do not wait on other lessons."""


def replay_cell(**variables: str) -> str:
    """Exercise 3's answer cell, completed with these variables for the replay."""
    settings = ", ".join(f"{name}={value}" for name, value in variables.items())
    return ("ex3_replay_ledger = fresh_ledger()\n"
            f"with environment({settings}):\n"
            "    ex3_replayed = ex3_replay_ledger.attach(brief_pipeline()).run(EX3_TASK)")


def printed_bound() -> str:
    """The capstone's cost bound as section 2 prints it (four decimals)."""
    from meshflow_nb import estimate_cost
    from meshflow_nb.pipelines import (
        CAPSTONE_CASSETTE,
        CAPSTONE_TASK,
        build_capstone_pipeline,
        recorded_policy,
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MESHFLOW_MOCK", "MESHFLOW_MODEL"):
            patch.delenv(name, raising=False)
        patch.setenv("MESHFLOW_REPLAY", CAPSTONE_CASSETTE)
        preview = estimate_cost(build_capstone_pipeline(policy=recorded_policy()),
                                CAPSTONE_TASK)
    return f"{preview.cost_usd:.4f}"


def real_models_answers(right: bool) -> dict[str, str]:
    """Lesson 15's answer cells as a learner who got everything right fills them in, or
    one who quoted the number, retried once too often, replayed by calling the server
    again and moved to a legacy model."""
    if right:
        return {"capstone_bound": f"capstone_bound = {printed_bound()}\npriciest_node = 'writer'",
                "my_fault": 'my_fault = Fault("overloaded", times=2)',
                "ex3_replay_ledger": replay_cell(MESHFLOW_REPLAY="ex3_cassette"),
                "lesson_model": 'lesson_model = "claude-sonnet-5-5"'}
    return {"capstone_bound": 'capstone_bound = "0.06"\npriciest_node = "quality_gate"',
            "my_fault": 'my_fault = Fault("overloaded", times=3)',
            "ex3_replay_ledger": replay_cell(ANTHROPIC_BASE_URL="ex3_server.url"),
            "lesson_model": 'lesson_model = "claude-sonnet-4-6"'}


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Lesson 15 executed in each way of `REAL_MODELS_RUNS`, all at once."""
    base = tmp_path_factory.mktemp("real-models")
    jobs = [(REAL_MODELS_PATH, base / name, decision,
             None if right is None else real_models_answers(right))
            for name, (decision, right) in REAL_MODELS_RUNS.items()]
    return dict(zip(REAL_MODELS_RUNS, execute_all(jobs), strict=True))


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_real_models_lesson_replays_the_capstone_with_no_key(real_models: dict,
                                                             decision: str) -> None:
    text = printed(real_models[decision])
    approved = decision == "approve"
    assert "calls go to: the replay of capstone_local.json" in text
    assert f"publisher ran: {approved}" in text
    verdict = "gate_resume" if approved else "gate_reject"
    assert f"ledger records: {verdict} by headless via headless" in text
    assert f"Ledger chain VALID: {23 if approved else 20} entries in 1 run checked." in text
    for shown in ("CostCapError: ", "node_retry researcher: retry 1 of 2 after 0.3 s",
                  "the two ledgers' node rows are equal: True", "ReplayMissError: replay miss",
                  "RetiredModelError: ", "the old recording, replayed today: completed"):
        assert shown in text, shown


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_real_models_self_checks_answer_from_the_real_runs(real_models: dict,
                                                          decision: str) -> None:
    """Untouched answer cells give hints; exercise 4's starts on the retired model."""
    assert verdicts(real_models[decision]) == [
        "HINT: set capstone_bound (the most the capstone can cost, in USD) and priciest_node "
        "(the node that can cost the most) in the answer cell above",
        "HINT: set my_fault (a Fault(...) that makes one node retry exactly twice) in the "
        "answer cell above",
        "HINT: set ex3_replayed (the replayed run) in the answer cell above",
        "HINT: lesson_model: claude-sonnet-4-5 is retired, and the API no longer serves it: "
        "the error of your run names what replaces it",
    ]


def test_real_models_self_checks_pass_right_answers(real_models: dict) -> None:
    answered = verdicts(real_models["right-approve"])
    assert len(answered) == 4 and all(v.startswith("PASS: ") for v in answered), answered
    assert "writer can cost the most" in answered[0]
    assert "retried twice" in answered[1] and "no request reached the server" in answered[2]
    assert "every agent answered on claude-sonnet-5-5" in answered[3]


def test_real_models_self_checks_hint_at_wrong_answers(real_models: dict) -> None:
    answered = verdicts(real_models["wrong-reject"])
    assert [v.split(":")[0] for v in answered] == ["HINT"] * 4, answered
    assert "drop the quotes" in answered[0]
    assert "failed after 3 attempts" in answered[1]
    assert "reached ex3_server" in answered[2]
    assert "legacy" in answered[3] and "claude-sonnet-5-5" not in answered[3]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_real_models_runs_clean_and_shows_the_final_state(real_models: dict,
                                                          decision: str) -> None:
    """No cell error, and the live view's text fallback keeps the run's end."""
    notebook = real_models[decision]
    assert not [out for cell in notebook.cells for out in cell.get("outputs", [])
                if out.get("output_type") == "error"]
    status = "completed" if decision == "approve" else "rejected_at_gate"
    views = [out["data"]["text/plain"] for cell in notebook.cells
             for out in cell.get("outputs", []) if WIDGET_VIEW in out.get("data", {})]
    assert any(f"status {status}" in text for text in views), views[:1]
