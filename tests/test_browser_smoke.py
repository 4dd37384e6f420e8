"""Smoke test of the browser harness: a real JupyterLab renders ipywidgets and their comms work.

Type a name into a Text widget, click an "Approve" Button, and the button's Python handler in
the kernel writes the name to a file: this crosses every layer the capstone tests rely on
(server, kernel, JupyterLab's widget manager, widget views, comm messages back to the kernel).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from jupyterlab_browser import (
    JupyterLabServer,
    click_widget_button,
    fill_widget_text,
    open_notebook,
    run_all_cells,
    wait_for_kernel_idle,
    wait_for_output_text,
    wait_for_widgets,
    wait_until,
)
from playwright.sync_api import Page

pytest_plugins = ["jupyterlab_browser"]

WIDGET_CELL = """\
from pathlib import Path
import ipywidgets as widgets
from IPython.display import display

OUT = Path({out!r})
name = widgets.Text(placeholder="your name")
approve = widgets.Button(description="Approve")
approve.on_click(lambda _button: OUT.write_text(name.value))
display(name, approve)
"""


def write_smoke_notebook(path: Path, out: Path) -> None:
    """Write the two-cell notebook: widgets whose button saves the name to ``out``, then "ready"."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    notebook.cells = [
        nbformat.v4.new_code_cell(WIDGET_CELL.format(out=str(out))),
        nbformat.v4.new_code_cell('print("ready")'),
    ]
    nbformat.write(notebook, path)


def _file_text(path: Path) -> str:
    """The file's text, or "" while it does not exist yet."""
    return path.read_text() if path.exists() else ""


def test_widget_button_click_reaches_the_kernel(jupyterlab: JupyterLabServer, lab_page: Page):
    """Fill the Text widget, click Approve, and the kernel-side handler writes the name."""
    out = jupyterlab.root_dir / "approved.txt"
    write_smoke_notebook(jupyterlab.root_dir / "smoke.ipynb", out)

    open_notebook(lab_page, "smoke.ipynb")
    run_all_cells(lab_page)
    wait_for_output_text(lab_page, "ready")
    wait_for_kernel_idle(lab_page)
    wait_for_widgets(lab_page)

    fill_widget_text(lab_page, "Ada", placeholder="your name")
    click_widget_button(lab_page, "Approve")

    wait_until(lambda: "Ada" in _file_text(out), timeout=20,
               message=f"the Approve handler did not write 'Ada' to {out}; it holds "
                       f"{_file_text(out)!r}")
