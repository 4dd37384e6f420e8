"""Live-agent benchmark: `AnthropicAgent` against the raw SDK, and a replayed capstone.

Two figures (README.md explains each and its target):

* ``agent_overhead_per_call``  one ``await agent(ctx)`` against one raw
  ``client.messages.create`` (and ``messages.stream``) sending the same request to the
  same `LocalMessagesServer`, all in one event loop; beside them, the agent's own work
  without the call (``request`` and ``result``);
* ``capstone_replay_vs_mock``  one capstone run replayed from a cassette recorded at the
  start of the benchmark, against the same run in mock mode as a learner runs it (the
  mock agents' default latency) and with zero-latency mock agents (engine cost only).

Variants are interleaved in a shuffled order each round (fixed seed) and the warm-up
rounds are not kept, as in bench_engine.py. Every call and run is checked outside the
timing (the answer's text, the executed nodes), so no figure can come from a broken run.
The environment variables that steer live agents are cleared for the whole benchmark and
restored afterwards; each variant sets what it needs before its agents are built.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
from timing import stats, target

from meshflow_nb import (
    AgentResult,
    AnthropicAgent,
    Cassette,
    LocalMessagesServer,
    Policy,
    Role,
    fixed_approver,
)
from meshflow_nb.agents.base import NodeContext
from meshflow_nb.localapi import replay_server
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

PACKAGES = ("meshflow-nb", "anthropic", "httpx2", "httpcore2", "anyio", "pydantic")
"""Distributions whose versions run.py records next to the figures."""

CALL_RUNS, CALL_WARMUP = 250, 20
CAPSTONE_RUNS, CAPSTONE_WARMUP = 30, 3
SEED = 20240501
TASK = CAPSTONE_TASK
API_KEY = "bench"
"""What the raw clients send: the local server accepts any key."""

SLOW_CALL_MS = 30.0
"""Calls slower than this are counted apart: a loopback call that waits for a delayed ACK
(40 ms) is a stall of the connection, not work of the agent (the local server sets
TCP_NODELAY since this benchmark found the stalls; the count shows they are gone)."""

TARGET_OVERHEAD_MS = 1.0
TARGET_REPLAY_RATIO = 1.5

LIVE_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_MOCK", "MESHFLOW_MOCK_LATENCY",
             "MESHFLOW_MOCK_SEED", "MESHFLOW_RECORD", "MESHFLOW_REPLAY", "MESHFLOW_MODEL",
             "MESHFLOW_PRICES", "MESHFLOW_LEDGER_DB")
"""Cleared for the whole benchmark, and put back as they were afterwards."""

CONTEXT = NodeContext(
    run_id="bench-live", node_id="researcher", role=Role.RESEARCHER.value, task=TASK,
    inputs={"brief": "Focus on energy density, cycle life, cost per kWh and the "
                     "announced 2027-2030 production lines."},
    outputs={}, variables={})
"""The fixed context of every per-call measurement."""

Call = Callable[[], Awaitable[Any]]
Check = Callable[[Any], None]


# --- environment ----------------------------------------------------------------------


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (a string) or unset (None) variables for the block, then put them back."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _put(name, value)
        yield
    finally:
        for name, value in saved.items():
            _put(name, value)


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# --- interleaving -----------------------------------------------------------------------


async def interleave_async(variants: dict[str, tuple[Call, Check]], runs: int, warmup: int,
                           rng: random.Random) -> dict[str, list[int]]:
    """bench_engine's interleave inside one running loop: every variant once per round in
    a shuffled order, timed around its ``await``; the check runs untimed after each call."""
    samples: dict[str, list[int]] = {name: [] for name in variants}
    names = list(variants)
    gc.collect()
    for round_ in range(warmup + runs):
        rng.shuffle(names)
        for name in names:
            call, check = variants[name]
            began = time.perf_counter_ns()
            outcome = await call()
            elapsed = time.perf_counter_ns() - began
            check(outcome)
            if round_ >= warmup:
                samples[name].append(elapsed)
    return samples


def interleave(variants: dict[str, Callable[[], int]], runs: int, warmup: int,
               rng: random.Random) -> dict[str, list[int]]:
    """The same for variants that time (and check) one run themselves."""
    samples: dict[str, list[int]] = {name: [] for name in variants}
    names = list(variants)
    gc.collect()
    for round_ in range(warmup + runs):
        rng.shuffle(names)
        for name in names:
            elapsed = variants[name]()
            if round_ >= warmup:
                samples[name].append(elapsed)
    return samples


def summarize(samples: dict[str, list[int]]) -> dict[str, dict[str, float | int]]:
    return {name: stats(values) for name, values in samples.items()}


def split_slow(samples: dict[str, list[int]], limit_ms: float
               ) -> tuple[dict[str, int], dict[str, float]]:
    """Per variant: how many calls took longer than ``limit_ms``, and the median of the
    others (what a call costs when it does not wait for a delayed ACK)."""
    limit = limit_ms * 1e6
    slow = {name: sum(v > limit for v in values) for name, values in samples.items()}
    fast = {name: stats([v for v in values if v <= limit])["median_ms"]
            for name, values in samples.items()}
    return slow, fast


def _minus(figures: dict[str, dict[str, Any]], slower: str, faster: str) -> float:
    return round(figures[slower]["median_ms"] - figures[faster]["median_ms"], 4)


# --- agent_overhead_per_call -------------------------------------------------------------


def sdk_client(url: str) -> anthropic.AsyncAnthropic:
    """The settings both sides use: the local server, any key, no SDK retries."""
    return anthropic.AsyncAnthropic(base_url=url, api_key=API_KEY, max_retries=0)


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def expect_message(text: str, name: str) -> Check:
    """A raw call must bring back the expected answer, finished."""
    def check(message: Any) -> None:
        if text_of(message) != text or message.stop_reason != "end_turn":
            raise AssertionError(f"{name}: unexpected answer {message!r}")
    return check


def expect_result(text: str, tokens_out: int, name: str) -> Check:
    """An agent call must turn the same answer into an `AgentResult` with its usage."""
    def check(result: Any) -> None:
        if not (isinstance(result, AgentResult) and result.text == text
                and result.tokens_out == tokens_out and result.cost_usd):
            raise AssertionError(f"{name}: unexpected result {result!r}")
    return check


async def per_call_samples(url: str, rng: random.Random,
                           server: LocalMessagesServer) -> tuple[dict[str, list[int]], str]:
    """All rounds of the five per-call variants, in this one loop."""
    agent = AnthropicAgent(Role.RESEARCHER, client=sdk_client(url))
    streaming = AnthropicAgent(Role.RESEARCHER, client=sdk_client(url), stream=True)
    request = agent.request(CONTEXT)  # exactly what both agents send
    if streaming.request(CONTEXT) != request:
        raise AssertionError("the streaming agent would send another request")
    raw, raw_stream = sdk_client(url), sdk_client(url)

    async def raw_create() -> Any:
        return await raw.messages.create(**request)

    async def raw_streamed() -> Any:
        async with raw_stream.messages.stream(**request) as stream:
            async for _text in stream.text_stream:
                pass
            return await stream.get_final_message()

    async def agent_call() -> Any:
        return await agent(CONTEXT)

    async def agent_streamed() -> Any:
        return await streaming(CONTEXT)

    async def agent_own_work() -> Any:
        """The agent's own work around the SDK call (no HTTP): request in, result out."""
        agent.request(CONTEXT)
        return agent.result(reference, CONTEXT)

    reference = await raw_create()  # untimed: the answer every call must bring back
    text, tokens_out = text_of(reference), reference.usage.output_tokens
    await _check_same_bodies(server, [raw_create, agent_call, raw_streamed, agent_streamed])
    variants = {
        "raw_sdk": (raw_create, expect_message(text, "raw_sdk")),
        "anthropic_agent": (agent_call, expect_result(text, tokens_out, "anthropic_agent")),
        "raw_sdk_stream": (raw_streamed, expect_message(text, "raw_sdk_stream")),
        "anthropic_agent_stream": (agent_streamed,
                                   expect_result(text, tokens_out, "anthropic_agent_stream")),
        "agent_request_and_result": (agent_own_work,
                                     expect_result(text, tokens_out, "agent_request_and_result")),
    }
    samples = await interleave_async(variants, CALL_RUNS, CALL_WARMUP, rng)
    for client in (raw, raw_stream):
        await client.close()
    return samples, str(agent.model)


