"""Engine benchmark: meshflow_nb against LangGraph 1.2, in the same process and run.

Three figures (README.md explains each and its target):

* ``capstone_per_run``  engine overhead of one capstone run with zero-latency agents;
* ``parallel_100x50ms`` wall clock of one start node -> 100 agents sleeping 50 ms -> one end;
* ``preflight``         ``wf.preflight()`` on the capstone and on a 200-node fan-out.

Both engines' agents record every node execution in a shared `Trace`, and each run is
checked against the expected executions, so a figure can never come from a run that
skipped work. Variants are interleaved in a shuffled order each round, so drift of the
machine (frequency scaling, a noisy neighbour) hits every engine alike.
"""

from __future__ import annotations

import asyncio
import gc
import operator
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from timing import stats, target

from meshflow_nb import WorkflowDefinition
from meshflow_nb.hitl import GateRequest, fixed_approver, unattended
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.pipelines.capstone import AGENT_IDS, QUALITY_THRESHOLD

PACKAGES = ("meshflow-nb", "langgraph", "langgraph-checkpoint", "langchain-core")
"""Distributions whose versions run.py records next to the figures."""

CAPSTONE_RUNS, CAPSTONE_WARMUP = 500, 50
PARALLEL_RUNS, PARALLEL_WARMUP = 15, 2
PREFLIGHT_RUNS, PREFLIGHT_WARMUP = {"capstone": 500, "fanout_200": 50}, 5
FANOUT_WIDTH, FANOUT_SLEEP_S = 100, 0.05
PREFLIGHT_FANOUT_WIDTH = 200
MAX_REVISIONS = 2
TASK = "Benchmark task"
SEED = 20240501

TARGET_CAPSTONE_RATIO = 0.5
TARGET_PARALLEL_MS = 75.0

CAPSTONE_EXECUTIONS = Counter({"researcher": 1, "analyst_a": 1, "analyst_b": 1, "writer": 2,
                               "quality_gate": 2, "hitl_gate": 1, "publisher": 1})
"""Critic scores 0.6 then 0.85: one revision, so nine node executions per run."""

Timer = Callable[[], int]
"""Runs one variant once and returns its elapsed time in nanoseconds."""


# --- the work both engines do ----------------------------------------------------


class Trace:
    """Node executions of the current run, recorded by the agents of both engines."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def record(self, node_id: str) -> None:
        self.calls.append(node_id)  # list.append is atomic: safe from worker threads

    def expect(self, expected: Counter[str], variant: str) -> None:
        """Fail loudly unless the last run executed exactly ``expected``; then reset."""
        got = Counter(self.calls)
        self.calls.clear()
        if got != expected:
            raise AssertionError(f"{variant}: executed {dict(got)}, expected {dict(expected)}")


def capstone_output(node_id: str, draft: int) -> str | dict[str, Any]:
    """Zero-latency work of a capstone node; the critic passes the second draft."""
    if node_id == "quality_gate":
        return {"quality_score": 0.6 if draft == 1 else 0.85, "feedback": f"draft {draft} notes"}
    return f"{node_id} output"


def fanout_executions(width: int) -> Counter[str]:
    return Counter({"start": 1, "end": 1, **{worker_id(i): 1 for i in range(width)}})


def worker_id(index: int) -> str:
    return f"worker_{index:03d}"


def agent_callable(work: Callable[[Any], Any], sleep_s: float, asynchronous: bool
                   ) -> Callable[[Any], Any]:
    """``work`` as a coroutine function or a plain one, after sleeping ``sleep_s``.

    Both engines' agents come from here: they differ only in what ``work`` reads (a
    meshflow `NodeContext`, a LangGraph state) and returns.
    """
    if not asynchronous:
        def plain(argument: Any) -> Any:
            if sleep_s:
                time.sleep(sleep_s)
            return work(argument)
        return plain

    async def coroutine(argument: Any) -> Any:
        if sleep_s:
            await asyncio.sleep(sleep_s)
        return work(argument)
    return coroutine


# --- meshflow_nb side --------------------------------------------------------------


def mesh_agent(trace: Trace, sleep_s: float = 0.0, plain: bool = False) -> Callable[..., Any]:
    """A meshflow agent that records itself and returns its node's output.

    ``plain`` makes a synchronous function, which the engine runs in a worker thread.
    """
    def work(ctx: Any) -> Any:
        trace.record(ctx.node_id)
        return capstone_output(ctx.node_id, ctx.iteration)
    return agent_callable(work, sleep_s, asynchronous=not plain)


def mesh_approver(trace: Trace) -> Callable[[GateRequest], Any]:
    """The fixed approver, counting the gate as one node execution like LangGraph's node."""
    decide = fixed_approver(True, "bench")

    def approve(request: GateRequest) -> Any:
        trace.record(request.node_id)
        return decide(request)
    return unattended(approve)  # scripted: nobody is waited for


