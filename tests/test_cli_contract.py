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
LEDGER_COMMANDS = ("verify", "runs", "export", "anchor", "sql")
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
        run_arg = {"export": [run_id], "anchor": [run_id], "sql": ["SELECT 1"]}.get(command, [])
        proc = cli("ledger", command, *run_arg, "--db", str(db))
        assert usage_error(proc, str(db)), (command, proc.returncode, proc.stderr)
        assert proc.stdout == ""
    if kind == "missing":  # said so, and no empty ledger was made in its place
        assert "running the capstone" in proc.stderr
        assert not db.exists()


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


# --- ledger sql ---------------------------------------------------------------------------


def entries(path: Path) -> list[tuple]:
    """Every entry of the ledger file, read with the driver (not through the CLI)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT * FROM ledger_entries ORDER BY seq").fetchall()


@pytest.fixture
def copy(ledger, tmp_path) -> Path:
    """A copy of the good ledger this test may change."""
    path = tmp_path / "copy.duckdb"
    shutil.copyfile(ledger[0], path)
    return path


def test_ledger_sql_prints_the_rows_as_a_table(copy):
    proc = cli("ledger", "sql", "SELECT seq, event_type, node_id FROM ledger_entries "
               "ORDER BY seq LIMIT 3", "--db", str(copy))
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["seq", "event_type", "node_id"] and len(rows) == 3
    assert rows[0].split() == ["1", "run_start", "NULL"]
    assert rows[1].split() == ["2", "node_start", "researcher"]


def test_ledger_sql_cuts_long_cells_so_a_line_stays_readable(copy):
    proc = cli("ledger", "sql", "SELECT seq, output, payload FROM ledger_entries", "--db",
               str(copy))
    assert proc.returncode == 0, proc.stderr
    assert "…" in proc.stdout and max(map(len, proc.stdout.splitlines())) <= 3 * 64 + 10
    whole = cli("ledger", "sql", "SELECT hash FROM ledger_entries WHERE seq = 1", "--db",
                str(copy))
    assert len(whole.stdout.splitlines()[1].strip()) == 64  # a hash is shown whole


def test_a_tamper_through_ledger_sql_is_found_by_ledger_verify(copy):
    proc = cli("ledger", "sql", """UPDATE ledger_entries SET output = '{"tampered": true}' """
               "WHERE seq = 2", "--db", str(copy))
    assert proc.returncode == 0, proc.stderr
    assert "ledger verify" in proc.stderr  # the next step of exercise 4
    verify = cli("ledger", "verify", "--db", str(copy))
    assert verify.returncode == 1 and "DAMAGED" in verify.stdout
    assert "seq 2: edited" in verify.stdout


def test_a_change_to_an_immutable_ledger_is_refused_and_nothing_changes(copy):
    before = entries(copy)
    for statement in ("UPDATE ledger_entries SET output = '{}' WHERE seq = 2",
                      "DELETE FROM ledger_entries WHERE seq = 10"):
        proc = cli("ledger", "sql", statement, "--immutable", "--db", str(copy))
        [line] = proc.stderr.splitlines()
        assert proc.returncode == 1 and line.startswith("meshflow-nb: refused: "), proc.stderr
        assert "immutable_audit" in line and "nothing was changed" in line
        assert proc.stdout == ""
    assert entries(copy) == before
    assert cli("ledger", "sql", "SELECT count(*) AS n FROM ledger_entries", "--immutable",
               "--db", str(copy)).returncode == 0  # reading is still fine
    assert cli("ledger", "verify", "--db", str(copy)).returncode == 0


def test_bad_sql_is_one_line_naming_the_error(copy):
    proc = cli("ledger", "sql", "SELEC nonsense", "--db", str(copy))
    assert usage_error(proc, "SELEC nonsense", "syntax error"), proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_a_busy_ledger_file_is_one_line(copy):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, duckdb\n"
         "con = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(60)",
         str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        proc = cli("ledger", "sql", "SELECT 1", "--db", str(copy),
                   env={"MESHFLOW_LEDGER_WAIT_S": "0.5"})
    finally:
        holder.kill()
        holder.wait()
    assert usage_error(proc, str(copy)), proc.stderr


def test_a_postgresql_server_that_is_not_there_is_one_line():
    proc = cli("ledger", "sql", "SELECT 1", "--db", "postgresql://nobody:secret@127.0.0.1:9/none")
    assert usage_error(proc, "127.0.0.1"), proc.stderr
    assert "secret" not in proc.stderr


# --- ledger new ---------------------------------------------------------------------------


def test_ledger_new_moves_the_old_ledger_aside_and_starts_an_empty_one(copy):
    before = copy.read_bytes()
    proc = cli("ledger", "new", "--db", str(copy))
    assert proc.returncode == 0, proc.stderr
    [kept] = copy.parent.glob("copy.duckdb.*.bak")
    assert kept.read_bytes() == before and str(kept) in proc.stdout  # kept, never deleted
    assert cli("ledger", "verify", "--db", str(kept)).returncode == 0
    fresh = cli("ledger", "verify", "--db", str(copy))
    assert fresh.returncode == 0 and "VALID: 0 entries in 0 runs" in fresh.stdout
    again = cli("ledger", "new", "--db", str(copy))  # a second one in the same second
    assert again.returncode == 0 and len(list(copy.parent.glob("copy.duckdb.*.bak"))) == 2


def test_ledger_new_where_there_is_none_just_makes_one(tmp_path):
    path = tmp_path / "fresh.duckdb"
    proc = cli("ledger", "new", "--db", str(path))
    assert proc.returncode == 0 and path.exists() and "moved" not in proc.stdout


def test_ledger_new_refuses_a_server_or_a_directory(tmp_path):
    server = cli("ledger", "new", "--db", "postgresql://u:pw@127.0.0.1:9/db")
    assert usage_error(server, "DuckDB files only", "u:***@"), server.stderr
    assert usage_error(cli("ledger", "new", "--db", str(tmp_path)), "is a directory")


# --- the default approval ---------------------------------------------------------------


def test_a_gate_approved_by_default_says_so_on_stderr():
    proc = cli("run", "meshflow_nb.pipelines:build_capstone_pipeline", "t")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "approved by default" in line]
    assert len(warning) == 1 and "MESHFLOW_HITL=reject" in warning[0]
    assert "hitl_gate" in warning[0]
    assert "approved by default" in proc.stdout  # the gate's decision line, too
