"""Trace export benchmark: the capstone run with OpenTelemetry export on and off.

One figure (README.md explains it and its target):

* ``capstone_per_run``  one capstone run (zero-latency agents, nine node executions) as a
  learner calls it, ``wf.run``: without export; exporting through the batch processor
  and the OTLP/HTTP exporter to a live `OtlpReceiver` on 127.0.0.1, in a process of its
  own as a collector is; and exporting to a port where nothing listens (a dead
  collector).

The variants are interleaved in a shuffled order each round (fixed seed), as in
bench_engine.py, whose capstone, agents and checks this reuses: every run must execute
exactly the nine expected nodes, and the receiver must end up with every span of every
exporting run, so no figure comes from a run that skipped work or export.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import socket
from typing import Any

from bench_engine import (
    CAPSTONE_EXECUTIONS,
    TASK,
    Trace,
    interleave,
    mesh_approver,
    mesh_capstone,
    summarize,
    timer,
)
from timing import target

from meshflow_nb.telemetry import OtlpReceiver
from meshflow_nb.telemetry.export import endpoint_provider

PACKAGES = ("meshflow-nb", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
            "opentelemetry-proto", "protobuf")
"""Distributions whose versions run.py records next to the figures."""

RUNS, WARMUP = 500, 50
SPANS_PER_RUN = 10
"""The workflow span and the nine node spans of one capstone run."""
SEED = 20240501
TARGET_OVERHEAD_MS = 1.0
EXPORT_TIMEOUT_S = "1"
"""The exporter's timeout here, so that the dead collector's retries end soon at exit."""


def measure_capstone(loop: asyncio.AbstractEventLoop, rng: random.Random,
                     collector: Any) -> dict[str, Any]:
    """Per-run time of the capstone with export off, on, and on to a dead collector;
    ``collector`` is the pipe to the receiver's process."""
    trace = Trace()
    wf = mesh_capstone(trace)
    live = endpoint_provider(f"{collector.recv()}/v1/traces")
    dead = endpoint_provider(f"http://127.0.0.1:{_closed_port()}/v1/traces")
    calls = {"export_off": _runner(wf, trace, None), "export_on": _runner(wf, trace, live),
             "export_dead_collector": _runner(wf, trace, dead)}
    variants = {name: (timer(call, loop), _checker(trace, name)) for name, call in calls.items()}
    samples = interleave(variants, RUNS, WARMUP, rng)
    live.force_flush()
    expected = (RUNS + WARMUP) * SPANS_PER_RUN
    collector.send(expected)
    received = collector.recv()
    figures = summarize(samples)
    overhead = round(figures["export_on"]["median_ms"] - figures["export_off"]["median_ms"], 4)
    return {
        "description": "one capstone run (9 node executions, zero-latency agents) by wf.run, "
                       "per run; export through BatchSpanProcessor + OTLP/HTTP",
        "variants": figures,
        "spans_received": received,
        "spans_expected": expected,
        "overhead_ms": {
            "export_on": overhead,
            "export_dead_collector": round(figures["export_dead_collector"]["median_ms"]
                                           - figures["export_off"]["median_ms"], 4),
            "export_on_min": round(figures["export_on"]["min_ms"]
                                   - figures["export_off"]["min_ms"], 4)},
        "targets": [target("export_on median - export_off median (ms)", overhead,
                           TARGET_OVERHEAD_MS)],
    }


def _runner(wf: Any, trace: Trace, provider: Any) -> Any:
    """One ``wf.run`` as bench_engine's ``meshflow_run``, with ``tracer_provider``."""
    decide = mesh_approver(trace)
    return lambda: wf.run(TASK, approver=decide, tracer_provider=provider)


def _checker(trace: Trace, name: str) -> Any:
    return lambda: trace.expect(CAPSTONE_EXECUTIONS, name)


def serve(pipe: Any) -> None:
    """The collector's process: send the endpoint, then the count of spans received once
    the expected number (sent back) has arrived."""
    with OtlpReceiver() as receiver:
        pipe.send(receiver.endpoint)
        expected = pipe.recv()
        pipe.send(len(receiver.wait_for(expected, timeout_s=60)))


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> dict[str, Any]:
    """Run the measurement; run.py adds machine info and writes the JSON."""
    saved = os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"] = EXPORT_TIMEOUT_S
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    collector = multiprocessing.get_context("fork").Process(target=serve, args=(theirs,),
                                                           daemon=True)
    collector.start()
    loop = asyncio.new_event_loop()
    try:
        measurements = {"capstone_per_run": measure_capstone(loop, random.Random(SEED), ours)}
    finally:
        loop.close()
        collector.join(timeout=10)
        if saved is None:
            os.environ.pop("OTEL_EXPORTER_OTLP_TIMEOUT", None)
        else:
            os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"] = saved
    return {"repetitions": {"capstone_per_run": RUNS, "capstone_warmup": WARMUP},
            "measurements": measurements}
