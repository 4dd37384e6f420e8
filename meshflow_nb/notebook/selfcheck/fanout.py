"""Lesson 3's self-checks: fan-out and fan-in, judged from the learner's own runs.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ex2_result``, ``flaky``, ``pipeline``, ``nested``) and the answer variables
(``my_fanout``, ``join_prediction``, ``siblings_prediction``, ``status_prediction``,
``fan_points``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ...engine.results import RunResult
from ...errors import shown
from ...events import EventType, MeshEvent, plural
from ...model.graph import Node, Topology
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from ..timeline import Timeline, TimelineBar
from .expect import Expect, Instance, OneOf, describe
from .framework import Verdict, hint, passed, self_check

MIN_BRANCHES = 3
MIN_SPEEDUP = 2.5
"""Exercise 1: three branches that overlap well enough to be 2.5 times faster than a chain."""
MIN_BRANCH_S = 0.05
"""Less work than this per branch leaves nothing to overlap: the timing is noise."""
BALANCE = 1.3
"""Branches whose longest takes this many times the shortest are unbalanced."""

JOIN_CHOICES = ("runs", "is skipped", "never starts")
SIBLING_CHOICES = ("finish", "are cancelled")
STATUS_CHOICES = ("completed", "failed", "cancelled")


class MaybeRun(Instance):
    """A run a lesson cell made, or None when that cell found no answer to run yet (the
    judge says which cell to run); anything else is refused like any `Instance`."""

    def unset(self, value: Any) -> bool:
        """None is not missing here: the judge answers it."""
        return False

    def clean(self, value: Any, where: str) -> Any:
        """The run, or None."""
        return None if value is None else super().clean(value, where)


class Function(Expect):
    """A function the learner wrote (``def name(...): ...``)."""

    def clean(self, value: Any, where: str) -> Callable[..., Any]:
        """The function itself; a class or anything else that cannot be called is refused."""
        if isinstance(value, type) or not callable(value):
            raise self.refuse(value, where)
        return value


WORKFLOW = Instance(WorkflowDefinition, kind="a workflow (a WorkflowDefinition)")


# --- exercise 1: a three-way fan-out, and its measured speed-up -----------------------


@self_check(
    given={"ex1_result": MaybeRun(RunResult, "the run of your fan-out",
                                  kind="the result of a run (a RunResult)")},
    answers={"my_fanout": Instance(WorkflowDefinition, "your three-way fan-out",
                                   kind="a workflow, built with WorkflowDefinition(...)")})
def three_way_fanout(ex1_result: RunResult | None, my_fanout: WorkflowDefinition) -> Verdict:
    """Exercise 1: my_fanout fans out to three branches and joins them, and its run shows
    the branches overlapping, at least 2.5 times faster than a chain of them."""
    wrong = _run_hint(ex1_result, my_fanout) or _shape_hint(my_fanout)
    if wrong:
        return hint(wrong)
    timeline = Timeline.of(ex1_result)
    branches = _branches(my_fanout)
    wrong = _timing_hint(timeline, branches)
    if wrong:
        return hint(wrong)
    return passed(f"{len(branches)} branches overlapped: {timeline.work_s(branches):.2f} s of "
                  f"work in {timeline.wall_s(branches):.2f} s, "
                  f"{timeline.speedup(branches):.1f}x faster than a chain of them")


def _run_hint(run: RunResult | None, workflow: WorkflowDefinition) -> str | None:
    """Where to look when ex1_result is not a finished run of my_fanout (None when it is)."""
    if run is None:
        return "ex1_result has no run yet: run the cell under the answer cell (it runs my_fanout)"
    if run.workflow != workflow.name:
        return (f"ex1_result is a run of {run.workflow!r}, not of my_fanout "
                f"({workflow.name!r}): run the cell under the answer cell again")
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return "pre-flight rejected my_fanout: read the report printed under the run cell"
    if run.status is not RunStatus.COMPLETED:
        return (f"the run of my_fanout ended {run.status.value}, not completed: read its "
                "summary under the run cell")
    return None


def _shape_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when my_fanout is not three branches from one node, joined again."""
    topo = _topology(workflow)
    widest = max((len(_successors(topo, n)) for n in topo.node_ids), default=0)
    if not _branches(workflow):
        if widest >= 2:
            return (f"my_fanout fans out to {widest} branches at most: the exercise asks for "
                    f"{MIN_BRANCHES}, from one node")
        return ("my_fanout has no node with several edges out, so nothing runs in parallel: "
                "add an edge from one node to each branch (section 1)")
    if not any(len(_feeders(topo, n)) >= MIN_BRANCHES for n in topo.node_ids):
        return ("your branches are never joined again: add one node with an edge from each "
                "branch (the writer of section 1)")
    return None


