"""Lesson 05 as a learner sees it: JupyterLab on 127.0.0.1, headless Chromium. Run all
cells, decide each of the lesson's three gates with the panel's buttons, and check that
the live event table renders whole (its header, a row per event, inside its cell, the
header fixed while it scrolls), its text fallback prints, and the cost plot shows.
Screenshots go to ``tests/artifacts/`` (ignored by git)."""

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
    wait_until,
)
from playwright.sync_api import Page
from test_browser_views import assert_header_stays, assert_within_cell, reviewer_copy, snapshot

from meshflow_nb.notebook.liveview import TABLE_COLUMNS

pytest_plugins = ["jupyterlab_browser"]

LESSON = Path(__file__).resolve().parent.parent / "lessons" / "05_streaming_events.ipynb"
REVIEWER = "Ada Lovelace"
GATES = 3
"""Runs of the lesson that ask a person: section 2's astream, section 3's live view and
exercise 1's stream."""
EVENTS = {"Approve": 23, "Reject": 20}
"""Events of the capstone run approved, and rejected at the gate."""


def enabled_buttons(page: Page, text: str) -> int:
    return notebook_locator(page).locator("button.jupyter-button:enabled").filter(
        has_text=text).count()


def decide_every_gate(page: Page, button: str) -> None:
    """Click ``button`` on each panel as its gate asks, one after the other."""
    for gate in range(1, GATES + 1):
        try:
            wait_until(lambda: enabled_buttons(page, button) == 1, timeout=180,
                       message=f"gate {gate} of {GATES}: no panel waiting with one enabled "
                               f"{button} button")
        except AssertionError as err:  # say where the notebook was, for a run far away
            counts = {text: enabled_buttons(page, text) for text in ("Approve", "Reject")}
            raise AssertionError(f"{err}; enabled buttons {counts}; the outputs end with:\n"
                                 f"{output_text(page)[-2000:]}") from None
        click_widget_button(page, button)
        wait_until(lambda: enabled_buttons(page, button) == 0,
                   message=f"the {button} button stayed enabled after the click")


def notebook_decisions(ledger: Path) -> list[tuple[str, str, str]]:
    """The gate decisions the ledger file records, read by another process (this test)."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        rows = con.execute("SELECT event_type, payload FROM ledger_entries WHERE event_type "
                           "IN ('gate_resume', 'gate_reject') ORDER BY seq").fetchall()
    decided = [(kind, json.loads(payload)) for kind, payload in rows]
    return [(kind, p["reviewer"], p["channel"]) for kind, p in decided
            if p["channel"] == "notebook"]


@pytest.mark.parametrize("button", ["Approve", "Reject"])
def test_the_live_event_table_renders_whole_as_a_learner_runs_the_lesson(
        jupyterlab: JupyterLabServer, lab_page: Page, tmp_path: Path, button: str) -> None:
    folder = f"lesson05_{button.lower()}"
    open_notebook(lab_page, jupyterlab.add_file(reviewer_copy(LESSON, tmp_path, REVIEWER),
                                                f"{folder}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on hitl_gate", timeout=120)
    wait_for_widgets(lab_page)
    decide_every_gate(lab_page, button)
    # the last cell's output; not wait_for_kernel_idle, which counts the clicks' comm
    # messages, answered while a cell awaited, as requests still open
    wait_for_output_text(lab_page, "HINT: set count_per_node", timeout=120)

    notebook = notebook_locator(lab_page)
    live = notebook.locator(".jp-OutputArea-output").filter(
        has=lab_page.locator(".meshflow-legend")).first
    status = "completed" if button == "Approve" else "rejected_at_gate"
    assert live.locator(".meshflow-status").first.inner_text() == status
    table = live.locator("table.meshflow-events").first
    assert table.locator("thead th").all_inner_texts() == list(TABLE_COLUMNS)
    rows = table.locator("tbody tr")
    assert rows.count() == EVENTS[button]
    assert rows.first.locator("td").nth(2).inner_text() == "run_start"
    assert rows.last.locator("td").nth(2).inner_text() == "run_complete"
    snapshot(live, f"lesson05_live_view_{button.lower()}")
    assert_within_cell(table, "the event table")
    assert_header_stays(live.locator(".meshflow-events-scroll").first, "the event table")

    text = output_text(lab_page)
    assert "seq  t      type" in text  # the live view's text fallback, printed
    assert f"{EVENTS[button]} events, {EVENTS[button]} rows in the table" in text
    assert "Traceback" not in text
    assert text.count("HINT: set ") == 3  # the untouched answer cells

    plot = notebook.locator(".jp-OutputArea-output img[src^='data:image/png']").first
    assert plot.evaluate("img => img.naturalWidth") >= 600
    snapshot(plot, f"lesson05_cost_plot_{button.lower()}")

    jupyterlab.shutdown_kernels()  # lets go of the ledger file
    verdict = "gate_resume" if button == "Approve" else "gate_reject"
    decided = notebook_decisions(jupyterlab.root_dir / folder / "streaming" / "streaming.duckdb")
    assert decided == [(verdict, REVIEWER, "notebook")] * GATES
