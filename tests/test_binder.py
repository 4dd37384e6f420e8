"""Binder (repo2docker) configuration: the pins in binder/ are exact and whole, and the capstone
lesson runs in a fresh venv built the way Binder builds its image.

The venv tests need PyPI (pip's cache makes them quick) and take about 40 s; the module
builds one venv and shares it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
# The lesson Binder opens; its papermill `parameters` cell defines hitl_decision.
LESSON = "lessons/16_production_pipeline.ipynb"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")
# What Binder's clone of the repo would not have: git metadata, local venvs, caches, build
# output and databases that earlier runs left in the working tree.
NOT_IN_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache", ".hypothesis",
    ".benchmarks", ".ipynb_checkpoints", ".meshflow", "*.db", "*.duckdb", "*.wal")
STEP_TIMEOUT_S = 900


def requirement_lines() -> list[str]:
    """The lines of binder/requirements.txt that are neither blank nor comments."""
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pins() -> dict[str, Version]:
    """binder/requirements.txt as {canonical name: pinned version}."""
    found = {}
    for line in requirement_lines():
        match = PIN.match(line)
        assert match, f"binder/requirements.txt: {line!r} is not an exact name==version pin"
        found[canonicalize_name(match["name"])] = Version(match["version"])
    return found


def declared_requirements() -> list[Requirement]:
    """Every requirement pyproject.toml declares: the runtime ones and those of every extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    texts = [*project["dependencies"], *(text for extra in extras for text in extra)]
    return [Requirement(text) for text in texts]


def test_every_line_is_an_exact_pin_once():
    """Binder must install one tested set, so no ranges, URLs, -e lines or duplicates."""
    lines = requirement_lines()
    assert len(pins()) == len(lines), "a package is pinned twice"


def test_pins_hold_the_lab_stack_and_not_the_package_itself():
    """The lesson stack is pinned, with the majors the lessons are written for; the package
    itself and pip's own tools are not (postBuild installs the package from the repo)."""
    pinned = pins()
    wanted = ["duckdb", "pandas", "pyarrow", "graphviz", "jinja2", "ipython", "ipykernel",
              "ipywidgets", "jupyterlab", "jupyterlab-widgets", "notebook", "papermill",
              "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "opentelemetry-proto"]
    assert [name for name in wanted if name not in pinned] == []
    assert {"meshflow-nb", "pip", "setuptools", "wheel"}.isdisjoint(pinned)
    assert pinned["jupyterlab"].major == 4
    assert pinned["ipywidgets"].release[:2] == (8, 1)
    assert pinned["jupyterlab-widgets"].release[:2] == (3, 0)


def test_pins_satisfy_pyproject():
    """A pin outside pyproject.toml's range would make Binder test a set ./dev can't install."""
    pinned = pins()
    outside = [f"{req} (pinned {pinned[name]})" for req in declared_requirements()
               if (name := canonicalize_name(req.name)) in pinned
               and not req.specifier.contains(pinned[name], prereleases=True)]
    assert outside == []


def test_runtime_is_the_python_the_pins_were_locked_on():
    """runtime.txt picks Binder's Python; the pins (with their wheels) were made for it."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    header = " ".join(line for line in lines if line.startswith("#"))
    assert f"on Python {runtime.removeprefix('python-')}." in header


def test_start_turns_on_mock_mode():
    """binder/start is how every Binder session begins: lessons must run on mock agents."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MESHFLOW_")}
    proc = subprocess.run([str(BINDER / "start"), "env"], env=environ, capture_output=True,
                          text=True, timeout=30, check=True)
    assert "MESHFLOW_MOCK=1" in proc.stdout.splitlines()


def test_apt_installs_graphviz_for_the_drawings():
    """The lessons draw workflows with Graphviz's dot, which is a Debian package, not a wheel."""
    assert "graphviz" in (BINDER / "apt.txt").read_text().split()


def lesson_path() -> Path:
    """The lesson notebook in the repo; fails (never skips) when it is missing."""
    lesson = REPO / LESSON
    if not lesson.is_file():
        pytest.fail(f"{LESSON} is missing: Binder opens it, and this test runs it with "
                    "papermill (-p hitl_decision approve) in the Binder venv")
    return lesson


