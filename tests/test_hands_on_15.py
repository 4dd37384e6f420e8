"""hands_on/15_real_models.py run as a learner runs it: a replay of the shipped recording
with no key, live against a local server, recording, and every way it refuses to start.

The shipped cassette is checked too: it is what the documented command records today,
so a change to a role prompt that would make every replay miss fails here first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshflow_nb import Cassette, LocalMessagesServer
from meshflow_nb.pipelines import CAPSTONE_CASSETTE

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hands_on" / "15_real_models.py"
LIVE_VARS = ("MESHFLOW_MOCK", "MESHFLOW_REPLAY", "MESHFLOW_RECORD", "ANTHROPIC_BASE_URL",
             "ANTHROPIC_API_KEY", "MESHFLOW_MODEL", "MESHFLOW_PRICES", "MESHFLOW_LEDGER_DB")


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with no live-mode variable but ``env``: no key."""
    environ = {k: v for k, v in os.environ.items() if k not in LIVE_VARS}
    environ.update({"PYTHONPATH": str(ROOT), "MESHFLOW_LEDGER_DB": str(tmp_path / "l.db"),
                    **env})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints (exit 2, nothing on stdout after the preview)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("15_real_models.py: error: "), proc.stderr
    return lines[0]


def test_help_names_every_mode(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--live", "--record", "--cassette", "--reject", "--model", "--max-cost",
                 "--stream"):
        assert flag in proc.stdout


def test_the_default_replays_the_shipped_run_with_no_key(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Calls go to: the replay of capstone_local.json" in proc.stdout
    assert "Cost preview: at most $" in proc.stdout and "bound of a live run" in proc.stdout
    assert "completed" in proc.stdout and "cache_read_tokens" in proc.stdout
    assert "Ledger chain VALID: 23 entries in 1 run checked." in proc.stdout


def test_reject_replays_a_subset_and_the_publisher_never_runs(tmp_path: Path) -> None:
    proc = run(tmp_path, "--reject")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rejected_at_gate" in proc.stdout and "done    publisher" not in proc.stdout
    assert "Ledger chain VALID: 20 entries in 1 run checked." in proc.stdout


def test_stream_prints_json_lines_with_the_agents_text(tmp_path: Path) -> None:
    proc = run(tmp_path, "--stream")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # nothing but JSON
    types = [e["type"] for e in events]
    assert types[0] == "run_start" and types[-1] == "run_complete"
    partial = [e for e in events if e["type"] == "node_partial"]
    assert partial and {e["node_id"] for e in partial} >= {"researcher", "writer"}
    assert "Cost preview" in proc.stderr and "VALID" in proc.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--model", "claude-sonnet-5-5"), "differs in model"),
    (("--task", "Write a short note on heat pumps"), "differs in messages[0].content"),
])
def test_a_replay_of_another_request_fails_naming_the_difference(tmp_path: Path,
                                                                 args: tuple[str, ...],
                                                                 says: str) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ReplayMissError" in proc.stdout and says in proc.stdout


@pytest.mark.parametrize(("args", "env", "says"), [
    (("--max-cost", "0.01"), {}, "above --max-cost $0.01, so nothing was called"),
    (("--live",), {}, "MESHFLOW_MOCK=1"),
    (("--model", "gpt-4o"), {}, "No price for model 'gpt-4o'"),
    (("--cassette", "missing.json"), {}, "no cassette at missing.json"),
    (("--record", "out.json"), {"MESHFLOW_MOCK": "1"}, "--record needs live agents"),
    (("--record", "no/such/folder/out.json"), {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
     "does not exist"),
])
def test_a_run_that_cannot_start_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                        env: dict[str, str], says: str) -> None:
    line = one_line_error(run(tmp_path, *args, **env))
    assert says in line
    if args[0] == "--live":
        assert "ANTHROPIC_API_KEY" in line


def test_mock_mode_wins_and_says_so(tmp_path: Path) -> None:
    proc = run(tmp_path, MESHFLOW_MOCK="1", MESHFLOW_MOCK_LATENCY="0")
    assert proc.returncode == 0, proc.stderr
    assert "MESHFLOW_MOCK is set, so the mock agents answer" in proc.stdout
    assert "Calls go to: nowhere" in proc.stdout and "Cost preview" not in proc.stdout


def test_record_then_replay_is_the_shipped_run_and_replays_offline(tmp_path: Path) -> None:
    """The documented re-recording, against a fresh local server, writes what ships;
    the new file then replays with no server at all."""
    with LocalMessagesServer() as server:
        proc = run(tmp_path, "--record", "mine.json", ANTHROPIC_BASE_URL=server.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Calls go to: the local server at {server.url}" in proc.stdout
    assert "Recorded 8 exchanges to mine.json" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.db", "mine.json"]  # no lock file
    mine, shipped = Cassette.load(tmp_path / "mine.json"), Cassette.load(CAPSTONE_CASSETTE)
    assert exchanges(mine) == exchanges(shipped)
    assert "local fake server" in mine.recorded_against
    assert "local fake server" in shipped.recorded_against and "not a real model" in \
        shipped.recorded_against
    replayed = run(tmp_path, "--cassette", "mine.json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "Calls go to: the replay of mine.json" in replayed.stdout


def test_a_recording_that_fails_leaves_the_old_file_alone(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text("old")
    with LocalMessagesServer(models=["claude-haiku-4-5"]) as server:  # sonnet-5-5 is unknown
        proc = run(tmp_path, "--record", "mine.json", "--model", "claude-sonnet-5-5",
                   ANTHROPIC_BASE_URL=server.url)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "RetiredModelError" in proc.stdout and "Nothing recorded" in proc.stdout
    assert (tmp_path / "mine.json").read_text() == "old"


def test_live_against_a_local_server_needs_no_key(tmp_path: Path) -> None:
    with LocalMessagesServer() as server:
        proc = run(tmp_path, "--live", "--reject", "--max-cost", "0.10",
                   ANTHROPIC_BASE_URL=server.url, MESHFLOW_REPLAY=CAPSTONE_CASSETTE)
        reached = len(server.requests)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert reached == 7  # --live ignores MESHFLOW_REPLAY: every call went to the server
    assert "rejected_at_gate" in proc.stdout and "bound of a live run" not in proc.stdout


def exchanges(cassette: Cassette) -> list[str]:
    """The exchanges as canonical JSON, in any order (two analysts run at once)."""
    return sorted(json.dumps([e.request, e.response], sort_keys=True)
                  for e in cassette.exchanges)
