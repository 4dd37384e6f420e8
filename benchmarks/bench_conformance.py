"""Conformance benchmark: how long ``meshflow conformance python --level N`` takes.

Two figures (README.md explains each and its target):

* ``command``    the installed command as a user types it, a fresh process each time, for
  levels 1, 2 and 3 (level 3 verifying a DuckDB ledger of 20 capstone runs named by
  ``MESHFLOW_LEDGER_DB``), interleaved in a shuffled order each round;
* ``in_process`` ``run_conformance(N)`` in one warm process, without the interpreter's
  start and the imports.

Every timed run must be conformant with every level 1 and 2 check passing and, at level
3, ``ledger_db`` passing on the ledger: a figure never comes from a run that skipped
or failed work.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import stats, target

PACKAGES = ("meshflow-nb", "duckdb")
COMMAND_ROUNDS, IN_PROCESS_ROUNDS, WARMUP = 5, 10, 1
LEDGER_RUNS = 20
LEVELS = (1, 2, 3)
TARGET_L3_S = 10.0
SEED = 20261202
MESHFLOW = Path(sys.executable).with_name("meshflow")
SETTINGS = ("MESHFLOW_", "ANTHROPIC_", "OTEL_")


def environment(ledger: Path) -> dict[str, str]:
    """The machine as a learner has it: a ledger, no key, server or collector."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    return {**env, "MESHFLOW_LEDGER_DB": str(ledger)}


def make_ledger(ledger: Path) -> None:
    """``LEDGER_RUNS`` capstone runs with mock agents, written by another process."""
    script = ("import sys\nfrom meshflow_nb.ledger import ReplayLedger\n"
              "from meshflow_nb.pipelines import build_capstone_pipeline\n"
              "wf = ReplayLedger(sys.argv[1]).attach(build_capstone_pipeline())\n"
              f"assert all(wf.run(f'task {{i}}').ok for i in range({LEDGER_RUNS}))\n")
    env = {**os.environ, "MESHFLOW_MOCK": "1", "MESHFLOW_MOCK_LATENCY": "0",
           "MESHFLOW_HITL": "approve"}
    subprocess.run([sys.executable, "-c", script, str(ledger)], check=True, env=env)


def checked(report: dict[str, Any], level: int) -> None:
    """Fail loudly unless the run was conformant and did all its work."""
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    must_pass = [c["name"] for c in report["checks"] if c["level"] < 3]
    if level == 3:
        must_pass.append("ledger_db")
    if not report["conformant"] or any(statuses[n] != "PASS" for n in must_pass):
        raise AssertionError(f"level {level} was not conformant: {statuses}")


def time_command(level: int, env: dict[str, str], cwd: Path) -> int:
    """One run of the installed command; returns nanoseconds."""
    began = time.perf_counter_ns()
    proc = subprocess.run([str(MESHFLOW), "conformance", "python", "--level", str(level),
                           "--json"], capture_output=True, text=True, env=env, cwd=cwd)
    took = time.perf_counter_ns() - began
    checked(json.loads(proc.stdout), level)
    return took


def measure_command(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Every level, interleaved in a shuffled order each round, with the level 3 target."""
    rng = random.Random(SEED)
    samples: dict[int, list[int]] = {level: [] for level in LEVELS}
    for round_ in range(WARMUP + COMMAND_ROUNDS):
        for level in rng.sample(LEVELS, len(LEVELS)):
            took = time_command(level, env, cwd)
            if round_ >= WARMUP:
                samples[level].append(took)
    variants = {f"level_{level}": stats(s) for level, s in samples.items()}
    l3 = variants["level_3"]["median_ms"] / 1000
    return {"variants": variants,
            "targets": [target("level 3 on DuckDB, median seconds", round(l3, 3), TARGET_L3_S)]}


def measure_in_process(ledger: Path) -> dict[str, Any]:
    """``run_conformance`` in this process, under the command's environment (restored after)."""
    saved, wanted = dict(os.environ), environment(ledger)
    os.environ.clear()
    os.environ.update(wanted)
    try:
        return {"variants": time_in_process()}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def time_in_process() -> dict[str, Any]:
    from meshflow_nb.cli.conformance import run_conformance

    rng = random.Random(SEED)
    samples: dict[int, list[int]] = {level: [] for level in LEVELS}
    for round_ in range(WARMUP + IN_PROCESS_ROUNDS):
        for level in rng.sample(LEVELS, len(LEVELS)):
            began = time.perf_counter_ns()
            report = run_conformance(level)
            took = time.perf_counter_ns() - began
            checked(report.to_dict(), level)
            if round_ >= WARMUP:
                samples[level].append(took)
    return {f"level_{level}": stats(s) for level, s in samples.items()}


def main() -> dict[str, Any]:
    """Build the ledger, time the command and the in-process runs."""
    with tempfile.TemporaryDirectory(prefix="bench-conformance-") as tmp:
        folder = Path(tmp)
        ledger = folder / "class.duckdb"
        make_ledger(ledger)
        measurements = {"command": measure_command(environment(ledger), folder),
                        "in_process": measure_in_process(ledger)}
    return {"repetitions": {"command": COMMAND_ROUNDS, "in_process": IN_PROCESS_ROUNDS,
                            "warmup": WARMUP},
            "ledger": {"runs": LEDGER_RUNS, "kind": "duckdb"},
            "measurements": measurements}