async def _check_same_bodies(server: LocalMessagesServer, calls: list[Call]) -> None:
    """One untimed call of each: the server must receive the same body from the raw SDK
    and from the agent (with ``stream: true`` on both streaming ones)."""
    bodies = []
    for call in calls:
        before = len(server.requests)
        await call()
        received = server.requests[before:]
        if len(received) != 1:
            raise AssertionError(f"one call sent {len(received)} requests")
        bodies.append(received[0])
    if bodies[0] != bodies[1] or bodies[2] != bodies[3] or bodies[2].get("stream") is not True:
        raise AssertionError(f"the agent and the raw SDK sent different requests: {bodies}")


def measure_agent_overhead(rng: random.Random) -> dict[str, Any]:
    """Per-call time of the agent and of the raw SDK, plain and streaming, one loop."""
    with LocalMessagesServer() as server:
        samples, model = asyncio.run(per_call_samples(server.url, rng, server))
    figures = summarize(samples)
    overhead = {"create": _minus(figures, "anthropic_agent", "raw_sdk"),
                "stream": _minus(figures, "anthropic_agent_stream", "raw_sdk_stream")}
    slow, fast = split_slow(samples, SLOW_CALL_MS)
    unstalled = {"create": round(fast["anthropic_agent"] - fast["raw_sdk"], 4),
                 "stream": round(fast["anthropic_agent_stream"] - fast["raw_sdk_stream"], 4)}
    return {
        "description": f"one Messages API call ({model}, the researcher's request) to a "
                       "LocalMessagesServer: await agent(ctx) against the raw SDK sending "
                       "the same request; overhead = median(agent) - median(raw); "
                       "agent_request_and_result is agent.request + agent.result alone",
        "variants": figures,
        "overhead_ms": overhead,
        f"calls_over_{SLOW_CALL_MS:.0f}ms": slow,
        f"median_ms_of_calls_under_{SLOW_CALL_MS:.0f}ms": fast,
        f"overhead_ms_calls_under_{SLOW_CALL_MS:.0f}ms": unstalled,
        "targets": [
            target("median(anthropic_agent) - median(raw_sdk) ms", overhead["create"],
                   TARGET_OVERHEAD_MS),
            target("median(anthropic_agent_stream) - median(raw_sdk_stream) ms",
                   overhead["stream"], TARGET_OVERHEAD_MS),
        ],
    }


