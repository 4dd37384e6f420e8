"""The course index (lessons/README.md) is what the generator writes from the curriculum
and the notebooks, and the repository's README points to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "docs" / "gen_course_index.py"


def generated() -> str:
    return subprocess.run([sys.executable, str(GENERATOR)], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout


def test_the_committed_index_is_current() -> None:
    index = (ROOT / "lessons" / "README.md").read_text(encoding="utf-8")
    assert index == generated(), ("lessons/README.md is out of date: run .venv/bin/python "
                                  "docs/gen_course_index.py > lessons/README.md")


def test_every_lesson_on_disk_is_ready_with_minutes_and_a_binder_link() -> None:
    index = generated()
    for notebook in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        [line] = [row for row in index.splitlines() if row.startswith(f"| {notebook.stem[:2]} |")]
        assert f"]({notebook.name})" in line and "ready" in line, line
        assert f"lab/tree/lessons/{notebook.name}" in line
        minutes = line.split(" | ")[3]
        assert minutes.isdigit() and 5 <= int(minutes) <= 120, line
    assert index.count("| planned |") == 17 - len(list((ROOT / "lessons").glob("[0-9]*.ipynb")))


def test_the_readme_and_the_curriculum_link_the_index() -> None:
    assert "lessons/README.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../lessons/README.md" in (ROOT / "docs" / "curriculum.md").read_text(encoding="utf-8")
