"""Governed benchmark: the capstone under the full REGULATED policy with a DuckDB ledger,
against LangGraph + InMemorySaver, in the same process and run.

Figures (README.md explains each and its target):

* ``regulated_per_run``     one governed capstone run (zero-latency agents) on an empty
  ledger, on a copy of the 1,000,000-entry benchmark ledger, and LangGraph's run, all
  interleaved;
* ``layers_per_run``        the same run with one governance layer switched off in turn
  (against the full policy): what each layer costs.

The agents and the LangGraph graph are bench_engine.py's; every run is checked (nine node
executions, completed, every event recorded), so no figure comes from a run that skipped
work or lost entries.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from contextlib import chdir
from pathlib import Path
from typing import Any

from bench_engine import (
    CAPSTONE_EXECUTIONS,
    MAX_REVISIONS,
    TASK,
    Trace,
    interleave,
    lg_capstone,
    lg_runner,
    mesh_agent,
    mesh_approver,
    summarize,
    timer,
)
from bench_ledger import cached_ledger, forget_store, release
from timing import target

from meshflow_nb import Policy
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.pipelines.capstone import AGENT_IDS

PACKAGES = ("meshflow-nb", "langgraph", "langgraph-checkpoint", "duckdb")
"""Distributions whose versions run.py records next to the figures."""

RUNS, WARMUP = 150, 15
LAYER_RUNS, LAYER_WARMUP = 60, 5
SEED = 20240501
TARGET_RATIO = 1.0
TARGET_LARGE_RATIO = 1.1
REGULATED = {"budget_usd": 5.0, "carbon_budget_g": 500.0}
"""REGULATED requires both caps; the capstone stays far below them."""
LAYERS = {
    "guardian": {"enable_guardian": False},
    "uncertainty": {"enable_uncertainty": False},
    "carbon": {"enable_environmental": False, "carbon_budget_g": None},
    "breaker": {"circuit_breaker": None},
    "learning": {"enable_cross_run_learning": False},
    "ledger": {"immutable_audit": False},
}
"""Each layer switched off against the full policy (the ledger: no ledger attached)."""
EVENTS = 23


def regulated(**changes: Any) -> Policy:
    """The REGULATED policy with the caps it requires, and ``changes`` on top."""
    return Policy("regulated", **{**REGULATED, **changes})


def governed(trace: Trace, policy: Policy, ledger: ReplayLedger | None) -> Any:
    """A zero-argument call doing one governed capstone run, checked afterwards."""
    wf = build_capstone_pipeline(agents={a: mesh_agent(trace) for a in AGENT_IDS},
                                 max_revisions=MAX_REVISIONS, policy=policy)
    if ledger is not None:
        ledger.attach(wf)
    approver = mesh_approver(trace)
    return lambda: wf.run(TASK, approver=approver)


def checked(call: Any, trace: Trace, name: str, recorded: bool) -> tuple[Any, Any]:
    """(timer, check): the run completed its nine executions and recorded every event."""
    outcome: dict[str, Any] = {}

    def run() -> Any:
        outcome["result"] = call()
        return outcome["result"]

    def check() -> None:
        trace.expect(CAPSTONE_EXECUTIONS, name)
        result = outcome.get("result")
        if result is None or isinstance(result, dict):
            return
        if not (result.ok and (not recorded or (len(result.events) == EVENTS
                                                and not result.unrecorded))):
            raise AssertionError(f"{name}: the governed run did not complete and record: "
                                 f"{result.summary()}")
    return run, check


def measure_regulated(loop: asyncio.AbstractEventLoop, rng: random.Random,
                      workdir: Path) -> dict[str, Any]:
    """REGULATED on an empty and on a 1M-entry ledger, and LangGraph, interleaved."""
    trace = Trace()
    large = workdir / "large.duckdb"
    shutil.copyfile(cached_ledger(), large)
    ledgers = {"empty": ReplayLedger(workdir / "empty.duckdb"), "large": ReplayLedger(large)}
    calls = {
        "meshflow_regulated_empty_ledger": (governed(trace, regulated(), ledgers["empty"]), True),
        "meshflow_regulated_1m_ledger": (governed(trace, regulated(), ledgers["large"]), True),
        "langgraph_invoke_inmemorysaver": (lg_runner(lg_capstone(trace, False), False), False),
    }
    variants = {}
    for name, (call, recorded) in calls.items():
        run, check = checked(call, trace, name, recorded)
        run()  # the first run under audit: a full check of the 1M ledger, untimed
        check()
        variants[name] = (timer(run, loop), check)
    figures = summarize(interleave(variants, RUNS, WARMUP, rng))
    for ledger in ledgers.values():
        _expect_intact(ledger)
        release(ledger)
    forget_store(large)
    lg = figures["langgraph_invoke_inmemorysaver"]["median_ms"]
    empty = figures["meshflow_regulated_empty_ledger"]["median_ms"]
    ratio = round(empty / lg, 3)
    large_ratio = round(figures["meshflow_regulated_1m_ledger"]["median_ms"] / empty, 3)
    return {
        "description": "one capstone run (9 node executions, zero-latency agents) under the "
                       "full REGULATED policy with a DuckDB ledger, per run; the 1M ledger "
                       "is a copy of bench_ledger.py's",
        "variants": figures,
        "ratio_regulated_over_langgraph": ratio,
        "ratio_1m_over_empty": large_ratio,
        "targets": [target("regulated (empty ledger) / langgraph_invoke (median)", ratio,
                           TARGET_RATIO),
                    target("regulated on 1M entries / on an empty ledger (median)",
                           large_ratio, TARGET_LARGE_RATIO)],
    }


def measure_layers(loop: asyncio.AbstractEventLoop, rng: random.Random,
                   workdir: Path) -> dict[str, Any]:
    """The full policy, and the full policy with each layer off in turn, interleaved."""
    trace = Trace()
    shared = ReplayLedger(workdir / "layers.duckdb")  # one ledger, as one team would keep
    variants = {}
    for name, changes in {"full_policy": {}, **LAYERS}.items():
        ledger = None if name == "ledger" else shared
        policy = regulated(**changes)
        run, check = checked(governed(trace, policy, ledger), trace, name, ledger is not None)
        variants[name] = (timer(run, loop), check)
    figures = summarize(interleave(variants, LAYER_RUNS, LAYER_WARMUP, rng))
    _expect_intact(shared)
    release(shared)
    full = figures["full_policy"]["median_ms"]
    costs = {name: round(full - figures[name]["median_ms"], 3) for name in LAYERS}
    return {
        "description": "the REGULATED capstone with one layer switched off in turn; "
                       "cost = median(full_policy) - median(layer off)",
        "variants": figures, "layer_cost_ms": costs, "targets": [],
    }


def _expect_intact(ledger: ReplayLedger) -> None:
    result = ledger.verify_chain()
    if not result.valid:
        raise AssertionError(f"the benchmark ledger does not verify: {result.report()}")


def main() -> dict[str, Any]:
    """Run both measurements; run.py adds machine info and writes the JSON."""
    rng = random.Random(SEED)
    loop = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-governed-") as tmp, chdir(tmp):
            workdir = Path(tmp)  # the run without a ledger learns beside the default one
            measurements = {
                "regulated_per_run": measure_regulated(loop, rng, workdir),
                "layers_per_run": measure_layers(loop, rng, workdir),
            }
    finally:
        loop.close()
    return {
        "repetitions": {"regulated": RUNS, "regulated_warmup": WARMUP,
                        "layers": LAYER_RUNS, "layers_warmup": LAYER_WARMUP},
        "measurements": measurements,
    }
