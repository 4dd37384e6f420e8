"""What a conformance check returns, how a probe runs, and the checks of level 1 (the
engine): small probe workflows that show the engine doing what it promises, here.

Every probe uses plain or mock agents with no simulated latency (except the two that
wait on purpose), decides its gates with an explicit approver, and records, when it
records at all, into a ledger in the temporary folder it is given: never the user's.
docs/conformance.md lists every check and what it proves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..agents.base import NodeContext
from ..agents.mock import MockAgent
from ..engine.results import RunResult
from ..errors import MeshflowError
from ..events import EventType
from ..hitl.local import fixed_approver
from ..model.graph import Agent
from ..model.roles import Role
from ..model.status import RunStatus
from ..policy.config import Policy
from ..workflow import WorkflowDefinition


class ProbeTimeout(MeshflowError):
    """A probe run did not end in time: what it probes never stops."""


class Status(StrEnum):
    """What a check found."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One check's finding: its status, a short detail and, for a FAIL, how to fix it."""

    status: Status
    detail: str
    fix: str = ""


def passed(detail: str) -> Check:
    """The property holds."""
    return Check(Status.PASS, detail)


def failed(detail: str, fix: str) -> Check:
    """The property does not hold, and what to do about it."""
    return Check(Status.FAIL, detail, fix)


def skipped(reason: str) -> Check:
    """Nothing to check here (not configured), and why."""
    return Check(Status.SKIP, reason)


TASK = "Conformance probe: summarise the release notes"
WAIT_S = 0.2
"""How long each of the two fan-out agents waits."""
OVERLAP = 0.75
"""The fan-out passes when it takes less than this share of the two waits' sum."""
LOOP_LIMIT = 2
RUN_TIMEOUT_S = 10.0
"""A probe run that has not ended by then counts as one that never ends."""
APPROVE = fixed_approver(True, "conformance", "probe run", channel="conformance")
REJECT = fixed_approver(False, "conformance", "probe rejects", channel="conformance")


def layer_fix(layer: str, doc: str) -> str:
    """What to do when a layer of this installation does not hold."""
    return (f"{layer} of this installation does not behave as documented ({doc}): reinstall "
            "meshflow-nb (pip install --force-reinstall meshflow-nb) and undo local changes "
            "to meshflow_nb/")


def events_of(result: RunResult, kind: EventType) -> list[Any]:
    """The run's events of one type."""
    return [e for e in result.events if e.type is kind]


def two_steps(first: Agent, second: Agent | None = None, name: str = "conformance",
               **second_fields: Any) -> WorkflowDefinition:
    """first -> second, both executors; ``second`` echoes what it was given by default."""
    second = second or (lambda ctx: ctx.upstream())
    return (WorkflowDefinition(name).add_node("first", first, role=Role.EXECUTOR)
            .add_node("second", second, role=Role.EXECUTOR, **second_fields)
            .add_edge("first", "second"))


def run_probe(workflow: WorkflowDefinition, policy: Policy | None, **options: Any) -> RunResult:
    """Run a probe in the background; one still running after `RUN_TIMEOUT_S` is cancelled
    and reported (`ProbeTimeout`), so a broken guard cannot hang the command."""
    handle = workflow.start(TASK, policy=policy, **{"approver": APPROVE, **options})
    try:
        return handle.result(RUN_TIMEOUT_S)
    except TimeoutError:
        handle.cancel()
        raise ProbeTimeout(f"the probe run was still going after {RUN_TIMEOUT_S:g} s") from None


# --- level 1: the engine ------------------------------------------------------------


