"""The IPython magics, driven through an in-process IPython shell (no kernel)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import SVG, Pretty
from traitlets.config import Config

from meshflow_nb import Node, RunResult, RunStatus, WorkflowDefinition
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import magics
from meshflow_nb.notebook.explorer import LedgerView
from meshflow_nb.pipelines import build_capstone_pipeline

MAGICS = {"line": ("meshflow_draw", "meshflow_run", "meshflow_verify"),
          "cell": ("meshflow_sql",)}
TAMPER = "UPDATE ledger_entries SET output = '{\"tampered\": true}' WHERE seq = 2;"


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A fresh in-process shell with the extension loaded, and mock agents."""
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    monkeypatch.delenv("MESHFLOW_HITL", raising=False)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "meshflow_nb")
    yield ip
    InteractiveShell.clear_instance()


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Everything the magics pass to ``display``."""
    seen: list[Any] = []
    monkeypatch.setattr(magics, "display", lambda *objs: seen.extend(objs))
    return seen


@pytest.fixture
def ledger(shell: InteractiveShell, tmp_path: Path) -> ReplayLedger:
    """``wf`` (the capstone, recorded by ``ledger``) in the user namespace."""
    ledger = ReplayLedger(tmp_path / "magics.duckdb")
    shell.user_ns["wf"] = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    shell.user_ns["ledger"] = ledger
    return ledger


def test_load_ext_registers_every_magic(shell: InteractiveShell) -> None:
    registered = shell.magics_manager.magics
    for kind, names in MAGICS.items():
        for name in names:
            assert name in registered[kind], name


def test_help_lists_the_arguments(shell: InteractiveShell) -> None:
    draw = shell.find_line_magic("meshflow_draw").__doc__
    assert "--text" in draw and "WorkflowDefinition" in draw
    assert "--reject" in shell.find_line_magic("meshflow_run").__doc__
    assert "--ledger" in shell.find_cell_magic("meshflow_sql").__doc__
    assert "--anchor" in shell.find_line_magic("meshflow_verify").__doc__


def test_draw_returns_svg_with_node_ids(shell: InteractiveShell, ledger: ReplayLedger) -> None:
    drawing = shell.run_line_magic("meshflow_draw", "wf")
    assert isinstance(drawing, SVG)
    for node in shell.user_ns["wf"].nodes:
        assert node.id in drawing.data


def test_draw_text_is_an_outline(shell: InteractiveShell, ledger: ReplayLedger) -> None:
    outline = shell.run_line_magic("meshflow_draw", "wf --text")
    assert isinstance(outline, Pretty)
    assert "human gate" in outline.data and "->" in outline.data
    assert all(node.id in outline.data for node in shell.user_ns["wf"].nodes)


def test_run_stores_result_and_shows_view(shell: InteractiveShell, ledger: ReplayLedger,
                                          shown: list[Any]) -> None:
    shell.run_line_magic("meshflow_run", "wf solid-state batteries --approve --var res")
    result = shell.user_ns["res"]
    assert isinstance(result, RunResult)
    assert result.status is RunStatus.COMPLETED and result.task == "solid-state batteries"
    assert isinstance(shown[0], SVG) and "<svg" in shown[0].data
    assert isinstance(shown[1], Pretty) and "status completed" in shown[1].data


def test_run_reject_ends_at_gate(shell: InteractiveShell, ledger: ReplayLedger,
                                 shown: list[Any]) -> None:
    shell.run_line_magic("meshflow_run", "wf t --reject --reviewer ada")
    result = shell.user_ns[magics.DEFAULT_RESULT_VAR]
    assert result.status is RunStatus.REJECTED_AT_GATE
    assert result.decisions[0].reviewer == "ada"
    assert "rejected_at_gate" in shown[-1].data


def test_sql_then_tamper_then_verify(shell: InteractiveShell, ledger: ReplayLedger,
                                     shown: list[Any]) -> None:
    shell.run_line_magic("meshflow_run", "wf t --approve")
    frame = shell.run_cell_magic(
        "meshflow_sql", "--ledger ledger",
        "SELECT run_id, node_id, prev_hash, hash FROM ledger_entries ORDER BY seq;")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["run_id", "node_id", "prev_hash", "hash"]
    assert len(frame) > 10
    assert set(frame["run_id"]) == {shell.user_ns[magics.DEFAULT_RESULT_VAR].run_id}
    clean = shell.run_line_magic("meshflow_verify", "--ledger ledger")
    assert isinstance(clean, LedgerView) and clean.damaged().empty
    shell.run_cell_magic("meshflow_sql", f"--db {ledger.location}", TAMPER)
    view = shell.run_line_magic("meshflow_verify", f"--db {ledger.location}")
    assert list(view.damaged()["seq"]) == [2]
    assert "seq 2" in view.text() and "edited" in view.text()
    assert "seq 2" in view._repr_html_()


def test_verify_one_run(shell: InteractiveShell, ledger: ReplayLedger, shown: list[Any]) -> None:
    shell.run_line_magic("meshflow_run", "wf t --approve --var a")
    shell.run_line_magic("meshflow_run", "wf u --approve --var b")
    run_id = shell.user_ns["b"].run_id
    view = shell.run_line_magic("meshflow_verify", f"{run_id} --ledger ledger")
    assert set(view.frame["run_id"]) == {run_id}


def test_sql_error_is_one_line(shell: InteractiveShell, ledger: ReplayLedger) -> None:
    with pytest.raises(UsageError, match="no_such_table") as err:
        shell.run_cell_magic("meshflow_sql", "--ledger ledger", "SELECT * FROM no_such_table")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("magic", "line"), [
    ("meshflow_draw", "nope"), ("meshflow_run", "nope some task"),
    ("meshflow_verify", "--ledger nope")])
def test_missing_variable_is_named(shell: InteractiveShell, magic: str, line: str) -> None:
    with pytest.raises(UsageError, match="'nope'"):
        shell.run_line_magic(magic, line)


def test_wrong_type_is_named(shell: InteractiveShell) -> None:
    shell.user_ns["wf"] = 42
    with pytest.raises(UsageError, match="'wf' is a int, not a WorkflowDefinition"):
        shell.run_line_magic("meshflow_draw", "wf")
    with pytest.raises(UsageError, match="'wf'"):
        shell.run_cell_magic("meshflow_sql", "--ledger wf", "SELECT 1")


def test_approve_and_reject_together_is_refused(shell: InteractiveShell,
                                               ledger: ReplayLedger) -> None:
    with pytest.raises(UsageError, match="either --approve or --reject"):
        shell.run_line_magic("meshflow_run", "wf t --approve --reject")


def test_run_that_cannot_start_is_one_line(shell: InteractiveShell, ledger: ReplayLedger,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(shell.user_ns["wf"], "run", broken)
    with pytest.raises(UsageError, match=r"RuntimeError: boom$"):
        shell.run_line_magic("meshflow_run", "wf t")


def test_failed_run_is_shown_not_raised(shell: InteractiveShell, shown: list[Any]) -> None:
    def fail(ctx: Any) -> None:
        raise ValueError("agent broke")

    shell.user_ns["bad"] = WorkflowDefinition("bad").add_node(Node("only", fail))
    shell.run_line_magic("meshflow_run", "bad t --var r")
    assert shell.user_ns["r"].status is RunStatus.FAILED
    assert "status failed" in shown[-1].data and "agent broke" in shown[-1].data


def test_run_live_returns_at_once_and_the_buttons_decide(
        shell: InteractiveShell, ledger: ReplayLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    from meshflow_nb.notebook import live as live_module

    shown_live: list[Any] = []
    monkeypatch.setattr(live_module, "display", lambda *objs: shown_live.extend(objs))
    shell.run_line_magic("meshflow_run", "wf solid-state batteries --live --var live")
    live = shell.user_ns["live"]
    assert [type(o).__name__ for o in shown_live] == ["LiveView", "ApprovalPanel"]
    deadline = time.monotonic() + 10
    while not live.panel.waiting:  # the cell returned; the run goes on to the gate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    live.panel.reviewer.value = "Ada"
    live.panel.approve_button.click()
    result = live.handle.result(10)
    assert result.status.value == "completed"
    assert result.decisions[0].reviewer == "Ada" and result.decisions[0].channel == "notebook"


def test_run_live_with_reject_is_headless(shell: InteractiveShell, ledger: ReplayLedger,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from meshflow_nb.notebook import live as live_module

    monkeypatch.setattr(live_module, "display", lambda *objs: None)
    shell.run_line_magic("meshflow_run", "wf batteries --live --reject --reviewer kim --var lr")
    result = shell.user_ns["lr"].handle.result(10)
    assert result.status.value == "rejected_at_gate"
    assert result.decisions[0].reviewer == "kim" and result.decisions[0].channel == "headless"
