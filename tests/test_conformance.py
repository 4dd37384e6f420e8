"""`meshflow conformance python --level N`: every level passes here, and every check can fail."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import duckdb
import psycopg
import pytest

from meshflow_nb import telemetry
from meshflow_nb.agents.pricing import current_models
from meshflow_nb.cli import conformance_checks as engine
from meshflow_nb.cli import conformance_governance as governance
from meshflow_nb.cli import conformance_production as production
from meshflow_nb.cli.commands import main
from meshflow_nb.cli.conformance import run_conformance
from meshflow_nb.hitl.webhook import SIGNATURE_HEADER, verify_signature
from meshflow_nb.localapi.server import LocalMessagesServer
from meshflow_nb.policy.config import FIELDS, HumanInLoopConfig, Policy
from meshflow_nb.telemetry.check import ExportCheck

ROOT = Path(__file__).resolve().parents[1]
MESHFLOW = Path(sys.executable).with_name("meshflow")
FAKE_KEY = "sk-ant-test-" + "Qw3" * 16
LEVEL_CHECKS = {
    1: ["fan_out_overlap", "loop_guard", "preflight_refusal"],
    2: ["mode", "budget_usd", "enable_guardian", "guardian_action", "enable_uncertainty",
        "uncertainty_escalate", "uncertainty_block", "enable_environmental", "carbon_budget_g",
        "enable_cross_run_learning", "immutable_audit", "circuit_breaker", "human_in_loop",
        "prices", "record_partial_output", "ledger"],
    3: ["ledger_db", "approvals", "approval_webhook", "otlp_export", "live_mode"],
}
SETTINGS = ("MESHFLOW_", "ANTHROPIC_", "OTEL_")


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ledger, key, server or collector configured; a working directory of its own."""
    for name in list(os.environ):
        if name.startswith(SETTINGS):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def conformance(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user types it, with only ``env`` configured."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    return subprocess.run([str(MESHFLOW), "conformance", *args], capture_output=True,
                          text=True, cwd=cwd, env={**environ, **env}, timeout=120,
                          stdin=subprocess.DEVNULL)


def dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def failures(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"] if c["status"] == "FAIL"}


RECORD = textwrap.dedent("""
    import sys
    from meshflow_nb.ledger import ReplayLedger
    from meshflow_nb.pipelines import build_capstone_pipeline

    ledger = ReplayLedger(sys.argv[1])
    assert ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t").ok
""")


def recorded_ledger(location: str) -> None:
    """A ledger holding one capstone run, written (and closed) by another process."""
    env = {**os.environ, "MESHFLOW_MOCK": "1", "MESHFLOW_MOCK_LATENCY": "0",
           "MESHFLOW_HITL": "approve", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", RECORD, location], check=True, env=env, timeout=120)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- every level passes on this installation ------------------------------------------


@pytest.mark.parametrize("level", [1, 2, 3])
def test_each_level_passes_in_process_with_its_checks_in_order(clean, level):
    report = run_conformance(level)
    assert report.conformant, report.text()
    expected = [name for n in range(1, level + 1) for name in LEVEL_CHECKS[n]]
    assert [c.name for c in report.checks] == expected
    assert {c.status for c in report.checks if c.level < 3} == {"PASS"}
    assert report.text().splitlines()[-1].startswith(f"conformant at level {level}: ")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_the_installed_command_passes_each_level(clean, level):
    proc = conformance("python", "--level", str(level), cwd=clean)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith(f"conformant at level {level}: ")
    assert len([line for line in lines if line.startswith(("PASS", "SKIP"))]) == sum(
        len(LEVEL_CHECKS[n]) for n in range(1, level + 1))
    assert "Traceback" not in proc.stderr


def test_without_a_ledger_or_services_level_3_says_what_it_skipped(clean):
    checks = {c.name: c for c in run_conformance(3).checks}
    assert checks["ledger_db"].detail.startswith("MESHFLOW_LEDGER_DB is not set and there is no ")
    assert "--webhook URL" in checks["approval_webhook"].detail
    assert "ANTHROPIC_API_KEY" in checks["live_mode"].detail
    assert {checks[n].status for n in ("ledger_db", "approval_webhook", "otlp_export",
                                       "live_mode")} == {"SKIP"}
    assert checks["approvals"].status == "PASS"
    assert not (clean / ".meshflow").exists()  # checked, not created


def test_json_follows_the_documented_schema(clean):
    proc = conformance("python", "--level", "2", "--json", cwd=clean)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"implementation", "version", "level", "conformant", "seconds",
                           "checks"}
    assert (report["implementation"], report["level"], report["conformant"]) == ("python", 2, True)
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    for check in report["checks"]:
        assert set(check) == {"level", "name", "status", "detail", "fix", "seconds"}
        assert check["level"] in (1, 2) and check["status"] in ("PASS", "FAIL", "SKIP")
        assert check["detail"] and isinstance(check["seconds"], float)
        assert check["fix"] == ""  # only a failure says how to fix it


# --- usage mistakes: exit 2, one clear line --------------------------------------------


def test_an_unknown_level_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["conformance", "python", "--level", "4"])
    assert stop.value.code == 2
    assert "argument --level: invalid choice: 4 (choose from 1, 2, 3)" in capsys.readouterr().err


