"""A lesson's hands-on script run the way a learner runs it, and the ledger it wrote.

The script runs in a folder of its own, with none of the tester's ``MESHFLOW_*`` or
``ANTHROPIC_*`` settings (no key, no ledger path, no headless decision leaks in), mock
agents unless told otherwise, and no terminal to prompt on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent


def run_hands_on(script: str, folder: Path, *args: str, mock: bool = True,
                 ledger: str | None = None, latency: str = "0",
                 **env: str) -> subprocess.CompletedProcess[str]:
    """``hands_on/<script>`` with ``args`` in ``folder``; ``ledger`` names its ledger file
    there, ``latency`` the mock agents' simulated seconds, ``env`` any further settings."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MESHFLOW_", "ANTHROPIC_"))}
    environ.update({"PYTHONPATH": str(ROOT), "MESHFLOW_MOCK_LATENCY": latency, **env})
    if ledger is not None:
        environ["MESHFLOW_LEDGER_DB"] = str(folder / ledger)
    if mock:
        environ["MESHFLOW_MOCK"] = "1"
    return subprocess.run([sys.executable, str(ROOT / "hands_on" / script), *args],
                          capture_output=True, text=True, env=environ, cwd=folder,
                          timeout=120, stdin=subprocess.DEVNULL)


def ledger_statuses(ledger: Path) -> list[str]:
    """The status of every run in ``ledger``, oldest first, read by another process."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        return [row[0] for row in con.execute(
            "SELECT status FROM ledger_runs ORDER BY started_at").fetchall()]