def _timing_hint(timeline: Timeline, branches: list[str]) -> str | None:
    """Where to look when the branches' bars do not show a speed-up of 2.5 (None if they do)."""
    bars = [b for b in timeline.bars if b.node_id in branches]
    if {b.node_id for b in bars} != set(branches):
        missing = sorted(set(branches) - {b.node_id for b in bars})
        return (f"{', '.join(missing)} never ran in ex1_result: run the cell under the answer "
                "cell again, then look at the timeline it draws")
    shortest, longest = min(b.duration_s for b in bars), max(b.duration_s for b in bars)
    if longest < MIN_BRANCH_S:
        return ("your branches take almost no time, so there is nothing to overlap: give each "
                "branch's agent real work, such as slow_agent('name', 0.3)")
    if timeline.speedup(branches) >= MIN_SPEEDUP:
        return None
    measured = f"speed-up {timeline.speedup(branches):.1f}x, below {MIN_SPEEDUP}x"
    if not _any_overlap(bars):
        return (f"{measured}: your branches ran one after another although the graph fans "
                "out. An async def agent that calls time.sleep holds up every other branch "
                "(section 3): use a plain def, or await asyncio.sleep")
    if longest > BALANCE * shortest:
        return (f"{measured}: your branches take from {shortest:.2f} s to {longest:.2f} s, and "
                "a fan-out lasts as long as its slowest branch: give them equal work")
    return f"{measured}: look at the timeline of your run: do the branches start together?"


def _any_overlap(bars: list[TimelineBar]) -> bool:
    """Two of the bars ran at the same time for a moment."""
    return any(a.overlaps(b) for n, a in enumerate(bars) for b in bars[n + 1:])


def _branches(workflow: WorkflowDefinition) -> list[str]:
    """The branches of the widest fan-out with at least three: the successors of one node,
    else the entry nodes when three or more start together; [] when there is none."""
    topo = _topology(workflow)
    fans = [_successors(topo, n) for n in topo.node_ids]
    widest = max(fans, key=len, default=[])
    if len(widest) >= MIN_BRANCHES:
        return widest
    return topo.entries if len(topo.entries) >= MIN_BRANCHES else []


def _topology(workflow: Any) -> Topology:
    """The forward and loop edges of a workflow's definition."""
    return Topology.of([n.id for n in workflow.nodes], workflow.edges)


def _successors(topo: Topology, node_id: str) -> list[str]:
    """The nodes a forward edge from ``node_id`` leads to (loop edges left out)."""
    forward = set(topo.forward_edges)
    return list(dict.fromkeys(e.target for e in topo.out_edges.get(node_id, [])
                              if e in forward))


def _feeders(topo: Topology, node_id: str) -> list[str]:
    """The nodes with a forward edge into ``node_id``."""
    return list(dict.fromkeys(e.source for e in topo.forward_in.get(node_id, [])))


# --- exercise 2: a branch fails; what does the join do? ---------------------------------


@self_check(
    given={"ex2_result": Instance(RunResult, "the run of the flaky fan-out",
                                  kind="the result of a run (a RunResult)"),
           "flaky": Instance(WorkflowDefinition, "the flaky fan-out", kind=WORKFLOW.kind)},
    answers={"join_prediction": OneOf(JOIN_CHOICES, "what the join does"),
             "siblings_prediction": OneOf(SIBLING_CHOICES, "what the other branches do"),
             "status_prediction": OneOf(STATUS_CHOICES, "the run's status")})
def branch_failure(ex2_result: RunResult, flaky: WorkflowDefinition, join_prediction: str,
                   siblings_prediction: str, status_prediction: str) -> Verdict:
    """Exercise 2: the learner's predictions for a fan-out with one failing branch match
    what their run's events show."""
    failed = [e for e in ex2_result.events if e.type is EventType.NODE_FAILED]
    if ex2_result.workflow != flaky.name or not failed:
        return hint("ex2_result has no failed branch: run the exercise's run cell again (one "
                    "branch of flaky raises)")
    truth = _what_happened(ex2_result, flaky, failed[0])
    said = {"join": join_prediction, "siblings": siblings_prediction,
            "status": status_prediction}
    wrong = [FAILURE_HINTS[key].format(join=truth["join_id"]) for key in FAILURE_HINTS
             if said[key] != truth[key]]
    if wrong:
        return hint(f"{plural(len(wrong), 'prediction')} of 3 did not happen. " + "; ".join(wrong))
    return passed(f"as you predicted: {truth['join_id']} {truth['join']}, the other branches "
                  f"{truth['siblings']}, and the run is {truth['status']} ({ex2_result.error})")