def fan_out_overlap(agent: Agent | None = None) -> Check:
    """Two branches that each wait `WAIT_S` run at the same time."""
    agent = agent or MockAgent(Role.EXECUTOR, angle="technical", latency_s=WAIT_S)
    wf = (WorkflowDefinition("conformance_fan_out")
          .add_node("start", lambda ctx: "go", role=Role.PLANNER)
          .add_node("left", agent, role=Role.EXECUTOR).add_node("right", agent, role=Role.EXECUTOR)
          .add_node("join", lambda ctx: "joined", role=Role.EXECUTOR)
          .add_edge("start", "left").add_edge("start", "right")
          .add_edge("left", "join").add_edge("right", "join"))
    result = run_probe(wf, None)
    if not result.ok:
        return failed(f"the fan-out run ended {result.status}: {result.error}",
                      layer_fix("The scheduler", "docs/concepts.md"))
    took, serial = _branch_seconds(result, ("left", "right")), 2 * WAIT_S
    if took >= OVERLAP * serial:
        return failed(f"two agents waiting {WAIT_S:g} s each took {took:.2f} s together "
                      f"(one after the other: {serial:.2f} s): the branches did not overlap",
                      "an agent that blocks the event loop (time.sleep in an async def) "
                      "serialises the branches; otherwise " + layer_fix("The scheduler",
                                                                   "docs/concepts.md"))
    return passed(f"two agents waiting {WAIT_S:g} s each finished in {took:.2f} s "
                  f"(one after the other: {serial:.2f} s)")


def _branch_seconds(result: RunResult, nodes: tuple[str, ...]) -> float:
    """From the first of ``nodes`` starting to the last completing, by the run's own
    event times (what the run spent before and after them is not the overlap's)."""
    def times(kind: EventType) -> list[datetime]:
        return [datetime.fromisoformat(e.ts) for e in events_of(result, kind)
                if e.node_id in nodes]

    return (max(times(EventType.NODE_COMPLETE)) - min(times(EventType.NODE_START))
            ).total_seconds()


def loop_guard() -> Check:
    """A loop whose condition always holds stops after ``max_iterations``."""
    never_good = lambda ctx: {"quality_score": 0.1}  # noqa: E731
    wf = (WorkflowDefinition("conformance_loop")
          .add_node("writer", lambda ctx: "draft", role=Role.EXECUTOR)
          .add_node("critic", never_good, role=Role.CRITIC, exports=["quality_score"])
          .add_edge("writer", "critic")
          .add_conditional_edge("critic", "writer", "quality_score < 0.8",
                                max_iterations=LOOP_LIMIT))
    result = run_probe(wf, None)
    drafts = result.executed.count("writer")
    if events_of(result, EventType.LOOP_EXHAUSTED) and drafts == LOOP_LIMIT + 1:
        return passed(f"a loop that never exits stopped after {LOOP_LIMIT} revisions "
                      f"({drafts} drafts), status {result.status}")
    return failed(f"a loop with max_iterations={LOOP_LIMIT} ran {drafts} drafts and ended "
                  f"{result.status}", layer_fix("The loop guard", "docs/conditions.md"))


def preflight_refusal() -> Check:
    """A broken definition is refused before any agent runs."""
    ran: list[str] = []

    def agent(ctx: NodeContext) -> str:
        ran.append(ctx.node_id)
        return "ran"

    wf = (WorkflowDefinition("conformance_refused")
          .add_node("a", agent, role=Role.EXECUTOR).add_node("b", agent, role=Role.EXECUTOR)
          .add_edge("a", "b").add_edge("b", "a").add_edge("b", "nowhere"))
    result = run_probe(wf, None)
    rules = sorted(set(result.preflight.rules)) if result.preflight is not None else []
    if result.status is RunStatus.REJECTED_PREFLIGHT and not ran and len(rules) >= 2:
        return passed(f"a definition with a cycle and an unknown node was refused "
                      f"({', '.join(rules)}); no agent ran")
    return failed(f"the broken definition ended {result.status} after running {ran or 'nothing'}",
                  layer_fix("Pre-flight", "docs/concepts.md#pre-flight"))


ENGINE: tuple[tuple[str, Callable[..., Check]], ...] = (
    ("fan_out_overlap", fan_out_overlap), ("loop_guard", loop_guard),
    ("preflight_refusal", preflight_refusal))
"""Level 1, by name."""