def test_an_unknown_implementation_says_which_one_there_is(capsys):
    assert main(["conformance", "rust", "--level", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meshflow-nb: error: conformance checks the 'python' implementation")
    assert "not 'rust'" in err and len(err.splitlines()) == 1


# --- level 1 and 2 checks fail when what they check is missing ----------------------------


def test_the_overlap_check_measures_overlap():
    import asyncio
    import time

    async def blocks_the_loop(ctx):
        time.sleep(engine.WAIT_S)
        await asyncio.sleep(0)
        return "done"

    found = engine.fan_out_overlap(blocks_the_loop)
    assert found.status == "FAIL" and "did not overlap" in found.detail and found.fix


LAYER_OFF = {
    "mode": Policy("standard"),
    "budget_usd": Policy("dev", budget_usd=None),
    "enable_guardian": Policy("standard", enable_guardian=False),
    "guardian_action": Policy("standard", guardian_action="flag"),
    "enable_uncertainty": Policy("standard", enable_uncertainty=False),
    "uncertainty_escalate": Policy("standard", uncertainty_escalate=0.9, uncertainty_block=0.95),
    "uncertainty_block": Policy("standard", uncertainty_escalate=0.6, uncertainty_block=1.0),
    "enable_environmental": Policy("standard", enable_environmental=False),
    "carbon_budget_g": Policy("standard", carbon_budget_g=None),
    "enable_cross_run_learning": Policy("standard", enable_cross_run_learning=False),
    "immutable_audit": Policy("standard", immutable_audit=False),
    "circuit_breaker": Policy("standard", circuit_breaker=None),
    "human_in_loop": Policy("standard", human_in_loop=HumanInLoopConfig(enabled=False)),
    "prices": Policy("dev", prices=None),
    "record_partial_output": Policy("dev", record_partial_output=False),
}


def test_every_policy_field_has_a_check_named_after_it():
    names = {name for name, _ in governance.GOVERNANCE}
    assert set(FIELDS) | {"mode"} <= names
    assert set(LAYER_OFF) == names - {"ledger"}


@pytest.mark.parametrize("name", sorted(LAYER_OFF))
def test_each_governance_check_passes_with_its_layer_and_fails_without(name, tmp_path):
    check = dict(governance.GOVERNANCE)[name]
    args = (tmp_path,) if name in governance.NEEDS_FOLDER else ()
    assert check(*args).status == "PASS"
    found = check(*args, policy=LAYER_OFF[name])
    assert found.status == "FAIL", found
    assert found.detail and "reinstall meshflow-nb" in found.fix


# --- level 3 fails, by name and with a fix, when the machine is not ready ----------------


def test_a_damaged_ledger_fails_level_3_and_is_never_written(clean):
    ledger = clean / "class.duckdb"
    recorded_ledger(str(ledger))
    with duckdb.connect(str(ledger)) as con:
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    before = digest(ledger)
    proc = conformance("python", "--level", "3", cwd=clean, MESHFLOW_LEDGER_DB=str(ledger))
    assert proc.returncode == 1, proc.stdout
    verdict = proc.stdout.splitlines()[-1]
    assert verdict.startswith("NOT conformant at level 3: 1 failed (ledger_db)")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL  L3  ledger_db"))
    assert "DAMAGED" in line and str(ledger) in line
    assert "fix: 'meshflow-nb ledger verify --db" in proc.stdout
    assert digest(ledger) == before and not ledger.with_name("class.duckdb.wal").exists()


def test_an_intact_ledger_passes_and_is_left_as_it_was(clean, monkeypatch):
    ledger = clean / "intact.duckdb"
    recorded_ledger(str(ledger))
    before = digest(ledger)
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", str(ledger))
    found = production.ledger_db(clean)
    assert found.status == "PASS" and found.detail.endswith(" entries in 1 run verified")
    assert digest(ledger) == before


def test_a_missing_ledger_file_is_a_failure_with_a_fix(clean, monkeypatch):
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", str(clean / "nowhere.duckdb"))
    found = production.ledger_db(clean)
    assert found.status == "FAIL" and "there is no ledger file" in found.detail
    assert "MESHFLOW_LEDGER_DB" in found.fix and not (clean / "nowhere.duckdb").exists()


def test_level_3_verifies_a_postgresql_ledger_and_appends_nothing(clean, postgres_db, monkeypatch):
    recorded_ledger(postgres_db)
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", postgres_db)
    report = run_conformance(3)
    ledger_db = next(c for c in report.checks if c.name == "ledger_db")
    with psycopg.connect(postgres_db, autocommit=True) as con:
        entries = con.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    assert report.conformant and f"{entries} entries in 1 run verified" in ledger_db.detail
    with psycopg.connect(postgres_db, autocommit=True) as con:
        assert con.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == entries
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    found = production.ledger_db(clean)
    assert found.status == "FAIL" and "DAMAGED" in found.detail


def test_an_unwritable_approvals_folder_fails(clean):
    blocker = clean / "a-file"
    blocker.write_text("not a folder")
    proc = conformance("python", "--level", "3", "--json", cwd=clean,
                       MESHFLOW_APPROVALS_DIR=str(blocker / "approvals"))
    assert proc.returncode == 1
    found = failures(proc)
    assert list(found) == ["approvals"] and "is a file" in found["approvals"]["detail"]
    assert "MESHFLOW_APPROVALS_DIR" in found["approvals"]["fix"]


def test_a_dead_anthropic_base_url_fails_live_mode_and_never_shows_the_key(clean):
    url = f"http://127.0.0.1:{dead_port()}"
    proc = conformance("python", "--level", "3", cwd=clean, ANTHROPIC_BASE_URL=url,
                       ANTHROPIC_API_KEY=FAKE_KEY)
    assert proc.returncode == 1, proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL  L3  live_mode"))
    assert url in line and "fix: start the server ANTHROPIC_BASE_URL names" in proc.stdout
    assert FAKE_KEY not in proc.stdout + proc.stderr


def test_live_mode_answers_through_the_local_server_without_showing_the_key(clean):
    with LocalMessagesServer(models=current_models()) as server:
        for args in (("--level", "3"), ("--level", "3", "--json")):
            proc = conformance("python", *args, cwd=clean, ANTHROPIC_BASE_URL=server.url,
                               ANTHROPIC_API_KEY=FAKE_KEY)
            assert proc.returncode == 0, proc.stdout
            assert FAKE_KEY not in proc.stdout + proc.stderr
    line = next(x for x in json.loads(proc.stdout)["checks"] if x["name"] == "live_mode")
    assert line["status"] == "PASS" and "tokens" in line["detail"]


def test_a_dead_otlp_endpoint_fails(clean):
    proc = conformance("python", "--level", "3", "--json", cwd=clean,
                       OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead_port()}")
    assert proc.returncode == 1
    found = failures(proc)
    assert list(found) == ["otlp_export"] and "OTEL_EXPORTER_OTLP" in found["otlp_export"]["fix"]


@pytest.mark.parametrize("answer, status", [
    (ExportCheck(False, False, None, "trace export is off"), "SKIP"),
    (ExportCheck(True, True, "http://127.0.0.1:4318/v1/traces", "HTTP 200"), "PASS"),
    (ExportCheck(True, False, "http://u:pw@127.0.0.1:9/v1/traces", "refused"), "FAIL"),
])
def test_the_otlp_check_follows_the_telemetry_contract(monkeypatch, answer, status):
    asked = {}

    def check_export(timeout_s=5.0, env=None):
        asked.update(timeout_s=timeout_s, env=env)
        return answer

    monkeypatch.setattr(telemetry, "check_export", check_export)
    found = production.otlp_export()
    assert found.status == status and asked == {"timeout_s": production.TIMEOUT_S, "env": None}
    assert "pw@" not in found.detail and (found.fix != "") == (status == "FAIL")


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    received: ClassVar[list[tuple[bytes, str | None]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers.get(SIGNATURE_HEADER)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_webhook_named_gets_a_signed_notice_and_a_dead_one_fails(clean, monkeypatch):
    monkeypatch.setenv("MESHFLOW_WEBHOOK_SECRET", "webhook-secret-for-tests")
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = production.approval_webhook(f"http://127.0.0.1:{server.server_port}/hook")
    finally:
        server.shutdown()
    body, signature = Receiver.received[-1]
    assert found.status == "PASS" and "HTTP 204" in found.detail
    assert verify_signature(body, signature, "webhook-secret-for-tests")
    dead = production.approval_webhook(f"http://127.0.0.1:{dead_port()}/hook")
    assert dead.status == "FAIL" and "webhook-secret" not in dead.detail + dead.fix
    monkeypatch.delenv("MESHFLOW_WEBHOOK_SECRET")
    unsigned = production.approval_webhook("http://127.0.0.1:9/hook")
    assert unsigned.status == "FAIL" and "MESHFLOW_WEBHOOK_SECRET" in unsigned.fix
