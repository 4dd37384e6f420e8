"""Lesson 13 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), and the terminal twin run as a learner runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts

LESSON = ROOT / "lessons" / "13_environmental_tracking.ipynb"
SCRIPT = ROOT / "hands_on" / "13_environmental_tracking.py"

RIGHT = {
    "ex1_node": 'ex1_node = "writer"\nex1_budget_g = 0.5',
    "ex2_node": 'ex2_node = "writer"\nex2_explanation = ("On one model the grams follow the '
                'tokens: the writer reads both analyses, writes the longest draft, and runs '
                'twice because of the quality loop.")',
    "ex3_settings": 'ex3_settings = {"quality_scores": [0.9]}',
}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_node": 'ex1_node = "quality_gate"\nex1_budget_g = 0.5   # the first draft passes it',
    "ex2_node": 'ex2_node = "quality_gate"\nex2_explanation = "todo"',
    "ex3_settings": 'ex3_settings = {"agents": {"writer": MockAgent(Role.EXECUTOR, '
                    'angle="writer", model="claude-haiku-4-5")}}',
}
"""The answer cells filled in wrong: a budget the run passes before the chosen node, the
second node and a placeholder, and one node on a small model (a 24% cut, not a third)."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson13"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    stop, largest, cut = answered
    assert "your carbon budget of 0.5 g stopped the run at writer: the after check" in stop
    assert "writer emitted the most: 0.556 g" in largest
    assert "quality_scores=[0.9] cut the run from 1.514 g to 0.983 g, 35% less" in cut


def test_the_gate_decision_reaches_the_capstone_run(executed: dict) -> None:
    assert "completed 1.514 g CO2e" in printed(executed["right-approve"])
    assert "rejected_at_gate 1.395 g CO2e" in printed(executed["right-reject"])


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    stop, largest, cut = verdicts(notebook)
    assert stop.startswith("HINT: the budget stopped the run at writer, before it reached "
                           "quality_gate")
    assert largest == "HINT: ex2_explanation is placeholder text ('todo')"
    assert cut.startswith("HINT: your setting cut 24% (1.514 g to 1.143 g)")


def test_the_lesson_shows_the_method_the_stops_and_what_the_layer_prevents(
        executed: dict) -> None:
    text = printed(executed["right-approve"])
    for shown in ("grams CO2e = tokens / 1000 x Wh per 1k tokens / 1000 x grid g CO2e per kWh",
                  "Ember, Global Electricity Review 2024",
                  "by hand: 0.144 g   the layer: 0.144 g",
                  "on a 400 g/kWh grid: 0.120 g",
                  "carbon_g is the formula on every row: True",
                  "  budget    carbon\n  when      before",
                  "budget_exceeded: when=after at writer, 0.718 g against a cap of 0.5 g",
                  "chain valid: True",
                  "no carbon budget   completed        23 node executions  8 revisions  4.904 g",
                  " claude-haiku-4-5  small   10515  0.505    0.333",
                  "at  40 g/kWh: small / medium = 0.333",
                  "completed: totals.carbon_g = 0.0, the researcher's carbon_g = None"):
        assert shown in text, shown


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="carbon.duckdb",
                        latency="0.01")


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("13_environmental_tracking.py: error: ")
    assert not proc.stdout
    return lines[0]


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--carbon-budget", "--no-carbon-budget", "--runaway", "--model",
                 "--max-revisions", "--reject", "--reviewer"):
        assert flag in proc.stdout


def test_the_standard_run_stops_at_its_carbon_budget_and_verifies(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Carbon budget: 1 g CO2e, checked before and after each execution" in proc.stdout
    assert "budget_exceeded  budget=carbon when=before node=writer spent=0.896688 " \
           "estimate=0.238896 cap=1.0" in proc.stdout
    assert "budget_exceeded: 0.897 g CO2e over 5 node executions" in proc.stdout
    assert "Ledger chain VALID: 15 entries in 1 run checked." in proc.stdout
    assert ledger_statuses(tmp_path / "carbon.duckdb") == ["budget_exceeded"]


def test_without_a_budget_the_runaway_loop_runs_to_its_guard(tmp_path: Path) -> None:
    proc = run(tmp_path, "--runaway", "--no-carbon-budget")
    assert proc.returncode == 0, proc.stderr
    assert "completed: 4.904 g CO2e over 23 node executions" in proc.stdout
    assert "writer #9" in proc.stdout and "budget_exceeded" not in proc.stdout
    capped = run(tmp_path, "--runaway", "--carbon-budget", "2", "--reject")
    assert capped.returncode == 0, capped.stderr
    assert "budget_exceeded: 1.891 g CO2e over 9 node executions" in capped.stdout
    assert ledger_statuses(tmp_path / "carbon.duckdb") == ["completed", "budget_exceeded"]


def test_a_small_model_does_the_same_work_for_a_third_of_the_grams(tmp_path: Path) -> None:
    proc = run(tmp_path, "--no-carbon-budget", "--model", "claude-haiku-4-5")
    assert proc.returncode == 0, proc.stderr
    assert "completed: 0.505 g CO2e over 9 node executions" in proc.stdout
    assert "  writer         0.185 g" in proc.stdout  # a third of 0.556 g


@pytest.mark.parametrize(("args", "says"), [
    (("--carbon-budget", "-1"), "a carbon budget is a number of grams above 0"),
    (("--carbon-budget", "lots"), "is not a number of grams"),
    (("--carbon-budget", "1", "--no-carbon-budget"), "not allowed with argument"),
    (("--model", "gpt-9"), "'gpt-9' is not in the price table"),
    (("--max-revisions", "0"), "--max-revisions is a whole number, 1 or more"),
])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple, says: str) -> None:
    assert says in one_line_error(run(tmp_path, *args))


