"""Lesson 03 in JupyterLab, in headless Chromium, as a learner sees it: run all cells,
decide the capstone's gate with the panel's button, and check that the timeline plots
render as real images (not a plain-text repr) and fit their cells. Screenshots of the
fan-out/chain comparison and of the capstone's timeline go to ``tests/artifacts/``."""

from __future__ import annotations

from pathlib import Path

from jupyterlab_browser import (
    JupyterLabServer,
    click_widget_button,
    fill_widget_text,
    notebook_locator,
    open_notebook,
    run_all_cells,
    wait_for_output_text,
    wait_for_widgets,
)
from playwright.sync_api import Locator, Page

pytest_plugins = ["jupyterlab_browser"]

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "03_fan_out_fan_in.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"

IMAGE_SIZE = """img => ({natural: img.naturalWidth, naturalHeight: img.naturalHeight,
    shown: img.getBoundingClientRect().width,
    cell: img.closest('.jp-OutputArea-output').getBoundingClientRect().width})"""


def snapshot(element: Locator, name: str) -> None:
    """Save a screenshot of ``element`` for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def output_of(page: Page, source: str) -> Locator:
    """The output area of the first code cell whose source holds ``source``."""
    cells = notebook_locator(page).locator(".jp-CodeCell")
    index = cells.evaluate_all(
        "(cells, text) => cells.findIndex(c => (c.querySelector('.jp-InputArea .cm-content')"
        "?.innerText ?? '').includes(text))", source)
    assert index >= 0, f"no cell holds {source!r}"
    return cells.nth(index).locator(".jp-OutputArea")


def assert_plot(area: Locator, what: str) -> None:
    """The output holds a rendered PNG of real size that fits its cell."""
    image = area.locator("img").first
    image.wait_for(state="visible")
    size = image.evaluate(IMAGE_SIZE)
    assert size["natural"] >= 800 and size["naturalHeight"] >= 250, f"{what}: {size}"
    assert 300 <= size["shown"] <= size["cell"] + 1, f"{what} does not fit its cell: {size}"


def test_the_timelines_render_in_jupyterlab(jupyterlab: JupyterLabServer,
                                            lab_page: Page) -> None:
    open_notebook(lab_page, jupyterlab.add_file(LESSON, f"lesson03/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on hitl_gate", timeout=180)
    wait_for_widgets(lab_page)
    fill_widget_text(lab_page, "Ada Lovelace", placeholder="your name")
    click_widget_button(lab_page, "Approve")
    wait_for_output_text(lab_page, "the publisher ran: True (completed)", timeout=60)
    # the last cell's verdict: every cell ran (the panel's clicks leave comm requests open,
    # so waiting for an idle kernel is no use here)
    wait_for_output_text(lab_page, "HINT: fan_out misses a node", timeout=120)

    comparison = output_of(lab_page, "chain_run = chain.run(TASK)")
    assert_plot(comparison, "the fan-out/chain timeline")
    snapshot(comparison, "lesson03_fan_out_vs_chain")
    capstone = output_of(lab_page, "result = await live")
    assert_plot(capstone, "the capstone's timeline")
    snapshot(capstone, "lesson03_capstone_timeline")
    marked = output_of(lab_page, "draw_marked(fan, fan_out=")
    assert marked.locator("svg").first.is_visible()
    snapshot(marked, "lesson03_marked_drawing")
    for source, name in (("SVG(view.svg())", "lesson03_cut_branch"),
                         ("%meshflow_draw nested", "lesson03_nested_drawing"),
                         ("ex2_result = flaky.run(TASK)", "lesson03_exercise2"),
                         ("draw_marked(pipeline, *ex3_marks)", "lesson03_exercise3")):
        snapshot(output_of(lab_page, source), name)
    assert "HINT: set my_fanout" in notebook_locator(lab_page).inner_text()