def test_lesson_takes_hitl_decision_as_a_parameter():
    """papermill -p only overrides a variable defined in the cell tagged `parameters`."""
    cells = json.loads(lesson_path().read_text())["cells"]
    tagged = ["".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{LESSON} needs exactly one cell tagged 'parameters'"
    assert "hitl_decision" in tagged[0]


@dataclass(frozen=True)
class BinderEnv:
    """A venv installed as Binder installs its image, with the repo copy postBuild ran in."""

    root: Path
    venv: Path
    base: Path
    environ: dict[str, str]

    @property
    def python(self) -> str:
        """The venv's interpreter, which every step and the lesson's kernel must use."""
        return str(self.venv / "bin" / "python")


def run_step(cmd: Sequence[str | Path], environ: dict[str, str], cwd: Path,
             ) -> subprocess.CompletedProcess:
    """Run one build or run step; on failure, fail with the step's own output."""
    args = [str(part) for part in cmd]
    proc = subprocess.run(args, env=environ, cwd=cwd, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                    f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def binder_environ(venv: Path, base: Path) -> dict[str, str]:
    """A Binder user's environment: the venv's bin first on PATH, Jupyter and IPython reading
    only the venv and `base` (so the venv's python3 kernelspec wins), the ledger in `base`, and
    nothing from the developer's shell that picks other code or mock settings."""
    leaky = ("MESHFLOW_", "JUPYTER", "IPYTHONDIR", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(leaky)}
    return {
        **environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "JUPYTER_PATH": str(venv / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(base / "jupyter-data"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(base / "ipython"),
        "MESHFLOW_LEDGER_DB": str(base / "ledger" / "production.db"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def check_python_matches_runtime(python: str) -> None:
    """The venv must be on Binder's Python (runtime.txt), or the test proves nothing."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    proc = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert f"python-{proc.stdout.strip()}" == runtime, \
        f"{python} is Python {proc.stdout.strip()}, Binder runs {runtime}"


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> BinderEnv:
    """Build Binder's environment: a fresh venv, `pip install -r binder/requirements.txt`, then
    binder/postBuild in a copy of the repo (its `pip install .` writes build/ and *.egg-info
    there, never into the real tree), and the venv's own python3 kernelspec."""
    base = tmp_path_factory.mktemp("binder")
    root, venv = base / "repo", base / "venv"
    shutil.copytree(REPO, root, ignore=NOT_IN_CLONE)
    python3 = shutil.which("python3") or sys.executable
    check_python_matches_runtime(python3)
    run_step([python3, "-m", "venv", venv], os.environ.copy(), base)
    env = BinderEnv(root, venv, base, binder_environ(venv, base))
    (base / "ledger").mkdir()
    run_step([env.python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
             env.environ, root)
    run_step([root / "binder" / "postBuild"], env.environ, root)
    run_step([env.python, "-m", "ipykernel", "install", "--prefix", venv, "--name", "python3"],
             env.environ, root)
    return env


def test_ipywidgets_requirement_on_jupyterlab_widgets_is_met(binder_env: BinderEnv):
    """ipywidgets 8.1.x needs its matching jupyterlab_widgets 3.0.x, or widgets don't render in
    Lab; read the requirement from the ipywidgets that the pins installed."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps([m.version('ipywidgets'), m.requires('ipywidgets')]))")
    proc = run_step([binder_env.python, "-c", code], binder_env.environ, binder_env.base)
    version, requires = json.loads(proc.stdout)
    pinned = pins()
    assert Version(version) == pinned["ipywidgets"]
    [needed] = [req for req in map(Requirement, requires)
                if canonicalize_name(req.name) == "jupyterlab-widgets"]
    assert needed.specifier.contains(pinned["jupyterlab-widgets"]), (needed, pinned)


def record_kernel_prefix(env: BinderEnv) -> Path:
    """An IPython startup file that makes the lesson's kernel write down its sys.prefix."""
    record = env.base / "kernel_prefix.txt"
    startup = Path(env.environ["IPYTHONDIR"]) / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-record-prefix.py").write_text(
        f"import sys, pathlib\npathlib.Path({str(record)!r}).write_text(sys.prefix)\n")
    record.unlink(missing_ok=True)
    return record


def error_outputs(notebook: Path) -> list[str]:
    """The errors recorded in an executed notebook's outputs, as 'Name: message'."""
    cells = json.loads(notebook.read_text())["cells"]
    return [f"{out['ename']}: {out['evalue']}" for cell in cells
            for out in cell.get("outputs", []) if out["output_type"] == "error"]


def test_lesson_runs_in_binder_env(request: pytest.FixtureRequest, tmp_path: Path):
    """Run the lesson as a Binder user would: through binder/start (which turns on mock mode),
    with papermill and the python3 kernel both from the Binder venv."""
    lesson_path()
    env: BinderEnv = request.getfixturevalue("binder_env")
    record = record_kernel_prefix(env)
    out = tmp_path / "out.ipynb"
    run_step([env.root / "binder" / "start", env.python, "-m", "papermill",
              env.root / LESSON, out, "-p", "hitl_decision", "approve",
              "--cwd", tmp_path, "-k", "python3"], env.environ, env.root)
    assert error_outputs(out) == []
    assert Path(record.read_text()) == env.venv, "the kernel was not the Binder venv's python"
