"""Live mode from the terminal: the capstone script and `meshflow-nb run` against the local
server (cost preview, --max-cost), and `meshflow-nb serve-fake` as a classroom runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from meshflow_nb import LocalMessagesServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "hands_on" / "16_production_pipeline.py"
CAPSTONE = "meshflow_nb.pipelines:build_capstone_pipeline"
SECRET = "sk-ant-api03-terminal-SECRET-9876543210"


@pytest.fixture(scope="module")
def server():
    with LocalMessagesServer() as running:
        yield running


def live(*args: str, server: LocalMessagesServer, cwd: Path, **env: str):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MESHFLOW_MOCK", "MESHFLOW_REPLAY", "MESHFLOW_RECORD")}
    environ.update(ANTHROPIC_API_KEY=SECRET, ANTHROPIC_BASE_URL=server.url,
                   PYTHONPATH=str(ROOT), MESHFLOW_LEDGER_DB=str(cwd / "live.duckdb"), **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=120)


def test_the_capstone_script_runs_live_after_printing_its_cost_preview(server, tmp_path):
    proc = live(str(SCRIPT), server=server, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    preview = proc.stdout.index("Cost preview: at most $")
    assert preview < proc.stdout.index("done    researcher")     # before any call
    assert "Models: claude-haiku-4-5" in proc.stdout and "Ledger chain VALID" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [(str(SCRIPT), "--max-cost", "0.0001"),
                                     ("-m", "meshflow_nb", "run", CAPSTONE, "t",
                                      "--max-cost", "0.0001")], ids=["script", "cli"])
def test_a_max_cost_below_the_preview_stops_before_any_call(server, tmp_path, command):
    before = len(server.requests)
    proc = live(*command, server=server, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert "above --max-cost $0.0001, so nothing was called" in line
    assert len(server.requests) == before
    assert not (tmp_path / "live.duckdb").exists() or "researcher" not in proc.stdout


def test_serve_fake_serves_the_sdk_until_interrupted(tmp_path):
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    # as from a terminal: a suite started in the background inherits SIGINT ignored, and
    # Python then never turns Ctrl-C into KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "meshflow_nb", "serve-fake"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()
        assert "local Messages API (not a real model) at http://127.0.0.1:" in first
        url = first.rsplit(" at ", 1)[1].strip()
        client = anthropic.Anthropic(base_url=url, api_key="no-key-needed", max_retries=0)
        answer = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[
            {"role": "user", "content": "Task: assess heat pumps"}],
            system="You are the researcher of a governed research workflow.")
        assert answer.content[0].text.startswith("Research brief")
        with pytest.raises(anthropic.NotFoundError):   # a retired id, as the API answers it
            client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                   messages=[{"role": "user", "content": "hi"}])
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    assert "Traceback" not in proc.stderr.read()


def test_serve_fake_refuses_a_bad_port_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "meshflow_nb", "serve-fake", "--port", "-3"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("meshflow-nb: error: ") and "port" in proc.stderr
