"""The command line's exit-code contract, for every subcommand, as a real process.

0 valid or done; 1 the ledger is damaged (or the run did not complete); 2 a usage or
I/O problem, as one line ``meshflow-nb: error: ...`` on stderr and never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEDGER_COMMANDS = ("verify", "runs", "export", "anchor")
MAKE_LEDGER = """
import sys
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline
ledger = ReplayLedger(sys.argv[1])
print(ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t").run_id)
"""

EDIT_ONE_ENTRY = """
import sys, duckdb
with duckdb.connect(sys.argv[1]) as con:
    con.execute("UPDATE ledger_entries SET output = '{}' WHERE run_seq = 2")
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "MESHFLOW_HITL"}
    environ = {**inherited, "PYTHONPATH": str(ROOT), "MESHFLOW_MOCK": "1",
               "MESHFLOW_MOCK_LATENCY": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "meshflow_nb", *args], capture_output=True,
                          text=True, env=environ, cwd=ROOT, timeout=120,
                          stdin=subprocess.DEVNULL)


def usage_error(proc: subprocess.CompletedProcess, *needles: str) -> bool:
    """Exit 2, nothing on stdout, one ``meshflow-nb: error:`` line holding ``needles``."""
    lines = proc.stderr.splitlines()
    return (proc.returncode == 2 and len(lines) == 1
            and lines[0].startswith("meshflow-nb: error: ")
            and all(needle in lines[0] for needle in needles))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[Path, str]:
    """A valid ledger file holding one completed capstone run, and that run's id."""
    path = tmp_path_factory.mktemp("ledger") / "good.duckdb"
    made = subprocess.run([sys.executable, "-c", MAKE_LEDGER, str(path)], capture_output=True,
                          text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return path, made.stdout.strip()


def unusable_ledger(kind: str, good: Path, folder: Path) -> Path:
    """A --db argument that no ledger command can open."""
    path = folder / f"{kind}.duckdb"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("these are my notes, not a ledger\n", encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupted":
        shutil.copyfile(good, path)
        with path.open("r+b") as damaged:
            damaged.seek(8192)
            damaged.write(b"\xa5" * 65536)
    return path  # "missing": nothing there


@pytest.mark.parametrize("kind", ["directory", "text", "empty", "corrupted", "missing"])
def test_a_ledger_that_cannot_be_opened_is_exit_2_for_every_ledger_command(
        kind, ledger, tmp_path):
    good, run_id = ledger
    db = unusable_ledger(kind, good, tmp_path)
    for command in LEDGER_COMMANDS:
        run_arg = [run_id] if command in ("export", "anchor") else []
        proc = cli("ledger", command, *run_arg, "--db", str(db))
        assert usage_error(proc, str(db)), (command, proc.returncode, proc.stderr)
        assert proc.stdout == ""


def test_a_valid_ledger_is_0_and_a_damaged_one_is_1(ledger, tmp_path):
    good, _ = ledger
    assert cli("ledger", "verify", "--db", str(good)).returncode == 0
    damaged = tmp_path / "damaged.duckdb"
    shutil.copyfile(good, damaged)
    subprocess.run([sys.executable, "-c", EDIT_ONE_ENTRY, str(damaged)], check=True, timeout=60)
    proc = cli("ledger", "verify", "--db", str(damaged))
    assert proc.returncode == 1 and "DAMAGED" in proc.stdout, proc.stderr


ANCHOR_FILES = {
    "malformed": "{not json",
    "incomplete": json.dumps([{"run_id": "r1"}]),
    "mistyped": json.dumps([{"run_id": "r1", "length": "many", "head_hash": "0" * 64}]),
    "empty list": "[]",
}


@pytest.mark.parametrize("content", ANCHOR_FILES.values(), ids=ANCHOR_FILES.keys())
def test_an_anchor_file_that_holds_no_anchors_is_exit_2(content, ledger, tmp_path):
    good, run_id = ledger
    anchors = tmp_path / "anchors.json"
    anchors.write_text(content, encoding="utf-8")
    verify = cli("ledger", "verify", "--db", str(good), "--anchor", str(anchors))
    assert usage_error(verify, str(anchors), "is not an anchor file"), verify.stderr
    add = cli("ledger", "anchor", run_id, "--db", str(good), "-o", str(anchors))
    assert usage_error(add, str(anchors), "is not an anchor file"), add.stderr
    assert anchors.read_text(encoding="utf-8") == content  # not overwritten


def test_an_anchor_path_that_is_a_directory_or_missing_is_exit_2(ledger, tmp_path):
    good, run_id = ledger
    folder = tmp_path / "anchors"
    folder.mkdir()
    verify = cli("ledger", "verify", "--db", str(good), "--anchor", str(folder))
    assert usage_error(verify, str(folder), "Is a directory"), verify.stderr
    missing = cli("ledger", "verify", "--db", str(good), "--anchor", str(tmp_path / "no.json"))
    assert usage_error(missing, "no.json", "No such file"), missing.stderr
    add = cli("ledger", "anchor", run_id, "--db", str(good), "-o", str(folder))
    assert usage_error(add, str(folder), "Is a directory"), add.stderr


def test_anchor_then_verify_against_it_is_0(ledger, tmp_path):
    good, run_id = ledger
    anchors = tmp_path / "anchors.json"
    assert cli("ledger", "anchor", run_id, "--db", str(good), "-o", str(anchors)).returncode == 0
    proc = cli("ledger", "verify", "--db", str(good), "--anchor", str(anchors))
    assert proc.returncode == 0 and "VALID" in proc.stdout, proc.stderr


def test_export_to_a_folder_that_does_not_exist_is_exit_2(ledger):
    good, run_id = ledger
    proc = cli("ledger", "export", run_id, "--db", str(good), "-o", "/missing/dir/x.json")
    assert usage_error(proc, "/missing/dir/x.json", "No such file"), proc.stderr


def test_a_run_the_ledger_does_not_hold_is_exit_2(ledger):
    good, _ = ledger
    for command in ("export", "anchor"):
        proc = cli("ledger", command, "nosuchrun", "--db", str(good))
        assert usage_error(proc, "nosuchrun"), (command, proc.stderr)
    verify = cli("ledger", "verify", "--run", "nosuchrun", "--db", str(good))
    assert usage_error(verify, "nosuchrun"), (verify.returncode, verify.stdout, verify.stderr)
    assert "VALID" not in verify.stdout


def test_an_approval_setting_that_is_not_understood_is_exit_2():
    proc = cli("run", "meshflow_nb.pipelines:build_capstone_pipeline", "t",
               env={"MESHFLOW_HITL": "sometimes"})
    assert usage_error(proc, "MESHFLOW_HITL='sometimes'", "approve"), proc.stderr
    assert proc.stdout == ""  # nothing ran


def test_a_builder_that_raises_is_exit_2_naming_it(tmp_path):
    (tmp_path / "broken.py").write_text(
        "def build():\n    raise RuntimeError('the config server is down')\n", encoding="utf-8")
    proc = cli("run", "broken:build", "t", env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    assert usage_error(proc, "broken:build", "RuntimeError: the config server is down"), \
        proc.stderr


def test_a_run_that_does_not_complete_is_exit_1():
    proc = cli("run", "meshflow_nb.pipelines:build_capstone_pipeline", "t", "--reject")
    assert proc.returncode == 1 and "rejected_at_gate" in proc.stdout, proc.stderr
