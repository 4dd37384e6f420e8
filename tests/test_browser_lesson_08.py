"""Lesson 08 as a learner sees it: JupyterLab on 127.0.0.1, headless Chromium. Run all
cells as written, and with the answer cells filled in; decide each gate with the panel's
buttons; check that the lesson's tables and its entropy chart render inside their cells,
that the self-checks answer, and that no output shows the fake key. Screenshots of every
output go to ``tests/artifacts/`` (ignored by git)."""

from __future__ import annotations

import json
from pathlib import Path

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
from lesson_runner import with_answers
from playwright.sync_api import Page
from test_browser_views import assert_within_cell, snapshot
from test_lesson_08 import FAKE_KEY, LESSON, RIGHT

pytest_plugins = ["jupyterlab_browser"]

REVIEWER = "Ada Lovelace"
RUNS = {"as_written": (1, "HINT: set phi_action"),
        "answered": (2, "PASS: redact kept the patient's")}
"""Gates a person decides, and the last cell's output: as written, exercise 3 does not
run; answered, its clinic run asks the nurse too."""


def learner_copy(tmp_path: Path, answered: bool) -> Path:
    """The lesson, the reviewer's name typed into its parameters cell (so every panel shows
    it), and with the answer cells filled in right when ``answered``."""
    source = with_answers(LESSON, RIGHT, tmp_path) if answered else LESSON
    notebook = json.loads(source.read_text())
    parameters = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    parameters["source"] = [line.replace("reviewer = None", f"reviewer = {REVIEWER!r}")
                            for line in parameters["source"]]
    copy = tmp_path / LESSON.name
    copy.write_text(json.dumps(notebook))
    return copy


def approve_every_gate(page: Page, gates: int) -> None:
    """Press Approve on each panel as its gate asks, one after the other."""
    def enabled() -> int:
        return notebook_locator(page).locator("button.jupyter-button:enabled").filter(
            has_text="Approve").count()

    for _ in range(gates):
        wait_until(lambda: enabled() == 1, timeout=120, message="no gate waiting to approve")
        click_widget_button(page, "Approve")
        wait_until(lambda: enabled() == 0, message="Approve stayed enabled after the click")


@pytest.mark.parametrize("name", list(RUNS))
def test_the_guardian_lesson_reads_whole_in_jupyterlab(jupyterlab: JupyterLabServer,
                                                       lab_page: Page, tmp_path: Path,
                                                       name: str) -> None:
    gates, last = RUNS[name]
    copy = learner_copy(tmp_path, answered=name == "answered")
    open_notebook(lab_page, jupyterlab.add_file(copy, f"guardian_{name}/{LESSON.name}"))
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "Waiting for your decision on hitl_gate", timeout=180)
    wait_for_widgets(lab_page)
    approve_every_gate(lab_page, gates)
    # the last cell's output; not wait_for_kernel_idle, which counts the clicks' comm
    # messages, answered while a cell awaited, as requests still open
    wait_for_output_text(lab_page, last, timeout=180)

    notebook = notebook_locator(lab_page)
    outputs = notebook.locator(".jp-Cell .jp-OutputArea")
    for n in range(outputs.count()):
        area = outputs.nth(n)
        if area.inner_text().strip() or area.locator("img, svg").count():
            snapshot(area, f"lesson08_{name}_{n:02d}")
    for table in notebook.locator(".jp-RenderedHTMLCommon table").all():
        assert_within_cell(table, "a table")
    chart = notebook.locator(".jp-OutputArea-output img[src^='data:image/png']").first
    assert chart.evaluate("img => img.naturalWidth") >= 600
    text = output_text(lab_page)
    assert FAKE_KEY not in text and "Traceback" not in text
    assert "the draft at the gate holds the instruction: False" in text
    assert f"the ledger records: gate_resume by {REVIEWER}" in text
    verdicts = [line for line in text.splitlines() if line.startswith(("PASS: ", "HINT: "))]
    assert len(verdicts) == 3
    assert all(v.startswith("PASS" if name == "answered" else "HINT: set ") for v in verdicts)