def mesh_capstone(trace: Trace) -> WorkflowDefinition:
    return build_capstone_pipeline(agents={a: mesh_agent(trace) for a in AGENT_IDS},
                                   max_revisions=MAX_REVISIONS)


def mesh_fanout(trace: Trace, width: int, sleep_s: float = 0.0,
                plain: bool = False) -> WorkflowDefinition:
    """start -> ``width`` sleeping workers -> end."""
    wf = (WorkflowDefinition(f"fanout_{width}")
          .add_node("start", mesh_agent(trace)).add_node("end", mesh_agent(trace)))
    for i in range(width):
        wf.add_node(worker_id(i), mesh_agent(trace, sleep_s, plain))
        wf.add_edge("start", worker_id(i)).add_edge(worker_id(i), "end")
    return wf


def mesh_runner(wf: WorkflowDefinition, trace: Trace, asynchronous: bool
                ) -> Callable[[], Any]:
    """A zero-argument call doing one run: ``wf.run`` or the ``wf.arun`` coroutine."""
    approver = mesh_approver(trace)
    if asynchronous:
        return lambda: wf.arun(TASK, approver=approver)
    return lambda: wf.run(TASK, approver=approver)


# --- LangGraph side ----------------------------------------------------------------


class CapstoneState(TypedDict, total=False):
    task: str
    research: str
    analyses: Annotated[list[str], operator.add]
    draft: str
    drafts: int
    quality_score: float
    feedback: str
    approval: str
    published: str


class FanoutState(TypedDict, total=False):
    task: str
    done: Annotated[list[str], operator.add]


STATE_KEYS = {"researcher": "research", "analyst_a": "analyses", "analyst_b": "analyses",
              "hitl_gate": "approval", "publisher": "published"}
"""Where each plain capstone node writes its output in LangGraph's state."""


def capstone_update(node_id: str, state: CapstoneState, trace: Trace) -> dict[str, Any]:
    """What a capstone node writes to LangGraph's state; the writer counts drafts."""
    trace.record(node_id)
    drafts = state.get("drafts", 0)
    output = capstone_output(node_id, drafts)
    if node_id == "quality_gate":
        return output  # quality_score and feedback
    if node_id == "writer":
        return {"draft": output, "drafts": drafts + 1}
    key = STATE_KEYS[node_id]
    return {key: [output] if key == "analyses" else output}


def fanout_update(node_id: str, state: FanoutState, trace: Trace) -> dict[str, Any]:
    trace.record(node_id)
    return {"done": [node_id]}


def lg_node(node_id: str, update: Callable[[str, Any, Trace], dict[str, Any]], trace: Trace,
            asynchronous: bool, sleep_s: float = 0.0) -> Callable[[Any], Any]:
    """A LangGraph node: plain for ``invoke``, a coroutine function for ``ainvoke``."""
    return agent_callable(lambda state: update(node_id, state, trace), sleep_s, asynchronous)


def revise_or_approve(state: CapstoneState) -> str:
    """The capstone's conditional edge, with the revision counter as its guard."""
    revisions = state["drafts"] - 1
    if state["quality_score"] < QUALITY_THRESHOLD and revisions < MAX_REVISIONS:
        return "writer"
    return "hitl_gate"


def lg_capstone(trace: Trace, asynchronous: bool) -> Any:
    """The capstone as a StateGraph; a plain node stands in for the human gate."""
    graph = StateGraph(CapstoneState)
    for node_id in (*AGENT_IDS, "hitl_gate"):
        graph.add_node(node_id, lg_node(node_id, capstone_update, trace, asynchronous))
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "analyst_a")
    graph.add_edge("researcher", "analyst_b")
    graph.add_edge(["analyst_a", "analyst_b"], "writer")
    graph.add_edge("writer", "quality_gate")
    graph.add_conditional_edges("quality_gate", revise_or_approve, ["writer", "hitl_gate"])
    graph.add_edge("hitl_gate", "publisher")
    graph.add_edge("publisher", END)
    return graph.compile(checkpointer=InMemorySaver())


