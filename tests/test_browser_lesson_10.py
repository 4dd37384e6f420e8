"""Lesson 10 as a learner sees it: JupyterLab on 127.0.0.1, headless Chromium. Run all
cells, decide section 4.1's gate with the panel's buttons, let the webhook receiver of
section 5 and exercise 1 (answered with the learner's name) approve through the store,
and check what the ledger file records for each. Screenshots go to ``tests/artifacts/``
(ignored by git)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from jupyterlab_browser import (
    JupyterLabServer,
    click_widget_button,
    notebook_locator,
    open_notebook,
    output_text,
    run_all_cells,
    wait_for_output_text,
    wait_for_widgets,
)
from playwright.sync_api import Page
from test_browser_views import assert_within_cell, snapshot

pytest_plugins = ["jupyterlab_browser"]

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "10_human_in_the_loop.ipynb"
REVIEWER = "Ada Lovelace"


def learner_copy(tmp_path: Path) -> Path:
    """The lesson with the reviewer's name in its parameters cell and exercise 1 answered,
    as a learner who typed them there."""
    notebook = json.loads(LESSON.read_text())
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if "parameters" in cell["metadata"].get("tags", []):
            source = source.replace("reviewer = None", f"reviewer = {REVIEWER!r}")
        elif source.startswith("# answer cell\nmy_name = None"):
            source = source.replace("my_name = None", f"my_name = {REVIEWER!r}")
        elif source.startswith("# answer cell\ndecision_seq = None"):
            source = source.replace("decision_seq = None", "decision_seq = 8")
        cell["source"] = source
    copy = tmp_path / LESSON.name
    copy.write_text(json.dumps(notebook))
    return copy


def decisions(ledger: Path) -> list[tuple[str, str, str]]:
    """(event, reviewer, channel) of every decision the ledger file holds, in time order."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        rows = con.execute("SELECT event_type, payload FROM ledger_entries WHERE event_type "
                           "IN ('gate_resume', 'gate_reject') ORDER BY seq").fetchall()
    decided = [(kind, json.loads(payload)) for kind, payload in rows]
    return [(kind, p["reviewer"], p["channel"]) for kind, p in decided]


def cell_output(page: Page, text: str):
    """The output area that shows ``text``."""
    return notebook_locator(page).locator(".jp-OutputArea-output").filter(has_text=text).first


@pytest.mark.parametrize("button", ["Approve", "Reject"])
def test_buttons_and_webhook_decide_as_a_learner_runs_the_lesson(
        jupyterlab: JupyterLabServer, lab_page: Page, tmp_path: Path, button: str) -> None:
    folder = f"lesson10_{button.lower()}"
    open_notebook(lab_page, jupyterlab.add_file(learner_copy(tmp_path),
                                                f"{folder}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on review", timeout=120)
    wait_for_widgets(lab_page)
    panel = notebook_locator(lab_page).locator(".jp-OutputArea-output").filter(
        has=lab_page.locator("button.jupyter-button", has_text="Approve")).first
    snapshot(panel, f"lesson10_panel_waiting_{button.lower()}")
    assert_within_cell(panel, "the approval panel")
    click_widget_button(lab_page, button)
    wait_for_output_text(lab_page, "HINT: ex3_result is not there yet", timeout=180)

    text = output_text(lab_page)
    assert "Traceback" not in text
    verdict = "approved" if button == "Approve" else "rejected"
    assert f"gate review: {verdict} by {REVIEWER} via notebook" in text
    assert "signature valid: True" in text and "decided: approved by sam via cli" in text
    assert "signed with another secret: 401" in text and "body changed after signing: 401" in text
    assert f"PASS: entry 8 of your run records '{REVIEWER}' approving through cli" in text
    snapshot(cell_output(lab_page, "signature valid"), f"lesson10_webhook_{button.lower()}")
    snapshot(cell_output(lab_page, "signed with another secret"),
             f"lesson10_forgeries_{button.lower()}")
    table = notebook_locator(lab_page).locator(".jp-OutputArea-output table").filter(
        has_text="decided_at").first
    snapshot(table, f"lesson10_decisions_{button.lower()}")
    assert_within_cell(table, "the decisions table")
    snapshot(cell_output(lab_page, "PASS: entry 8"), f"lesson10_exercise1_{button.lower()}")

    jupyterlab.shutdown_kernels()  # lets go of the ledger files
    kind = "gate_resume" if button == "Approve" else "gate_reject"
    assert (kind, REVIEWER, "notebook") in decisions(jupyterlab.root_dir / folder / "gates.duckdb")
    assert ("gate_resume", "sam", "cli") in decisions(jupyterlab.root_dir / folder / "gates.duckdb")
    exercise = jupyterlab.root_dir / folder / "lesson10_runs" / "exercise1.duckdb"
    assert decisions(exercise) == [("gate_resume", REVIEWER, "cli")]