FAILURE_HINTS = {
    "join": "join_prediction: find {join} in your run's event table. A node_start row means "
            "it ran, a node_skipped row that it was skipped; no row at all, that it never "
            "started",
    "siblings": "siblings_prediction: read the rows after node_failed: which of the other "
                "branches have a node_complete row?",
    "status": "status_prediction: read the first line of the run's summary",
}
"""Where to look, per prediction that did not happen: never what happened."""


def _what_happened(run: RunResult, workflow: WorkflowDefinition,
                   failure: MeshEvent) -> dict[str, str]:
    """What the run's events show: what the failed branch's join did, what its sibling
    branches did once it failed, and the run's status."""
    topo = _topology(workflow)
    joins = _successors(topo, failure.node_id) or ["(none)"]
    join = joins[0]
    started = {e.node_id for e in run.events if e.type is EventType.NODE_START}
    skipped = {e.node_id for e in run.events if e.type is EventType.NODE_SKIPPED}
    parents = _feeders(topo, failure.node_id)
    siblings = {s for p in parents for s in _successors(topo, p)} - {failure.node_id}
    ended_after = {e.node_id for e in run.events
                   if e.type is EventType.NODE_COMPLETE and e.seq > failure.seq}
    running = {s for s in siblings & started if not _ended_before(run.events, s, failure.seq)}
    return {"join_id": join,
            "join": "runs" if join in started else "is skipped" if join in skipped
            else "never starts",
            "siblings": "finish" if running <= ended_after else "are cancelled",
            "status": run.status.value}


def _ended_before(events: list[MeshEvent], node_id: str, seq: int) -> bool:
    """``node_id`` had finished before the event numbered ``seq``."""
    return any(e.node_id == node_id and e.seq < seq and e.type is EventType.NODE_COMPLETE
               for e in events)


# --- exercise 3: the capstone's fan-out and fan-in nodes, read from its edges -----------


@self_check(
    given={"pipeline": Instance(WorkflowDefinition, "the capstone pipeline",
                                kind=WORKFLOW.kind),
           "nested": Instance(WorkflowDefinition, "section 6's nested fan-out",
                              kind=WORKFLOW.kind)},
    answers={"fan_points": Function("your function of a workflow",
                                    kind="a function: def fan_points(workflow): ...")})
def capstone_fan_points(pipeline: WorkflowDefinition, nested: WorkflowDefinition,
                        fan_points: Callable[..., Any]) -> Verdict:
    """Exercise 3: fan_points reads any workflow's edges and returns its fan-out nodes and
    its fan-in nodes; right for the capstone, for section 6's nested fan-out, and for two
    workflows it has not seen."""
    wrong = _fan_hint(fan_points, pipeline, "pipeline")
    if wrong:
        return hint(wrong)
    others = [("nested", "section 6's nested fan-out", nested),
              *((name, what, build()) for name, what, build in PROBES)]
    for name, what, workflow in others:
        wrong = _fan_hint(fan_points, workflow, name)
        if wrong:
            return hint(f"fan_points is right for the capstone, but not for {name} ({what}): "
                        f"{wrong}. Read the edges of the workflow it is given")
    fan_out, fan_in = fan_points_of(pipeline)
    return passed(f"fan-out {', '.join(fan_out)} and fan-in {', '.join(fan_in)}, read from the "
                  "edges; right for nested, a chain and a workflow with a loop too")


def shown_error(err: Exception) -> str:
    """An error's message, cut short (a learner's exception may carry a huge text)."""
    text = str(err)
    return text if len(text) <= 120 else shown(text)


def fan_points_of(workflow: Any) -> tuple[list[str], list[str]]:
    """The right answer: nodes with forward edges out to two or more nodes, and nodes with
    forward edges in from two or more (loop edges, which re-run a node, left out)."""
    topo = _topology(workflow)
    return ([n for n in topo.node_ids if len(_successors(topo, n)) >= 2],
            [n for n in topo.node_ids if len(_feeders(topo, n)) >= 2])


def _fan_hint(function: Callable[..., Any], workflow: WorkflowDefinition,
              name: str) -> str | None:
    """Where to look when fan_points(workflow) is not the workflow's (fan_out, fan_in)."""
    try:
        answer = function(workflow)
    except Exception as err:
        return f"fan_points({name}) raised {type(err).__name__}: {shown_error(err)}"
    if inspect.iscoroutine(answer):
        answer.close()  # never awaited: say so instead of leaving a warning behind
        return "fan_points should be a plain def, not an async def: it only reads the edges"
    lists = _two_lists(answer, name)
    if isinstance(lists, str):
        return lists
    return _list_hint(lists, fan_points_of(workflow), workflow)


