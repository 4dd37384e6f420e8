"""Run lesson notebooks headlessly (papermill) and keep their checked outputs current.

Used by tests/test_lessons.py; run as a script (``./dev lessons``) it re-executes each
lesson and stores the outputs of the cells tagged ``nbval-check-output`` in the source
notebook, leaving every other cell without output: notebooks are source, and only the
deterministic outputs that nbval compares are committed.

Answer cells (tagged ``answer``) hold what a learner types; `with_answers` writes a copy
of a lesson with other answers in them, so that tests can run its self-checks on right
and on wrong answers.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
CHECKED_TAG = "nbval-check-output"
ANSWER_TAG = "answer"
DECISION_PARAMETER = "hitl_decision"


def has_gate_parameter(path: Path) -> bool:
    """The lesson takes a headless gate decision (its parameters cell names it)."""
    notebook = nbformat.read(path, as_version=4)
    return any("parameters" in cell.metadata.get("tags", [])
               and DECISION_PARAMETER in cell.source for cell in notebook.cells)


def decisions_for(path: Path) -> list[str | None]:
    """Approve and reject where the lesson has a gate; one plain run otherwise."""
    return ["approve", "reject"] if has_gate_parameter(path) else [None]


def execute(path: Path, workdir: Path, decision: str | None,
            answers: Mapping[str, str] | None = None,
            parameters: Mapping[str, object] | None = None) -> nbformat.NotebookNode:
    """Execute the lesson with ``workdir`` as its directory (its ledgers land there) and
    return the executed notebook; a cell error raises PapermillExecutionError. Lessons
    set MESHFLOW_MOCK=1 themselves. ``answers`` replace answer cells (`with_answers`);
    ``parameters`` are further values for the parameters cell."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = with_answers(path, answers, workdir) if answers else path
    out = workdir / f"{path.stem}.{decision or 'run'}.ipynb"
    parameters = {**({DECISION_PARAMETER: decision} if decision else {}), **(parameters or {})}
    # the kernel starts in ``workdir`` through the client's resources: papermill's cwd=
    # would chdir the whole process, and the jobs of `execute_all` run in threads of one
    return papermill.execute_notebook(
        str(source), str(out), parameters=parameters, kernel_name="python3",
        progress_bar=False, log_output=False, execution_timeout=300,
        resources={"metadata": {"path": str(workdir)}})


def decided_copy(path: Path, folder: Path, decision: str | None) -> Path:
    """A copy of the lesson in ``folder`` with ``decision`` injected after its parameters
    cell, as papermill does, for runners that take no parameters (nbval): a lesson that
    waits for a button would otherwise wait until its gate times out."""
    notebook = nbformat.read(path, as_version=4)
    if decision is not None:
        at = next(n for n, cell in enumerate(notebook.cells)
                  if "parameters" in cell.metadata.get("tags", []))
        injected = nbformat.v4.new_code_cell(f"{DECISION_PARAMETER} = {decision!r}")
        injected.metadata["tags"] = ["injected-parameters"]
        notebook.cells.insert(at + 1, injected)
    copy = folder / path.name
    nbformat.write(notebook, copy)
    return copy


def execute_all(jobs: list[tuple]) -> list[nbformat.NotebookNode]:
    """Execute several lessons at once: each in its own kernel, driven from threads.
    A job is the arguments of `execute`."""
    with ThreadPoolExecutor(max_workers=min(4, len(jobs) or 1)) as pool:
        return list(pool.map(lambda job: execute(*job), jobs))


Runs = Mapping[str, tuple[str | None, Mapping[str, str]]]
"""Named runs of a lesson: {name: (gate decision, answers)}."""


def execute_answered(path: Path, base: Path, runs: Runs) -> dict[str, nbformat.NotebookNode]:
    """The lesson once per entry of ``runs`` ({name: (decision, answers)}), each in a folder
    of its own under ``base``, all at the same time (one kernel each)."""
    jobs = [(path, base / name, decision, answers) for name, (decision, answers) in runs.items()]
    return dict(zip(runs, execute_all(jobs), strict=True))


def verdicts(notebook: nbformat.NotebookNode) -> list[str]:
    """What each self-check cell (``selfcheck.…``) answered, in order."""
    return [out.get("data", {}).get("text/plain", "") for cell in notebook.cells
            if cell.cell_type == "code" and cell.source.startswith("selfcheck.")
            for out in cell.get("outputs", [])]


def printed(notebook: nbformat.NotebookNode) -> str:
    """All printed and plain-text output of the notebook, in order."""
    return "\n".join(out.get("text") or out.get("data", {}).get("text/plain", "")
                     for cell in notebook.cells for out in cell.get("outputs", []))


def cell_errors(notebook: nbformat.NotebookNode) -> list[str]:
    """The names of the errors the executed notebook raised (there should be none)."""
    return [out.get("ename", "") for cell in notebook.cells for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]


def answer_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The lesson's answer cells, each under the first variable it assigns."""
    cells = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and ANSWER_TAG in cell.metadata.get("tags", []):
            assigned = next(node.targets[0].id for node in ast.parse(cell.source).body
                            if isinstance(node, ast.Assign))
            cells[assigned] = cell
    return cells


def with_answers(path: Path, answers: Mapping[str, str], workdir: Path) -> Path:
    """A copy of the lesson in ``workdir`` with ``answers`` (the source of an answer
    cell, under the first variable it assigns) in place of its answer cells."""
    notebook = nbformat.read(path, as_version=4)
    cells = answer_cells(notebook)
    unknown = sorted(set(answers) - set(cells))
    assert not unknown, f"{path.name} has no answer cell for {unknown} (it has {sorted(cells)})"
    for name, source in answers.items():
        cells[name].source = source
    copy = workdir / f"{path.stem}.answered.ipynb"
    nbformat.write(notebook, copy)
    return copy


def is_checked(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and CHECKED_TAG in cell.metadata.get("tags", [])


def refresh(path: Path, workdir: Path) -> None:
    """Store the checked cells' fresh outputs in the lesson; clear all the others."""
    executed = execute(path, workdir, "approve" if has_gate_parameter(path) else None)
    source = nbformat.read(path, as_version=4)
    ran_cells = [c for c in executed.cells
                 if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell, ran in zip(source.cells, ran_cells, strict=True):
        if cell.cell_type != "code":
            continue
        checked = is_checked(cell)
        cell.outputs = _coalesced(ran.outputs) if checked else []
        cell.execution_count = ran.execution_count if checked else None  # nbval needs it
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nbformat.validate(source)
    nbformat.write(source, path)


def _coalesced(outputs: list) -> list:
    """Consecutive prints to one stream as one output, however the kernel chunked them,
    so that a refresh changes the file only where the printed text changed."""
    merged: list = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (last is not None and output.get("output_type") == "stream"
                and last.get("output_type") == "stream" and last.name == output.name):
            last.text += output.text
        else:
            merged.append(output)
    return merged


if __name__ == "__main__":
    scratch = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".lesson-refresh")
    shutil.rmtree(scratch, ignore_errors=True)
    for lesson in LESSONS:
        refresh(lesson, scratch / lesson.stem)
        print(f"refreshed {lesson.relative_to(ROOT)}")
    shutil.rmtree(scratch, ignore_errors=True)
