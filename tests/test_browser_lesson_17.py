"""Lesson 17 as a learner sees it: JupyterLab on 127.0.0.1, headless Chromium, every cell
run with no parameter changed but the reviewer's name. The gate is decided through the
webhook inbox, the trace is drawn as a picture inside its cell, and the ledger file
records the decision with the reviewer and the webhook channel. Screenshots go to
``tests/artifacts/`` (ignored by git)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from jupyterlab_browser import (
    JupyterLabServer,
    notebook_locator,
    open_notebook,
    output_text,
    run_all_cells,
    wait_for_output_text,
)
from playwright.sync_api import Page
from test_browser_views import assert_within_cell, reviewer_copy, snapshot

pytest_plugins = ["jupyterlab_browser"]

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "17_going_to_production.ipynb"
REVIEWER = "Grace Hopper"


def test_the_gate_is_decided_through_the_webhook_and_the_trace_is_drawn(
        jupyterlab: JupyterLabServer, lab_page: Page, tmp_path: Path) -> None:
    folder = "lesson17"
    open_notebook(lab_page, jupyterlab.add_file(reviewer_copy(LESSON, tmp_path, REVIEWER),
                                                f"{folder}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "the inbox and the span receiver are stopped", timeout=180)
    text = output_text(lab_page)
    assert "Traceback" not in text
    assert f"the ledger records: gate_resume by {REVIEWER} via webhook" in text
    assert "HINT: fill in every step" in text   # the untouched answer cell

    cell = notebook_locator(lab_page).locator(".jp-Cell").filter(has_text="plot_trace(trace")
    picture = cell.locator(".jp-OutputArea-output img").first
    picture.wait_for(state="visible")
    assert picture.evaluate("img => img.naturalWidth") > 400
    assert_within_cell(picture, "the trace's timeline")
    snapshot(picture, "lesson17_trace_timeline")

    jupyterlab.shutdown_kernels()  # lets go of the ledger file
    ledger = jupyterlab.root_dir / folder / "production17" / "production.duckdb"
    with duckdb.connect(str(ledger), read_only=True) as con:
        [(payload,)] = con.execute("SELECT payload FROM ledger_entries "
                                   "WHERE event_type = 'gate_resume'").fetchall()
    decided = json.loads(payload)
    assert (decided["reviewer"], decided["channel"]) == (REVIEWER, "webhook")
