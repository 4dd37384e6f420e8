"""Nodes, human gates, edges, and the shape of the graph they form.

`Topology` answers the questions both pre-flight and the scheduler ask: which edges
are loop edges, which nodes a loop re-runs, where the run starts, what feeds a node.
A loop edge is a conditional edge with ``max_iterations`` that leads back to its own
source or to one of its ancestors; every other edge is a forward edge, and forward
edges must form a DAG (pre-flight checks that).
"""

from __future__ import annotations

import keyword
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError, shown
from ..validation import SECONDS_MAX, identifier, optional_number
from .roles import RiskTier, Role

Agent = Callable[..., Any]


@dataclass
class Node:
    """One step of a workflow: an agent playing a role at a risk tier."""

    id: str
    agent: Agent | None = None
    role: Role | None = None
    risk_tier: RiskTier = RiskTier.INTERNAL
    exports: tuple[str, ...] | list[str] = ()
    """Variables this node's result provides to conditions, e.g. ``["quality_score"]``."""
    timeout_s: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        """Every field checked now, so a mistake points at the line that made the node."""
        kind = type(self).__name__
        identifier(self.id, f"{kind}.id")
        self.role = _role(self.role, kind)
        self.risk_tier = _risk_tier(self.risk_tier, kind)
        self.exports = _exports(self.exports, self.id)
        optional_number(self.timeout_s, f"{kind}.timeout_s", strict=True, maximum=SECONDS_MAX,
                        fix="pass seconds such as timeout_s=30, or None for no timeout")
        if not isinstance(self.description, str):
            raise ConfigError(f"{kind}.description must be text, not {shown(self.description)}",
                              argument=f"{kind}.description", fix="describe the node in words")

    @property
    def is_gate(self) -> bool:
        return False


@dataclass
class HumanGate(Node):
    """A node where a human approves or rejects before the run goes on."""

    role: Role | None = Role.HUMAN
    prompt: str = "Approve the content above to continue?"
    content_from: str | None = None
    """Node whose latest output is shown for approval and passed on; default: the inputs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.prompt, str):
            raise ConfigError(f"HumanGate.prompt must be text, not {shown(self.prompt)}",
                              argument="HumanGate.prompt",
                              fix="ask in words, e.g. prompt='Publish this draft?'")
        if self.content_from is not None:
            identifier(self.content_from, "HumanGate.content_from")

    @property
    def is_gate(self) -> bool:
        return True


@dataclass(frozen=True)
class Edge:
    """A dependency from ``source`` to ``target``, optionally guarded by a condition."""

    source: str
    target: str
    condition: str | None = None
    max_iterations: int | None = None
    conditional: bool = False

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.target}"

    def describe(self) -> str:
        """``edge a -> b [condition]``, a long condition cut short (reports quote it)."""
        guard = f" [{_cut(self.condition)}]" if self.condition else ""
        return f"edge {self.label}{guard}"


class Blueprint(Protocol):
    """What every checker and the engine read of a workflow: its name, nodes and edges.

    `WorkflowDefinition` is one; the engine and the checks are typed against this, never
    against the builder, so that the builder can import the engine and not the reverse.
    """

    name: str
    nodes: list[Node]
    edges: list[Edge]


@dataclass
class Topology:
    """Derived structure of a definition's nodes and edges (no validation here)."""

    node_ids: list[str]
    edges: list[Edge]
    loop_edges: list[Edge] = field(default_factory=list)
    forward_edges: list[Edge] = field(default_factory=list)
    out_edges: dict[str, list[Edge]] = field(default_factory=dict)
    forward_in: dict[str, list[Edge]] = field(default_factory=dict)
    bodies: dict[Edge, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, node_ids: Iterable[str], edges: Iterable[Edge]) -> Topology:
        topo = cls(node_ids=list(dict.fromkeys(node_ids)), edges=list(edges))
        known = set(topo.node_ids)
        valid = [e for e in topo.edges if e.source in known and e.target in known]
        guarded = [e for e in valid if e.conditional and e.max_iterations is not None]
        unguarded = [e for e in valid if e not in guarded]
        reach = _reachability(topo.node_ids, unguarded)
        topo.loop_edges = [e for e in guarded if e.source in reach[e.target]]
        topo.forward_edges = [e for e in valid if e not in topo.loop_edges]
        topo.out_edges = _group(valid, key=lambda e: e.source)
        topo.forward_in = _group(topo.forward_edges, key=lambda e: e.target)
        topo.bodies = {e: topo._body(e, reach) for e in topo.loop_edges}
        return topo

    def _body(self, loop: Edge, reach: dict[str, set[str]]) -> frozenset[str]:
        """Nodes a loop re-runs: reachable from its target and reaching its source."""
        return frozenset(
            n for n in reach[loop.target] if loop.source in reach[n]
        )

    @property
    def entries(self) -> list[str]:
        """Nodes with no forward edge into them: they start when the run starts."""
        return [n for n in self.node_ids if not self.forward_in.get(n)]

    @property
    def sinks(self) -> list[str]:
        """Nodes with no forward edge out of them: their outputs are the run's output."""
        has_forward_out = {e.source for e in self.forward_edges}
        return [n for n in self.node_ids if n not in has_forward_out]

    def forward_cycle(self) -> list[str] | None:
        """A cycle made of forward edges, as a node path, or None if they form a DAG."""
        succ = _group(self.forward_edges, key=lambda e: e.source)
        state: dict[str, int] = {}
        for start in self.node_ids:
            cycle = _find_cycle(start, succ, state)
            if cycle:
                return cycle
        return None

    def ancestors(self, node_id: str) -> set[str]:
        """Nodes with a forward path to ``node_id`` (not including itself)."""
        return _walk(node_id, self.forward_in, lambda e: e.source)

    def descendants(self, node_id: str) -> set[str]:
        """Nodes a forward path leads to from ``node_id`` (not including itself)."""
        forward_out = _group(self.forward_edges, key=lambda e: e.source)
        return _walk(node_id, forward_out, lambda e: e.target)


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _role(value: Any, kind: str) -> Role | None:
    """A Role, its value in any case ("critic"), or None."""
    return None if value is None else Role.of(value, f"{kind}.role")


