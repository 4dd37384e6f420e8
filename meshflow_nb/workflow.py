"""`WorkflowDefinition`: the builder a learner writes, and the ways to run it.

    wf = (WorkflowDefinition("capstone")
          .add_node(Node("researcher", research, role=Role.RESEARCHER))
          .add_edge("researcher", "writer"))
    result = wf.run("Summarise the state of solid-state batteries")

Building never raises for graph mistakes: `preflight()` (and every run) reports all
of them at once, and a definition that fails pre-flight runs no node. The definition is
data; running it hands the definition, its policy and its ledger to the engine, which
never imports this module (the builder sits above the runtime, as in LangGraph).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .engine.launch import RunHandle, run_blocking, stream_async, stream_blocking
from .engine.preflight import Recorder, preflight
from .engine.results import RunResult
from .engine.run import Run
from .errors import ConfigError, UnknownNodeError, shown
from .events import EventBus, MeshEvent, Subscriber, plural
from .hitl.requests import Approver
from .model.graph import Agent, Edge, Node
from .model.preflight import PreflightReport
from .policy.config import Policy
from .validation import identifier


class WorkflowDefinition:
    """A graph of agent nodes, human gates and (conditional) edges."""

    def __init__(self, name: str = "workflow", description: str = "",
                 policy: Policy | None = None) -> None:
        self.name = identifier(name, "WorkflowDefinition.name")
        self.description = description
        self.policy = _policy(policy, "WorkflowDefinition.policy")
        """Governs every run unless a run is given its own ``policy=``."""
        self.ledger: Recorder | None = None
        """The `ReplayLedger` recording this workflow's runs (set by ``ledger.attach``)."""
        self.builder: dict[str, Any] | None = None
        """How to build this workflow again (``{"function": "module:name", "kwargs": {}}``),
        so a run paused at a gate can be resumed by another process."""
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self._subscribers: list[Subscriber] = []

    # --- building ----------------------------------------------------------------

    def add_node(self, node: Node | str, agent: Agent | None = None, **fields: Any
                 ) -> WorkflowDefinition:
        """Add a `Node` (or `HumanGate`), or build one: ``add_node("id", agent, role=...)``."""
        if isinstance(node, Node):
            if agent is not None or fields:
                raise ConfigError("add_node() takes either a Node, or an id with its agent and "
                                  "fields, not both", argument="node")
            self.nodes.append(node)
        elif isinstance(node, str):
            self.nodes.append(Node(node, agent, **fields))
        else:
            raise ConfigError(
                f"add_node() takes a Node or a node id string, not {type(node).__name__}",
                argument="node")
        return self

    def add_edge(self, source: str | Node, target: str | Node) -> WorkflowDefinition:
        """``target`` runs after ``source`` (and after every other node that feeds it)."""
        self.edges.append(Edge(_node_id(source), _node_id(target)))
        return self

    def add_conditional_edge(self, source: str | Node, target: str | Node, condition: str,
                             max_iterations: int | None = None) -> WorkflowDefinition:
        """An edge taken only when ``condition`` holds after ``source`` finishes.

        An edge back to an earlier node is a loop edge and needs ``max_iterations``.
        """
        if not isinstance(condition, str):
            raise ConfigError(f"condition must be text, not {shown(condition)}",
                              argument="condition",
                              fix="write it in quotes, e.g. 'quality_score < 0.8'")
        self.edges.append(Edge(_node_id(source), _node_id(target), condition,
                               max_iterations, conditional=True))
        return self

    def node(self, node_id: str) -> Node:
        """The node with this id (`UnknownNodeError`, a KeyError, naming the known ids)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise UnknownNodeError(f"no node {node_id!r}; nodes are {[n.id for n in self.nodes]}")

    @property
    def subscribers(self) -> list[Subscriber]:
        """Everything subscribed with `subscribe` (a copy)."""
        return list(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every event of every future run of this workflow (e.g. a ledger)."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    # --- checking and running -----------------------------------------------------

    def preflight(self, policy: Policy | None = None) -> PreflightReport:
        """Every problem that would stop a run (under ``policy`` or the workflow's own).

        Only checks: it runs nothing, and it opens, seals and creates nothing.
        """
        return preflight(self, policy or self.policy, ledger=self.ledger)

    def run(self, task: str, **options: Any) -> RunResult:
        """Run to the end and return the result; works in scripts and in Jupyter.

        Options (for every way of running): ``approver=`` decides at human gates,
        ``on_event=`` receives every event, ``policy=`` replaces the workflow's policy,
        ``tracer_provider=`` (an OpenTelemetry ``TracerProvider``) receives the run's trace.
        """
        return run_blocking(self._new_run(task, **options))

    async def arun(self, task: str, **options: Any) -> RunResult:
        """Run to the end in the caller's event loop."""
        return await self._new_run(task, **options).execute()

    def stream(self, task: str, **options: Any) -> Iterator[MeshEvent]:
        """Yield each event as it happens; closing the stream cancels the run.

        ``for event in wf.stream(task): ... break`` closes it at the break. A stream kept
        in a variable stays open after a break until it is closed: use
        ``with contextlib.closing(wf.stream(task)) as events:`` (``aclosing`` for
        `astream`)."""
        return stream_blocking(self._new_run(task, **options))

    def astream(self, task: str, **options: Any) -> AsyncIterator[MeshEvent]:
        """``async for event in wf.astream(task)``: events as they happen; closing the
        stream (``contextlib.aclosing``) cancels the run."""
        return stream_async(self._new_run(task, **options))

    def start(self, task: str, **options: Any) -> RunHandle:
        """Start the run in the background and return at once with a `RunHandle`."""
        return RunHandle(self._new_run(task, **options)).start()

    def _new_run(self, task: str, *, approver: Approver | None = None,
                 on_event: Subscriber | None = None, policy: Policy | None = None,
                 tracer_provider: Any = None) -> Run:
        if not isinstance(task, str):
            raise ConfigError(f"the task must be a string, not {type(task).__name__}",
                              argument="task")
        subscribers = [*self._subscribers, *([on_event] if on_event else [])]
        policy = _policy(policy, "policy") or self.policy
        return Run(self, task, policy=policy, ledger=self.ledger,
                   approver=approver, bus=EventBus(subscribers), builder=self.builder,
                   tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return (f"<WorkflowDefinition {self.name!r}: {plural(len(self.nodes), 'node')}, "
                f"{plural(len(self.edges), 'edge')}>")


def _policy(value: Any, argument: str) -> Policy | None:
    """A `Policy` or None; a mode name alone is not one (its presets would be silent)."""
    if value is None or isinstance(value, Policy):
        return value
    raise ConfigError(f"{argument} must be a Policy, not {shown(value)}", argument=argument,
                      fix="pass Policy(PolicyMode.REGULATED, ...) (see docs/policy.md)")


def _node_id(node: str | Node) -> str:
    return node.id if isinstance(node, Node) else node