def _two_lists(answer: Any, name: str) -> tuple[list[str], list[str]] | str:
    """The two lists of node ids fan_points returned, or the HINT saying what it returned."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2 or any(
            isinstance(part, (str, bytes)) or not isinstance(part, Iterable) for part in answer):
        return (f"fan_points({name}) should return two lists, (fan_out, fan_in), not "
                f"{describe(answer)}")
    lists = []
    for label, part in zip(("fan_out", "fan_in"), answer, strict=True):
        ids = [item.id if isinstance(item, Node) else item for item in part]
        odd = next((i for i in ids if not isinstance(i, str)), _NONE)
        if odd is not _NONE:
            return (f"the {label} list of fan_points({name}) should hold node ids in quotes, "
                    f"not {describe(odd)}")
        twice = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
        if twice is not None:  # ids, compared exactly ("analyst_a" is not "analyst_b")
            return f"the {label} list of fan_points({name}) names {twice!r} twice"
        lists.append(ids)
    return lists[0], lists[1]


_NONE = object()
"""No odd item found (None itself is an odd item)."""


def _list_hint(answer: tuple[list[str], list[str]], truth: tuple[list[str], list[str]],
               workflow: WorkflowDefinition) -> str | None:
    """The first way the answer differs from the truth, said as where to look."""
    (fan_out, fan_in), (right_out, right_in) = answer, truth
    nodes = {n.id for n in workflow.nodes}
    unknown = next((n for n in fan_out + fan_in if n not in nodes), None)
    if unknown is not None:
        return f"{unknown!r} is not a node of this workflow: use the ids in workflow.nodes"
    if (set(fan_out), set(fan_in)) == (set(right_in), set(right_out)) != \
            (set(right_out), set(right_in)):
        return "you swapped the two lists: branches start at a fan-out and meet at a fan-in"
    for label, said, right in (("fan_out", fan_out, right_out), ("fan_in", fan_in, right_in)):
        extra = [n for n in said if n not in right]
        looped = next((n for n in extra if _has_loop_edge(workflow, n)), None)
        if looped is not None:
            return (f"{label} names {looped}, but one of its edges is a dashed loop edge "
                    "(max_iterations): a loop sends the run back to an earlier node, it starts "
                    "no parallel branch and joins none, so leave loop edges out")
        if extra:
            return f"{label} names {extra[0]}, but {FEWER[label]}"
        if set(right) - set(said):
            return f"{label} misses a node: {MISSED[label]}"
    return None


FEWER = {"fan_out": "it has edges out to fewer than two other nodes",
         "fan_in": "fewer than two other nodes have edges into it"}
MISSED = {"fan_out": "look for one with solid arrows out to two or more others",
          "fan_in": "look for one with solid arrows in from two or more others"}


def _has_loop_edge(workflow: WorkflowDefinition, node_id: str) -> bool:
    """A loop edge starts or ends at the node."""
    return any(node_id in (e.source, e.target) for e in _topology(workflow).loop_edges)


def _nothing(ctx: Any) -> str:
    """The agent of the probe workflows (they are read, never run)."""
    return ""


def _chain() -> WorkflowDefinition:
    """A probe: three nodes in a row, no fan-out, no fan-in."""
    return (WorkflowDefinition("chain").add_node("draft", _nothing).add_node("edit", _nothing)
            .add_node("publish", _nothing).add_edge("draft", "edit").add_edge("edit", "publish"))


def _fan_with_loop() -> WorkflowDefinition:
    """A probe: a three-way fan-out, two joins, and a loop edge back into one branch (the
    loop makes that branch's node no fan-in, and its source no fan-out)."""
    wf = WorkflowDefinition("fan_with_loop")
    for node_id in ("plan", "cost", "risk", "market", "merge", "review"):
        wf.add_node(Node(node_id, _nothing, exports=["score"] if node_id == "review" else ()))
    for source, target in (("plan", "cost"), ("plan", "risk"), ("plan", "market"),
                           ("cost", "merge"), ("risk", "merge"), ("merge", "review"),
                           ("market", "review")):
        wf.add_edge(source, target)
    return wf.add_conditional_edge("review", "risk", "score < 0.5", max_iterations=2)


PROBES: list[tuple[str, str, Callable[[], WorkflowDefinition]]] = [
    ("chain", "three nodes in a row, which it has not seen", _chain),
    ("fan_with_loop", "a fan-out with a loop edge back into a branch, which it has not seen",
     _fan_with_loop),
]
"""Workflows fan_points has not seen: a right answer reads them as it reads the capstone."""
