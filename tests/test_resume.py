"""A run paused at a gate survives its process: approve, then resume elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshflow_nb import CircuitBreakerConfig, HumanInLoopConfig, Policy, RiskTier
from meshflow_nb.ledger import ReplayLedger

ROOT = Path(__file__).resolve().parents[1]
WAITER = textwrap.dedent("""
    from meshflow_nb import Policy
    from meshflow_nb.ledger import ReplayLedger
    from meshflow_nb.pipelines import build_capstone_pipeline
    ledger = ReplayLedger()  # MESHFLOW_LEDGER_DB
    wf = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85],
                                               policy=Policy("standard")))
    wf.run("Assess solid-state batteries")
""")


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "PYTHONPATH": str(ROOT), "MESHFLOW_MOCK": "1",
            "MESHFLOW_MOCK_LATENCY": "0", "MESHFLOW_HITL": "store",
            "MESHFLOW_LEDGER_DB": str(tmp_path / "production.db"),
            "MESHFLOW_APPROVALS_DIR": str(tmp_path / "approvals")}


def cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshflow_nb", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def paused_run_whose_process_died(env) -> str:
    waiter = subprocess.Popen([sys.executable, "-c", WAITER], env=env)
    try:
        for _ in range(300):
            pending = json.loads(cli(env, "pending", "--json").stdout or "[]")
            if pending:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the run never paused at its gate")
    finally:
        os.kill(waiter.pid, signal.SIGKILL)
        waiter.wait()
    return pending[0]["run_id"]


def ledger_rows(env):
    ledger = ReplayLedger(env["MESHFLOW_LEDGER_DB"])
    return ledger, ledger.to_dataframe()


def test_an_approved_run_resumes_after_its_process_died(env):
    run_id = paused_run_whose_process_died(env)
    decided = cli(env, "approve", run_id, "--reviewer", "dana", "--reason", "checked")
    assert decided.returncode == 0 and f"meshflow-nb resume {run_id}" in decided.stderr
    resumed = cli(env, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout and "approved by dana" in resumed.stdout
    ledger, rows = ledger_rows(env)
    assert ledger.verify_chain().valid
    assert rows["run_seq"].tolist() == list(range(1, 24))  # as if never interrupted
    assert rows["node_id"].tolist().count("publisher") == 2  # one start, one completion
    resume = rows[rows["event_type"] == "gate_resume"].iloc[0]
    assert json.loads(resume["payload"])["reviewer"] == "dana"
    assert ledger.runs().loc[0, "status"] == "completed"
    assert json.loads(cli(env, "pending", "--json").stdout) == []


def test_a_rejected_run_resumes_only_to_stop_before_the_publisher(env):
    run_id = paused_run_whose_process_died(env)
    cli(env, "approve", run_id, "--reviewer", "dana", "--reject", "--reason", "unchecked")
    resumed = cli(env, "resume", run_id)
    assert resumed.returncode == 1 and "rejected_at_gate" in resumed.stdout
    ledger, rows = ledger_rows(env)
    assert ledger.verify_chain().valid and "publisher" not in rows["node_id"].tolist()
    assert rows["event_type"].tolist()[-2:] == ["gate_reject", "run_complete"]


def test_resume_needs_a_decision_first(env):
    run_id = paused_run_whose_process_died(env)
    early = cli(env, "resume", run_id)
    assert early.returncode == 2 and "decide first" in early.stderr
    assert "Traceback" not in early.stderr


def test_the_recorded_policy_rebuilds_the_same_policy():
    policy = Policy("regulated", budget_usd=5.0, carbon_budget_g=500.0,
                    circuit_breaker=CircuitBreakerConfig(max_retries=1),
                    human_in_loop=HumanInLoopConfig(tier_threshold=RiskTier.IRREVERSIBLE,
                                                    timeout_s=60))
    again = Policy.from_dict(policy.to_dict())
    assert again.to_dict() == policy.to_dict()
    assert again.human_in_loop.tier_threshold is RiskTier.IRREVERSIBLE
