"""The hands-on script's modes and the command line, run as a learner runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hands_on" / "16_production_pipeline.py"


@pytest.fixture(autouse=True)
def ledger_file(tmp_path, monkeypatch):
    """Each test writes its own ledger file, as a learner's fresh checkout would."""
    path = tmp_path / "production.db"
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", str(path))
    return path


def run(*args: str, unset: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    """Run Python with mock agents on, ``env`` added and the ``unset`` variables removed."""
    environ = {**os.environ, "MESHFLOW_MOCK": "1", "MESHFLOW_MOCK_LATENCY": "0",
               "PYTHONPATH": str(ROOT), **env}
    for name in unset:
        environ.pop(name, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environ,
                          cwd=ROOT, timeout=120)


def test_standard_mode_prints_each_node_and_a_summary():
    proc = run(str(SCRIPT))
    assert proc.returncode == 0, proc.stderr
    done = [line.split()[1] for line in proc.stdout.splitlines()
            if line.strip().startswith("done")]
    assert done[0] == "researcher" and done[-2:] == ["hitl_gate", "publisher"]
    assert done.count("writer") == 2
    assert "completed" in proc.stdout and "loop" in proc.stdout
    assert "Final output:" in proc.stdout
    assert "Ledger chain VALID: 23 entries in 1 run checked." in proc.stdout


def test_stream_mode_prints_one_json_event_per_line():
    proc = run(str(SCRIPT), "--stream")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # nothing but JSON
    types = [e["type"] for e in events]
    assert types[0] == "run_start" and types[-1] == "run_complete"
    assert {"node_start", "node_complete", "gate_pause", "gate_resume",
            "loop_iteration"} <= set(types)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["output"] and events[-1]["payload"]["status"] == "completed"
    assert "completed" in proc.stderr  # the human summary goes beside the stream


def test_reject_mode_stops_at_the_gate_and_names_the_reviewer(ledger_file):
    proc = run(str(SCRIPT), "--reject", "--reviewer", "dana")
    assert proc.returncode == 0, proc.stderr
    assert "rejected_at_gate" in proc.stdout
    assert "REJECTED by dana" in proc.stdout
    assert "done    publisher" not in proc.stdout
    assert "Ledger chain VALID" in proc.stdout
    with duckdb.connect(str(ledger_file)) as con:
        rows = con.execute("SELECT event_type, node_id, payload FROM ledger_entries "
                           "ORDER BY seq").fetchall()
    kinds = [(kind, node) for kind, node, _ in rows]
    assert ("node_complete", "writer") in kinds and ("gate_reject", "hitl_gate") in kinds
    assert ("node_start", "publisher") not in kinds
    decision = next(json.loads(p) for kind, _, p in rows if kind == "gate_reject")
    assert decision["reviewer"] == "dana" and decision["approved"] is False


def test_no_gate_mode_is_rejected_by_preflight_before_any_node(ledger_file):
    proc = run(str(SCRIPT), "--no-gate")
    assert proc.returncode == 0, proc.stderr  # the outcome this mode demonstrates
    assert "rejected_preflight" in proc.stdout
    assert "[P001 ungated-risky-node] node 'publisher'" in proc.stdout
    assert "done " not in proc.stdout
    with duckdb.connect(str(ledger_file)) as con:
        kinds = [k for (k,) in con.execute(
            "SELECT event_type FROM ledger_entries ORDER BY seq").fetchall()]
    assert kinds == ["run_start", "preflight_rejected", "run_complete"]


def test_the_course_tamper_exercise_is_caught_by_the_cli(ledger_file):
    assert run(str(SCRIPT)).returncode == 0
    with duckdb.connect(str(ledger_file)) as con:
        rows = con.execute("SELECT run_id, node_id, prev_hash, hash FROM ledger_entries "
                           "ORDER BY seq;").fetchall()
        assert rows[0][2] == "0" * 64 and rows[1][2] == rows[0][3] and rows[2][2] == rows[1][3]
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2;""")
    proc = run("-m", "meshflow_nb", "ledger", "verify", "--db", str(ledger_file))
    assert proc.returncode == 1
    assert "Ledger chain DAMAGED" in proc.stdout and "seq 2: edited" in proc.stdout
    assert run("-m", "meshflow_nb", "ledger", "verify").returncode == 1  # via MESHFLOW_LEDGER_DB


def test_a_sealed_damaged_ledger_refuses_the_rerun_and_says_how_to_go_on(ledger_file):
    assert run(str(SCRIPT)).returncode == 0
    tamper = run("-m", "meshflow_nb", "ledger", "sql",
                 """UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    assert tamper.returncode == 0, tamper.stderr  # exercise 4's route: no other tool needed
    assert run("-m", "meshflow_nb", "ledger", "verify").returncode == 1
    refused = run(str(SCRIPT))
    assert refused.returncode != 0 and "rejected_preflight" in refused.stdout
    [p008] = [line for line in refused.stdout.splitlines() if "[P008" in line]
    assert "this ledger is sealed" in p008 and "nothing was written to the ledger" in p008
    fix = refused.stdout.split("[P008", 1)[1]
    assert f"meshflow-nb ledger new --db {ledger_file}" in fix and "MESHFLOW_LEDGER_DB" in fix
    assert "VALID: 0 entries" not in refused.stdout

    fresh = run("-m", "meshflow_nb", "ledger", "new")
    assert fresh.returncode == 0, fresh.stderr
    [kept] = ledger_file.parent.glob(f"{ledger_file.name}.*.bak")  # the evidence stays
    assert run("-m", "meshflow_nb", "ledger", "verify", "--db", str(kept)).returncode == 1
    again = run(str(SCRIPT))
    assert again.returncode == 0, again.stderr
    assert "Ledger chain VALID: " in again.stdout and " in 1 run checked." in again.stdout


def test_the_p008_refusal_names_the_route_for_a_server_ledger_too():
    from meshflow_nb.policy.rules import audit_problems

    [problem] = audit_problems("postgresql://u@db/ledger", "Ledger chain DAMAGED: ...")
    assert problem.rule == "P008" and "this ledger is sealed" in problem.message
    assert "new database" in problem.fix and "ledger new" not in problem.fix


def test_cli_alias_runs_a_builder_and_reports_usage_mistakes_in_one_line():
    ok = run("-m", "meshflow_nb", "run", "meshflow_nb.pipelines:build_capstone_pipeline", "t")
    assert ok.returncode == 0, ok.stderr
    bad = run("-m", "meshflow_nb", "run", "no_such_module:build", "t")
    assert bad.returncode == 2
    assert bad.stderr.startswith("meshflow-nb: error: cannot import 'no_such_module'")
    assert "Traceback" not in bad.stderr


NO_AGENTS = ("MESHFLOW_MOCK", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_REPLAY")
CAPSTONE = "meshflow_nb.pipelines:build_capstone_pipeline"


def names_both_ways_forward(line: str) -> bool:
    """The line offers the mock agents and live Claude agents."""
    return ("MESHFLOW_MOCK=1" in line and "mock agents" in line
            and "ANTHROPIC_API_KEY" in line and "live Claude agents" in line)


@pytest.mark.parametrize("command", [(str(SCRIPT),), ("-m", "meshflow_nb", "run", CAPSTONE, "t")],
                         ids=["hands-on script", "cli run"])
def test_without_agents_the_capstone_says_how_to_get_some_in_one_line(command, ledger_file):
    proc = run(*command, unset=NO_AGENTS)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(("meshflow-nb: error: ", "16_production_pipeline.py: error: "))
    assert names_both_ways_forward(line), line
    assert proc.stdout == "" and not ledger_file.exists()  # nothing ran, nothing recorded


def test_a_key_starts_live_agents_and_an_unreachable_api_is_a_clean_failure(ledger_file):
    from meshflow_nb.localapi.faults import closed_port

    proc = run("-m", "meshflow_nb", "run", CAPSTONE, "t",
               unset=("MESHFLOW_MOCK", "MESHFLOW_REPLAY"),
               ANTHROPIC_API_KEY="sk-ant-not-a-real-key-0123456789",
               ANTHROPIC_BASE_URL=f"http://127.0.0.1:{closed_port()}")
    assert proc.returncode == 1, proc.stderr
    assert "Cost preview: at most $" in proc.stdout and "claude-haiku-4-5" in proc.stdout
    assert "could not reach the Anthropic API" in proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "sk-ant" not in proc.stderr + proc.stdout


def test_the_engine_imports_without_the_ledgers_heavy_dependencies():
    probe = ("import sys, meshflow_nb; assert 'pandas' not in sys.modules and "
             "'duckdb' not in sys.modules; from meshflow_nb import ReplayLedger; "
             "assert 'pandas' in sys.modules")
    assert run("-c", probe).returncode == 0
