"""docs/api.md is generated from the packages' ``__all__``: it must match the code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def generator():
    """docs/gen_api.py, loaded as a module (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_page_is_up_to_date() -> None:
    gen = generator()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == gen.render(), (
        f"docs/api.md is out of date: run {gen.REFRESH}")


def test_every_public_name_is_on_the_page() -> None:
    gen = generator()
    page = (DOCS / "api.md").read_text(encoding="utf-8")
    for package in gen.PACKAGES:
        missing = [n for n in importlib.import_module(package).__all__ if f"| `{n}` |" not in page]
        assert not missing, f"{package}: {missing} not in docs/api.md; run {gen.REFRESH}"


def test_the_generator_runs_as_the_page_says() -> None:
    done = subprocess.run([sys.executable, str(DOCS / "gen_api.py")], capture_output=True,
                          text=True, cwd=DOCS.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == generator().render()