def _risk_tier(value: Any, kind: str) -> RiskTier:
    if isinstance(value, RiskTier):
        return value
    raise ConfigError(f"{kind}.risk_tier {shown(value)} is not a RiskTier",
                      argument=f"{kind}.risk_tier",
                      fix=f"use one of {', '.join('RiskTier.' + t.name for t in RiskTier)}")


def _exports(value: Any, node_id: str) -> tuple[str, ...]:
    """The exported names; one name given as a plain string counts as that one name."""
    names = (value,) if isinstance(value, str) else value
    try:
        names = tuple(names)
    except TypeError:
        raise ConfigError(f"exports of node {node_id!r} must be a list of names, not "
                          f"{shown(value)}", argument="exports",
                          fix="pass e.g. exports=['quality_score']") from None
    for name in names:
        if not _is_variable_name(name):
            raise ConfigError(f"export {shown(name)} of node {node_id!r} is not a valid variable "
                              "name", argument="exports",
                              fix="use letters, digits and underscores, not starting with a "
                                  "digit or '__' (e.g. 'quality_score')")
    return names


def _is_variable_name(name: Any) -> bool:
    return (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
            and not name.startswith("__"))


def _group(edges: Iterable[Edge], key: Callable[[Edge], str]) -> dict[str, list[Edge]]:
    grouped: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        grouped[key(edge)].append(edge)
    return dict(grouped)


def _walk(start: str, edges_of: dict[str, list[Edge]], step: Callable[[Edge], str]) -> set[str]:
    """Every node reached from ``start`` by following ``step`` over ``edges_of``."""
    seen: set[str] = set()
    stack = [step(e) for e in edges_of.get(start, [])]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(step(e) for e in edges_of.get(current, []))
    return seen


def _reachability(node_ids: list[str], edges: list[Edge]) -> dict[str, set[str]]:
    """For each node, the set of nodes reachable from it (itself included)."""
    succ = _group(edges, key=lambda e: e.source)
    return {n: {n} | _walk(n, succ, lambda e: e.target) for n in node_ids}


def _find_cycle(
    start: str, succ: dict[str, list[Edge]], state: dict[str, int]
) -> list[str] | None:
    """Iterative DFS; state 1 = on the stack, 2 = finished. Returns a cycle path."""
    if state.get(start):
        return None
    path = [start]
    iters = [iter(succ.get(start, []))]
    state[start] = 1
    while iters:
        edge = next(iters[-1], None)
        if edge is None:
            state[path.pop()] = 2
            iters.pop()
        elif state.get(edge.target) == 1:
            return [*path[path.index(edge.target):], edge.target]
        elif not state.get(edge.target):
            state[edge.target] = 1
            path.append(edge.target)
            iters.append(iter(succ.get(edge.target, [])))
    return None
