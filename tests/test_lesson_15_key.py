"""Lesson 15 run live, with a key in its kernel's environment, against the local server:
the key reaches no output of the executed notebook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import papermill

from meshflow_nb import LocalMessagesServer

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "15_real_models.ipynb"
SECRET = "sk-ant-api03-notebook-SECRET-5647382910"


def test_a_live_run_of_lesson_15_never_shows_the_key(tmp_path, monkeypatch):
    with LocalMessagesServer() as server:
        for name in ("MESHFLOW_MOCK", "MESHFLOW_REPLAY", "MESHFLOW_RECORD"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)      # the kernel inherits it
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        out = tmp_path / "live.ipynb"
        papermill.execute_notebook(
            str(LESSON), str(out), parameters={"hitl_decision": "approve", "live": True},
            cwd=str(tmp_path), kernel_name="python3", progress_bar=False, log_output=False,
            execution_timeout=300)
        live_calls = len(server.requests)
    executed = out.read_text(encoding="utf-8")
    assert live_calls >= 6                               # section 7 called the server, live
    assert SECRET not in executed and "SECRET-5647" not in executed
    outputs = [o for c in json.loads(executed)["cells"] for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.get("output_type") == "error"]
    assert os.environ["ANTHROPIC_API_KEY"] == SECRET     # the test's own set-up held