def lg_fanout(trace: Trace, width: int, sleep_s: float, asynchronous: bool) -> Any:
    graph = StateGraph(FanoutState)
    workers = [worker_id(i) for i in range(width)]
    graph.add_node("start", lg_node("start", fanout_update, trace, asynchronous))
    graph.add_node("end", lg_node("end", fanout_update, trace, asynchronous))
    for node_id in workers:
        graph.add_node(node_id, lg_node(node_id, fanout_update, trace, asynchronous, sleep_s))
        graph.add_edge("start", node_id)
    graph.add_edge(START, "start")
    graph.add_edge(workers, "end")
    graph.add_edge("end", END)
    return graph.compile(checkpointer=InMemorySaver())


def lg_runner(graph: Any, asynchronous: bool) -> Callable[[], Any]:
    """A zero-argument call doing one run on a fresh thread_id: invoke or ainvoke."""
    call = graph.ainvoke if asynchronous else graph.invoke
    return lambda: call({"task": TASK}, {"configurable": {"thread_id": uuid.uuid4().hex}})


# --- timing --------------------------------------------------------------------------


def timer(run_once: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> Timer:
    """Time one call; a coroutine is awaited inside ``loop`` and timed in there."""
    def measure() -> int:
        began = time.perf_counter_ns()
        outcome = run_once()
        if asyncio.iscoroutine(outcome):
            return loop.run_until_complete(_awaited(outcome))
        return time.perf_counter_ns() - began
    return measure


async def _awaited(coroutine: Coroutine[Any, Any, Any]) -> int:
    began = time.perf_counter_ns()
    await coroutine
    return time.perf_counter_ns() - began


def interleave(variants: dict[str, tuple[Timer, Callable[[], None]]], runs: int, warmup: int,
               rng: random.Random) -> dict[str, list[int]]:
    """Time every variant once per round, in a shuffled order; keep rounds after warm-up.

    Each variant is (timer, check): the check runs after every call, outside the timing.
    """
    samples: dict[str, list[int]] = {name: [] for name in variants}
    names = list(variants)
    gc.collect()
    for round_ in range(warmup + runs):
        rng.shuffle(names)
        for name in names:
            measure, check = variants[name]
            elapsed = measure()
            check()
            if round_ >= warmup:
                samples[name].append(elapsed)
    return samples


def summarize(samples: dict[str, list[int]]) -> dict[str, dict[str, float | int]]:
    return {name: stats(values) for name, values in samples.items()}


# --- the three measurements ------------------------------------------------------------


def measure_capstone(loop: asyncio.AbstractEventLoop, rng: random.Random) -> dict[str, Any]:
    """Per-run time of the capstone on both engines, sync and async, interleaved."""
    trace = Trace()
    wf = mesh_capstone(trace)
    calls = {
        "meshflow_run": mesh_runner(wf, trace, asynchronous=False),
        "meshflow_arun": mesh_runner(wf, trace, asynchronous=True),
        "langgraph_invoke": lg_runner(lg_capstone(trace, asynchronous=False), False),
        "langgraph_ainvoke": lg_runner(lg_capstone(trace, asynchronous=True), True),
    }
    variants = {name: (timer(call, loop), _checker(trace, CAPSTONE_EXECUTIONS, name))
                for name, call in calls.items()}
    _verify_capstone(calls, loop, trace)
    figures = summarize(interleave(variants, CAPSTONE_RUNS, CAPSTONE_WARMUP, rng))
    ratios = {"sync": _ratio(figures, "meshflow_run", "langgraph_invoke"),
              "async": _ratio(figures, "meshflow_arun", "langgraph_ainvoke")}
    return {
        "description": "one capstone run (9 node executions, zero-latency agents), per run",
        "variants": figures,
        "ratio_meshflow_over_langgraph": ratios,
        "targets": [target("meshflow_run / langgraph_invoke (median)", ratios["sync"],
                           TARGET_CAPSTONE_RATIO)],
    }


def _verify_capstone(calls: dict[str, Callable[[], Any]], loop: asyncio.AbstractEventLoop,
                     trace: Trace) -> None:
    """One untimed run per variant: nine executions, and each engine finished its run."""
    for name, call in calls.items():
        outcome = call()
        if asyncio.iscoroutine(outcome):
            outcome = loop.run_until_complete(outcome)
        trace.expect(CAPSTONE_EXECUTIONS, name)
        if name.startswith("meshflow"):
            done = outcome.ok and outcome.totals.node_executions == 9
        else:
            done = outcome.get("drafts") == 2 and "published" in outcome
        if not done:
            raise AssertionError(f"{name} did not finish the capstone: {outcome}")


def _checker(trace: Trace, expected: Counter[str], name: str) -> Callable[[], None]:
    return lambda: trace.expect(expected, name)


def _nothing() -> None:
    """No per-call check: preflight() has no side effects to verify."""


def _ratio(figures: dict[str, dict[str, Any]], numerator: str, denominator: str) -> float:
    return round(figures[numerator]["median_ms"] / figures[denominator]["median_ms"], 3)


def measure_parallel(loop: asyncio.AbstractEventLoop, rng: random.Random) -> dict[str, Any]:
    """Wall clock of a 100-wide fan-out of 50 ms agents, coroutine and thread agents."""
    trace = Trace()
    async_wf = mesh_fanout(trace, FANOUT_WIDTH, FANOUT_SLEEP_S)
    calls = {
        "meshflow_run_async_agents": mesh_runner(async_wf, trace, asynchronous=False),
        "meshflow_arun_async_agents": mesh_runner(async_wf, trace, asynchronous=True),
        "meshflow_run_plain_agents": mesh_runner(
            mesh_fanout(trace, FANOUT_WIDTH, FANOUT_SLEEP_S, plain=True), trace, False),
        "langgraph_ainvoke_async_agents": lg_runner(
            lg_fanout(trace, FANOUT_WIDTH, FANOUT_SLEEP_S, asynchronous=True), True),
    }
    expected = fanout_executions(FANOUT_WIDTH)
    variants = {name: (timer(call, loop), _checker(trace, expected, name))
                for name, call in calls.items()}
    figures = summarize(interleave(variants, PARALLEL_RUNS, PARALLEL_WARMUP, rng))
    value = figures["meshflow_run_async_agents"]["median_ms"]
    return {
        "description": f"start -> {FANOUT_WIDTH} agents sleeping {FANOUT_SLEEP_S * 1000:.0f} ms"
                       " -> end, wall clock per run",
        "variants": figures,
        "targets": [target("meshflow_run_async_agents median ms", value, TARGET_PARALLEL_MS)],
    }


def measure_preflight(loop: asyncio.AbstractEventLoop, rng: random.Random) -> dict[str, Any]:
    """``wf.preflight()`` on the capstone and on a 200-node fan-out."""
    trace = Trace()
    shapes = {"capstone": mesh_capstone(trace),
              "fanout_200": mesh_fanout(trace, PREFLIGHT_FANOUT_WIDTH - 2)}
    figures = {}
    for name, wf in shapes.items():
        if not wf.preflight().ok:
            raise AssertionError(f"preflight rejected the {name} benchmark workflow")
        variants = {name: (timer(wf.preflight, loop), _nothing)}
        figures.update(summarize(interleave(variants, PREFLIGHT_RUNS[name], PREFLIGHT_WARMUP, rng)))
    return {"description": "wf.preflight() per call; fanout_200 is start -> 198 -> end",
            "variants": figures, "targets": []}


def main() -> dict[str, Any]:
    """Run the three measurements; run.py adds machine info and writes the JSON."""
    rng = random.Random(SEED)
    loop = asyncio.new_event_loop()
    try:
        measurements = {
            "capstone_per_run": measure_capstone(loop, rng),
            "parallel_100x50ms": measure_parallel(loop, rng),
            "preflight": measure_preflight(loop, rng),
        }
    finally:
        loop.close()
    return {
        "repetitions": {"capstone_per_run": CAPSTONE_RUNS, "capstone_warmup": CAPSTONE_WARMUP,
                        "parallel_100x50ms": PARALLEL_RUNS, "parallel_warmup": PARALLEL_WARMUP,
                        "preflight": PREFLIGHT_RUNS, "preflight_warmup": PREFLIGHT_WARMUP},
        "measurements": measurements,
    }
