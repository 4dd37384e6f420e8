"""Lesson 09 as a learner sees it: JupyterLab on 127.0.0.1, headless Chromium. Run all
cells, answer section 4's escalation with the approval panel's buttons, and check that
the panel names the unsure node and the layer's question, that the notebook prints the
decision, and that the ledger file records it with the reviewer's name. Screenshots go
to ``tests/artifacts/`` (ignored by git)."""

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
from test_browser_views import assert_within_cell, reviewer_copy, snapshot

pytest_plugins = ["jupyterlab_browser"]

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "09_uncertainty.ipynb"
REVIEWER = "Grace Hopper"


def recorded_decisions(ledger: Path) -> list[tuple[str, str | None, str, str]]:
    """(event, node, reviewer, channel) of each decision the ledger file records."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        rows = con.execute("SELECT event_type, node_id, payload FROM ledger_entries WHERE "
                           "event_type IN ('gate_resume', 'gate_reject') ORDER BY seq").fetchall()
    return [(kind, node, json.loads(p)["reviewer"], json.loads(p)["channel"])
            for kind, node, p in rows]


@pytest.mark.parametrize("button", ["Approve", "Reject"])
def test_an_escalation_is_decided_in_the_panel_as_a_learner_runs_the_lesson(
        jupyterlab: JupyterLabServer, lab_page: Page, tmp_path: Path, button: str) -> None:
    folder = f"lesson09_{button.lower()}"
    open_notebook(lab_page, jupyterlab.add_file(reviewer_copy(LESSON, tmp_path, REVIEWER),
                                                f"{folder}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on lookup", timeout=120)
    wait_for_widgets(lab_page)
    panel = notebook_locator(lab_page).locator(".jp-OutputArea-output").filter(
        has=lab_page.locator("button.jupyter-button", has_text="Approve")).first
    asked = panel.inner_text()
    assert asked.startswith("Unsure agent lookup") and "lookup is uncertain (0.75): use its " \
        "output?" in asked
    snapshot(panel, f"lesson09_escalation_waiting_{button.lower()}")
    assert_within_cell(panel, "the approval panel")
    click_widget_button(lab_page, button)
    wait_for_output_text(lab_page, "HINT: ex3_choices", timeout=180)

    text = output_text(lab_page)
    assert "Traceback" not in text
    verdict = "gate_resume" if button == "Approve" else "gate_reject"
    assert f"the ledger records: {verdict} of lookup by {REVIEWER} via notebook" in text
    snapshot(panel, f"lesson09_escalation_decided_{button.lower()}")

    jupyterlab.shutdown_kernels()  # lets go of the ledger file
    ledger = jupyterlab.root_dir / folder / "uncertainty" / "lesson09.duckdb"
    assert (verdict, "lookup", REVIEWER, "notebook") in recorded_decisions(ledger)