def test_without_mock_mode_or_a_key_it_says_which_to_set(tmp_path: Path) -> None:
    line = one_line_error(run(tmp_path, mock=False))
    assert "MESHFLOW_MOCK=1" in line and "ANTHROPIC_API_KEY" in line


# --- the toolkit the lesson uses: carbon_table, plot_carbon, plot_emissions, carbon_method --


@pytest.fixture(scope="module")
def carbon_runs() -> dict[str, object]:
    """The capstone in mock mode: no carbon budget, 1 g (a refusal), 0.5 g (an after stop),
    and with the environmental layer off."""
    from meshflow_nb import Policy, fixed_approver
    from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

    approve = fixed_approver(True, "tester", "approved in a test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0.01")
        pipeline = build_capstone_pipeline()
        policies = {"free": Policy(), "refused": Policy(carbon_budget_g=1.0),
                    "after": Policy(carbon_budget_g=0.5),
                    "off": Policy(enable_environmental=False)}
        return {name: pipeline.run(CAPSTONE_TASK, approver=approve, policy=policy)
                for name, policy in policies.items()}


def test_carbon_table_has_the_grams_the_budget_saw(carbon_runs: dict) -> None:
    from meshflow_nb.notebook import carbon_table

    table = carbon_table(carbon_runs["free"])
    assert list(table.columns) == ["node", "iteration", "model", "tokens_in", "tokens_out",
                                   "carbon_g", "estimate_g", "spent_g", "stop"]
    assert table.carbon_g.sum() == pytest.approx(carbon_runs["free"].totals.carbon_g)
    assert list(table.spent_g) == pytest.approx(list(table.carbon_g.cumsum()))
    refused = carbon_table(carbon_runs["refused"])
    assert refused.iloc[-1].stop == "before" and refused.iloc[-1].estimate_g == \
        pytest.approx(0.238896)
    assert list(carbon_table(carbon_runs["after"]).stop)[-1] == "after"
    by_node = carbon_table(carbon_runs["free"], by="node").set_index("node")
    assert by_node.loc["writer", "executions"] == 2
    assert by_node.share.sum() == pytest.approx(1.0)
    assert (carbon_table(carbon_runs["off"]).carbon_g == 0).all()


def test_a_carbon_stop_is_no_cost_stop_and_the_other_way_round(carbon_runs: dict) -> None:
    from meshflow_nb.notebook import cost_table

    assert set(cost_table(carbon_runs["refused"]).stop) == {""}


def test_the_carbon_charts_draw_grams_and_print_them(carbon_runs: dict) -> None:
    from meshflow_nb.notebook import plot_carbon, plot_emissions

    bars = plot_carbon({"off": carbon_runs["free"], "1 g": carbon_runs["refused"]})
    assert bars._repr_png_()[:4] == b"\x89PNG"
    lines = bars.printed.splitlines()
    assert lines[0] == "off: 1.514 g over 8 agent executions, no carbon budget, completed"
    assert "  writer        refused before execution 2 (estimate 0.239 g)" in lines
    hatched = [p for p in bars.axes[0].patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_width() == pytest.approx(0.238896)
    spend = plot_emissions({"1 g": carbon_runs["refused"], "0.5 g": carbon_runs["after"]})
    drawn = [t.get_text() for t in spend.axes[0].texts]
    assert "refused: the estimate would reach 1.136 g" in drawn
    assert "stopped after this one" in drawn
    assert spend.axes[0].get_ylabel() == "g CO2e emitted so far"
    empty = plot_carbon(carbon_runs["off"])
    assert any("is enable_environmental off?" in t.get_text() for t in empty.axes[0].texts)


def test_carbon_method_is_the_engines_estimate_with_its_sources() -> None:
    from meshflow_nb import PRICES
    from meshflow_nb.notebook import carbon_method

    method = carbon_method()
    assert method.grams(1000, "claude-sonnet-4-5") == pytest.approx(0.144)
    assert method.grams(1000, "claude-sonnet-4-5", grid_g_per_kwh=400) == pytest.approx(0.12)
    assert method.grams(1000, "not-a-model") == method.grams(1000, "claude-sonnet-4-5")
    table = method.table()
    assert list(table.model) == list(PRICES)
    assert set(table["Wh per 1k tokens"]) == {0.1, 0.3, 1.0}
    text = method.describe()
    assert "Ember" in text and "Luccioni" in text and "PUE" in text
    assert all(len(line) <= 100 for line in text.splitlines())
