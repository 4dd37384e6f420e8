"""What the capstone lesson looks like in JupyterLab in headless Chromium: screenshots of
the live view, the approval panel and the ledger explorer (approve and reject) go to
``tests/artifacts/`` (ignored by git), and the layout properties a person would notice
are measured in the page: nothing wider than its cell, every legend chip whole, the
chain status in view, and table headers that stay put while the rows scroll."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyterlab_browser import (
    JupyterLabServer,
    click_widget_button,
    fill_widget_text,
    notebook_locator,
    open_notebook,
    run_all_cells,
    wait_for_kernel_idle,
    wait_for_output_text,
    wait_for_widgets,
)
from playwright.sync_api import Locator, Page

pytest_plugins = ["jupyterlab_browser"]

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "16_production_pipeline.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"

MEASURE_BOX = """el => {
    const out = el.closest('.jp-OutputArea-output') || el.parentElement;
    const box = el.getBoundingClientRect(), cell = out.getBoundingClientRect();
    return {width: box.width, right: box.right, cellWidth: cell.width, cellRight: cell.right};
}"""

CLIPPED_CHIPS = """legend => [...legend.querySelectorAll('.meshflow-chip')]
    .filter(chip => chip.scrollWidth > chip.clientWidth + 1
            || chip.getBoundingClientRect().right > legend.getBoundingClientRect().right + 1)
    .map(chip => chip.textContent)"""

HEADER_AFTER_SCROLL = """box => {
    box.style.maxHeight = '120px';           // fewer rows than the run has: it must scroll
    box.scrollTop = box.scrollHeight;        // a column-reverse box scrolls up from 0
    if (box.scrollTop === 0) box.scrollTop = -box.scrollHeight;
    const head = box.querySelector('th').getBoundingClientRect();
    return {scrolled: Math.abs(box.scrollTop), overflow: box.scrollHeight - box.clientHeight,
            offset: Math.abs(head.top - box.getBoundingClientRect().top)};
}"""


def reviewer_copy(lesson: Path, folder: Path, reviewer: str) -> Path:
    """A copy of ``lesson`` in ``folder`` with ``reviewer`` in its parameters cell, as a
    learner who typed their name there: every panel then shows it as its Reviewer."""
    notebook = json.loads(lesson.read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    parameters["source"] = [line.replace("reviewer = None", f"reviewer = {reviewer!r}")
                            for line in parameters["source"]]
    copy = folder / lesson.name
    copy.write_text(json.dumps(notebook))
    return copy


def snapshot(element: Locator, name: str) -> None:
    """Save a screenshot of ``element`` for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def assert_within_cell(element: Locator, what: str) -> None:
    box = element.evaluate(MEASURE_BOX)
    assert box["right"] <= box["cellRight"] + 1, f"{what} overflows its cell: {box}"


def assert_header_stays(scroll_box: Locator, what: str) -> None:
    seen = scroll_box.evaluate(HEADER_AFTER_SCROLL)
    assert seen["overflow"] > 0 and seen["scrolled"] > 0, f"{what} did not scroll: {seen}"
    assert seen["offset"] <= 2, f"{what}'s header scrolled away: {seen}"


@pytest.mark.parametrize("button", ["Approve", "Reject"])
def test_the_live_view_and_the_panel_read_whole_while_the_gate_waits(
        jupyterlab: JupyterLabServer, lab_page: Page, button: str) -> None:
    folder = f"views_live_{button.lower()}"
    open_notebook(lab_page, jupyterlab.add_file(LESSON, f"{folder}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on hitl_gate", timeout=120)
    wait_for_widgets(lab_page)
    notebook = notebook_locator(lab_page)
    live = notebook.locator(".jp-OutputArea-output").filter(
        has=lab_page.locator(".meshflow-legend")).first
    wait_for_output_text(lab_page, "waiting for a decision")
    snapshot(live, f"live_view_waiting_{button.lower()}")

    legend = live.locator(".meshflow-legend")
    assert legend.evaluate(CLIPPED_CHIPS) == []
    assert legend.locator(".meshflow-chip").count() >= 6
    assert "waiting for a decision" in live.locator(".meshflow-status").first.inner_text()
    assert_within_cell(live.locator(".meshflow-events").first, "the event table")
    assert_header_stays(live.locator(".meshflow-events-scroll").first, "the event table")

    draft = notebook.locator(".meshflow-draft").first
    assert draft.locator("p, li, h1, h2, h3").count() > 0  # rendered Markdown, not a code block
    assert_within_cell(draft, "the draft")
    snapshot(draft.locator("xpath=ancestor::div[contains(@class,'jupyter-widgets')][last()]"),
             f"approval_panel_{button.lower()}")

    fill_widget_text(lab_page, "Ada Lovelace", placeholder="your name")
    click_widget_button(lab_page, button)
    wait_for_output_text(lab_page, f"publisher ran: {button == 'Approve'}", timeout=60)
    snapshot(live, f"live_view_decided_{button.lower()}")


def headless_copy(tmp_path: Path, decision: str) -> Path:
    """The lesson with its parameter cell set to decide every gate by itself."""
    notebook = json.loads(LESSON.read_text())
    parameters = notebook["cells"][1]
    parameters["source"] = [line.replace("hitl_decision = None", f"hitl_decision = {decision!r}")
                            for line in parameters["source"]]
    copy = tmp_path / LESSON.name
    copy.write_text(json.dumps(notebook))
    return copy


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_the_ledger_explorer_fits_its_cell_clean_and_tampered(
        jupyterlab: JupyterLabServer, lab_page: Page, tmp_path: Path, decision: str) -> None:
    path = jupyterlab.add_file(headless_copy(tmp_path, decision),
                               f"views_ledger_{decision}/{LESSON.name}")
    open_notebook(lab_page, path)
    run_all_cells(lab_page)
    wait_for_kernel_idle(lab_page, timeout=300)
    notebook = notebook_locator(lab_page)
    views = notebook.locator(".mf-ledger")
    clean, tampered = views.first, views.filter(has=lab_page.locator(".mf-damaged")).first

    for view, name in ((clean, "explorer"), (tampered, "explorer_tampered")):
        snapshot(view, f"{name}_{decision}")
        assert_within_cell(view.locator(".mf-table").first, f"the {name} table")
        status = view.locator("th", has_text="chain status").first
        assert status.is_visible()
        assert_within_cell(status, f"the {name} chain status column")
        tallest = view.evaluate(
            "v => Math.max(...[...v.querySelectorAll('tbody tr')].map("
            "r => r.getBoundingClientRect().height))")
        assert tallest < 120, f"a row of the {name} is {tallest:.0f} px tall"
        assert_header_stays(view.locator(".mf-scroll").first, f"the {name}")
    damaged = tampered.locator(".mf-damaged").first
    assert damaged.is_visible() and "edited" in tampered.inner_text()
    assert "\\n" not in tampered.inner_text()
