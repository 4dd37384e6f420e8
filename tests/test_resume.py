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
from meshflow_nb.hitl import submit_decision
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline

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


def paused_run_whose_process_died(env, script: str = WAITER) -> str:
    waiter = subprocess.Popen([sys.executable, "-c", script], env=env)
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


# --- what a request file names is not trusted ----------------------------------------------


def forge_request(env, builder: str, kwargs: dict) -> str:
    """A request someone with write access to the approvals folder planted, decided too."""
    store = Path(env["MESHFLOW_APPROVALS_DIR"])
    store.mkdir(parents=True, exist_ok=True)
    state = {"format": 1, "builder": {"function": builder, "kwargs": kwargs}, "task": "t",
             "run_id": "forged01", "gate": "hitl_gate", "gate_content": "x", "seq": 3}
    (store / "forged01.hitl_gate.request.json").write_text(json.dumps({
        "run_id": "forged01", "node_id": "hitl_gate", "prompt": "Approve?",
        "requested_at": "2026-03-02T10:15:04+00:00", "timeout_s": None,
        "pid": 1, "host": "elsewhere", "state": state}), encoding="utf-8")
    submit_decision("forged01", True, "mallory", dir=store)
    return "forged01"


def refused(proc: subprocess.CompletedProcess, builder: str) -> bool:
    """Exit 2 with one line that names the builder and how to allow it."""
    [line] = proc.stderr.splitlines()
    return (proc.returncode == 2 and line.startswith("meshflow-nb: error: ")
            and repr(builder) in line and f"--trust-builder {builder}" in line)


def test_resume_never_runs_a_function_that_only_a_request_file_names(env, tmp_path):
    marker = tmp_path / "owned"
    run_id = forge_request(env, "os:system", {"command": f"touch {marker}"})
    proc = cli(env, "resume", run_id)
    assert refused(proc, "os:system"), proc.stderr
    assert not marker.exists()


def test_resume_does_not_even_import_the_module_a_request_file_names(env, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "planted.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef build(**kwargs):\n    raise SystemExit\n",
        encoding="utf-8")
    env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    run_id = forge_request(env, "planted:build", {})
    assert refused(cli(env, "resume", run_id), "planted:build")
    other = cli(env, "resume", run_id, "--trust-builder", "meshflow_nb.pipelines:other")
    assert other.returncode == 2 and "'planted:build'" in other.stderr
    assert "not 'meshflow_nb.pipelines:other'" in other.stderr
    assert not marker.exists()


def test_a_trusted_builder_with_a_mangled_saved_state_is_one_line_too(env):
    run_id = forge_request(env, "meshflow_nb.pipelines.capstone:build_capstone_pipeline", {})
    proc = cli(env, "resume", run_id)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "saved state is incomplete or malformed" in proc.stderr


def test_a_builder_the_resuming_program_registers_is_trusted(monkeypatch):
    from meshflow_nb.cli import builders

    monkeypatch.setattr(builders, "_REGISTERED", dict(builders._REGISTERED))
    built = []

    def build(**kwargs):
        built.append(kwargs)
        return build_capstone_pipeline(quality_scores=[0.9])

    with pytest.raises(builders.BuilderError, match=r"--trust-builder flows\.mine:build"):
        builders.rebuild("flows.mine:build", {})
    builders.register_builder("flows.mine:build", build)
    assert builders.rebuild("flows.mine:build", {"max_revisions": 1}).name == \
        "production_pipeline"
    assert built == [{"max_revisions": 1}]
    with pytest.raises(builders.BuilderError, match="arguments are not an object"):
        builders.rebuild("flows.mine:build", ["not", "kwargs"])


RESUMABLE = textwrap.dedent("""
    from meshflow_nb.pipelines import build_capstone_pipeline

    def build(**kwargs):
        workflow = build_capstone_pipeline(**kwargs)
        workflow.builder = {**workflow.builder, "function": "resumable:build"}
        return workflow
""")


def test_a_builder_of_ones_own_resumes_once_the_operator_confirms_it(env, tmp_path):
    (tmp_path / "resumable.py").write_text(RESUMABLE, encoding="utf-8")
    env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    waiter = WAITER.replace("from meshflow_nb.pipelines import build_capstone_pipeline",
                            "from resumable import build as build_capstone_pipeline")
    run_id = paused_run_whose_process_died(env, waiter)
    cli(env, "approve", run_id, "--reviewer", "dana")
    assert refused(cli(env, "resume", run_id), "resumable:build")
    resumed = cli(env, "resume", run_id, "--trust-builder", "resumable:build")
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout and ReplayLedger(env["MESHFLOW_LEDGER_DB"]
                                                          ).verify_chain().valid
