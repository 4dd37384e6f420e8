"""The capstone lesson for real: JupyterLab on 127.0.0.1, headless Chromium, a person's
clicks. Run all cells, type a reviewer's name in the approval panel, press Approve (or
Reject), and check what the learner sees and what the ledger file records."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from jupyterlab_browser import (
    JupyterLabServer,
    click_widget_button,
    fill_widget_text,
    open_notebook,
    run_all_cells,
    wait_for_output_text,
    wait_for_widgets,
)
from playwright.sync_api import Page

pytest_plugins = ["jupyterlab_browser"]

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "16_production_pipeline.ipynb"
REVIEWER = "Ada Lovelace"


def gate_decisions(ledger: Path) -> list[tuple[str, dict]]:
    """The gate decisions in the ledger file, read by another process (this test)."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        rows = con.execute("SELECT event_type, payload FROM ledger_entries WHERE event_type "
                           "IN ('gate_resume', 'gate_reject') ORDER BY seq").fetchall()
    return [(kind, json.loads(payload)) for kind, payload in rows]


@pytest.mark.parametrize("button", ["Approve", "Reject"])
def test_a_reviewer_decides_the_capstone_gate_with_the_buttons(
        jupyterlab: JupyterLabServer, lab_page: Page, button: str) -> None:
    folder = f"capstone_{button.lower()}"
    notebook = jupyterlab.add_file(LESSON, f"{folder}/{LESSON.name}")
    open_notebook(lab_page, notebook)
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on hitl_gate", timeout=120)
    wait_for_widgets(lab_page)

    fill_widget_text(lab_page, REVIEWER, placeholder="your name")
    click_widget_button(lab_page, button)

    approved = button == "Approve"
    wait_for_output_text(lab_page, f"publisher ran: {approved}", timeout=60)
    verdict = "gate_resume" if approved else "gate_reject"
    wait_for_output_text(lab_page, f"ledger records: {verdict} by {REVIEWER} via notebook")

    jupyterlab.shutdown_kernels()  # lets go of the ledger file; later cells wait for clicks
    decisions = gate_decisions(jupyterlab.root_dir / folder / "production.db")
    assert decisions[0][0] == verdict
    assert decisions[0][1]["reviewer"] == REVIEWER
    assert decisions[0][1]["channel"] == "notebook"
    assert decisions[0][1]["approved"] is approved