# --- capstone_replay_vs_mock -------------------------------------------------------------


def policy() -> Policy:
    return Policy("standard", budget_usd=5.0)


APPROVER = fixed_approver(True, "bench", "scripted")


def executed(result: Any) -> Counter[str]:
    """Node executions of a run, as a count per node id (the gate counts once)."""
    return Counter({node_id: node.executions for node_id, node in result.nodes.items()
                    if node.executions})


def record_cassette(path: Path) -> Any:
    """One capstone run against a fresh local server, every exchange recorded to ``path``."""
    with LocalMessagesServer() as server, environment(
            {"ANTHROPIC_BASE_URL": server.url, "MESHFLOW_RECORD": str(path)}):
        result = build_capstone_pipeline(policy=policy()).run(TASK, approver=APPROVER)
    if not result.ok:
        raise AssertionError(f"recording the capstone failed: {result!r} ({result.error})")
    return result


def capstone_variant(env: Mapping[str, str | None], reference: Any,
                     name: str) -> Callable[[], int]:
    """One capstone run with ``env`` set: built untimed, ``run`` timed, then checked."""
    expected = executed(reference)

    def run_once() -> int:
        with environment(env):
            wf = build_capstone_pipeline(policy=policy())
            began = time.perf_counter_ns()
            result = wf.run(TASK, approver=APPROVER)
            elapsed = time.perf_counter_ns() - began
        got = executed(result)
        if not result.ok or got != expected or result.totals.node_executions != sum(
                expected.values()):
            raise AssertionError(f"{name}: ok={result.ok}, executed {dict(got)}, expected "
                                 f"{dict(expected)} ({result.error})")
        return elapsed
    return run_once


def measure_replay(rng: random.Random, workdir: Path) -> dict[str, Any]:
    """The capstone replayed from a cassette recorded now, against mock mode."""
    cassette = workdir / "capstone.json"
    reference = record_cassette(cassette)
    calls = len(Cassette.load(cassette).exchanges)
    variants = {
        "mock": capstone_variant({"MESHFLOW_MOCK": "1"}, reference, "mock"),
        "mock_zero_latency": capstone_variant(
            {"MESHFLOW_MOCK": "1", "MESHFLOW_MOCK_LATENCY": "0"}, reference, "mock_zero_latency"),
        "replay": capstone_variant({"MESHFLOW_REPLAY": str(cassette)}, reference, "replay"),
    }
    # the replay server (one per process and cassette) starts in the first warm-up round
    samples = interleave(variants, CAPSTONE_RUNS, CAPSTONE_WARMUP, rng)
    replay_server(cassette).stop()
    figures = summarize(samples)
    ratio = round(figures["replay"]["median_ms"] / figures["mock"]["median_ms"], 3)
    bare = round(figures["replay"]["median_ms"] / figures["mock_zero_latency"]["median_ms"], 3)
    return {
        "description": f"one capstone run ({sum(executed(reference).values())} node "
                       f"executions, {calls} model calls replayed; Policy('standard', "
                       "budget_usd=5.0); no ledger), wf.run per run, the pipeline built "
                       "untimed: replay of a cassette against mock mode as a learner runs "
                       "it, and against zero-latency mock agents",
        "variants": figures,
        "model_calls_per_run": calls,
        "replay_minus_mock_zero_latency_ms": _minus(figures, "replay", "mock_zero_latency"),
        "ratio_replay_over_mock": ratio,
        "ratio_replay_over_mock_zero_latency": bare,
        "ledger": "none",
        "targets": [target("median(replay) / median(mock)", ratio, TARGET_REPLAY_RATIO)],
    }


# --- main ----------------------------------------------------------------------------------


def main() -> dict[str, Any]:
    """Both measurements with the live-agent variables cleared; run.py writes the JSON."""
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, environment(
            dict.fromkeys(LIVE_VARS)):
        measurements = {
            "agent_overhead_per_call": measure_agent_overhead(rng),
            "capstone_replay_vs_mock": measure_replay(rng, Path(tmp)),
        }
    return {
        "repetitions": {"agent_overhead_per_call": CALL_RUNS, "call_warmup": CALL_WARMUP,
                        "capstone_replay_vs_mock": CAPSTONE_RUNS,
                        "capstone_warmup": CAPSTONE_WARMUP},
        "measurements": measurements,
    }
