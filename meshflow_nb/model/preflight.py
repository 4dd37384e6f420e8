"""Structural pre-flight: every problem of a definition, found before any node runs.

Each `Problem` carries a rule id, where it is (a node or an edge), the field involved,
what is wrong and how to fix it. `str(report)` is what a learner reads.
"""

from __future__ import annotations

import difflib
import inspect
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events import plural
from .conditions import ConditionSyntaxError, parse_condition
from .graph import Blueprint, Edge, Node, Topology


@dataclass(frozen=True)
class Problem:
    """One pre-flight violation."""

    rule: str
    name: str
    where: str
    message: str
    fix: str
    field: str | None = None

    def __str__(self) -> str:
        on = f" ({self.field})" if self.field else ""
        return f"[{self.rule} {self.name}] {self.where}{on}: {self.message}\n    fix: {self.fix}"


@dataclass
class PreflightReport:
    """All problems found; ``ok`` when there are none."""

    workflow: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rules(self) -> list[str]:
        return [p.rule for p in self.problems]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"Pre-flight passed for workflow '{self.workflow}': no problems found."
        count = len(self.problems)
        head = (
            f"Pre-flight rejected workflow '{self.workflow}': {plural(count, 'problem')}. "
            "No node was run."
        )
        return "\n".join([head, *(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def to_dict(self) -> dict[str, Any]:
        problems = [asdict(p) for p in self.problems]
        return {"workflow": self.workflow, "ok": self.ok, "problems": problems}


def check_structure(definition: Blueprint) -> PreflightReport:
    """Run every structural rule and collect all problems."""
    report = PreflightReport(definition.name)
    nodes, edges = definition.nodes, definition.edges
    topology = Topology.of((n.id for n in nodes), edges)
    for check in (_node_problems, _edge_problems, _gate_problems, _shape_problems):
        report.problems.extend(check(nodes, edges, topology))
    return report


# --- nodes ---------------------------------------------------------------------


def _node_problems(nodes: list[Node], edges: list[Edge], topo: Topology) -> Iterator[Problem]:
    if not nodes:
        yield Problem("S001", "empty-workflow", "workflow", "it has no nodes.",
                      "add at least one node with add_node(...).")
    counts = Counter(n.id for n in nodes)
    for node_id in (i for i, c in counts.items() if c > 1):
        yield Problem("S002", "duplicate-node-id", f"node '{node_id}'",
                      f"{counts[node_id]} nodes share this id.",
                      "give every node its own id.", field="id")
    for node in nodes:
        yield from _one_node_problems(node)


def _one_node_problems(node: Node) -> Iterator[Problem]:
    """What a node can still get wrong after construction (which checked its fields)."""
    if not node.is_gate:
        yield from _agent_problems(node, f"node '{node.id}'")


def _agent_problems(node: Node, where: str) -> Iterator[Problem]:
    if node.agent is None:
        yield Problem("S004", "missing-agent", where, "it has no agent to run.",
                      "pass agent=<function or coroutine taking the node context>, "
                      "or use HumanGate for a human decision.", field="agent")
    elif not callable(node.agent):
        yield Problem("S005", "agent-not-callable", where,
                      f"its agent is a {type(node.agent).__name__}, not a function.",
                      "pass a function or coroutine function that takes one argument (ctx).",
                      field="agent")
    elif not _accepts_one_argument(node.agent):
        yield Problem("S005", "agent-not-callable", where,
                      "its agent cannot be called with one argument (the node context).",
                      "define it as def agent(ctx): ... or async def agent(ctx): ...",
                      field="agent")


# --- edges ---------------------------------------------------------------------


def _edge_problems(nodes: list[Node], edges: list[Edge], topo: Topology) -> Iterator[Problem]:
    known = [n.id for n in nodes]
    counts = Counter((e.source, e.target) for e in edges)
    for (source, target) in (k for k, c in counts.items() if c > 1):
        yield Problem("S011", "duplicate-edge", f"edge {source} -> {target}",
                      f"this edge is declared {counts[(source, target)]} times.",
                      "declare each edge once; put both conditions in one with 'or'.")
    loop_edges = set(topo.loop_edges)
    for edge in edges:
        yield from _endpoint_problems(edge, known)
        yield from _guard_problems(edge, loop_edges)
        if edge.conditional:
            yield from _condition_problems(edge, nodes, topo)


def _endpoint_problems(edge: Edge, known: list[str]) -> Iterator[Problem]:
    for end in ("source", "target"):
        node_id = getattr(edge, end)
        if node_id not in known:
            yield Problem("S010", "unknown-node", edge.describe(),
                          f"{end} {node_id!r} is not a node of this workflow.",
                          _did_you_mean(node_id, known, "add that node first with add_node(...)"),
                          field=end)


def _guard_problems(edge: Edge, loop_edges: set[Edge]) -> Iterator[Problem]:
    limit = edge.max_iterations
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        yield Problem("S012", "invalid-max-iterations", edge.describe(),
                      f"max_iterations={limit!r}; it must be a whole number of at least 1.",
                      "use e.g. max_iterations=2 (the loop may re-run its nodes twice).",
                      field="max_iterations")
    elif edge not in loop_edges:
        yield Problem("S013", "guard-on-forward-edge", edge.describe(),
                      "max_iterations only applies to an edge that loops back, and this "
                      "edge leads forward.",
                      "remove max_iterations, or point the edge back at an earlier node.",
                      field="max_iterations")


def _condition_problems(edge: Edge, nodes: list[Node], topo: Topology) -> Iterator[Problem]:
    try:
        condition = parse_condition(edge.condition or "")
    except ConditionSyntaxError as err:
        caret = str(err).split("\n", 1)[-1].replace("\n", "\n    ")
        yield Problem("S014", "condition-syntax", edge.describe(),
                      f"the condition does not parse:\n    {caret}",
                      "see docs/conditions.md for what a condition may contain.",
                      field="condition")
        return
    exporters = _exported_upstream(edge.source, nodes, topo)
    for name in sorted(condition.names - set(exporters)):
        yield Problem("S015", "unknown-variable", edge.describe(),
                      f"'{name}' is not exported by '{edge.source}' or any node before it "
                      f"(available: {', '.join(sorted(exporters)) or 'none'}).",
                      _did_you_mean(name, sorted(exporters),
                                    f"declare exports=['{name}'] on the node that produces "
                                    "it, or fix the spelling."), field="condition")


def _exported_upstream(source: str, nodes: list[Node], topo: Topology) -> set[str]:
    upstream = topo.ancestors(source) | {source}
    return {name for n in nodes if n.id in upstream for name in n.exports}


# --- whole-graph shape ---------------------------------------------------------


def _gate_problems(nodes: list[Node], edges: list[Edge], topo: Topology) -> Iterator[Problem]:
    for gate in (n for n in nodes if n.is_gate and n.content_from is not None):
        upstream = sorted(topo.ancestors(gate.id)) if gate.id in topo.node_ids else []
        if gate.content_from not in upstream:
            yield Problem("S020", "gate-content-not-upstream", f"node '{gate.id}'",
                          f"content_from={gate.content_from!r} is not a node that runs "
                          "before this gate, so there is nothing to show the reviewer.",
                          _did_you_mean(gate.content_from, upstream,
                                        "name a node that has a path to the gate."),
                          field="content_from")


def _shape_problems(nodes: list[Node], edges: list[Edge], topo: Topology) -> Iterator[Problem]:
    cycle = topo.forward_cycle()
    if cycle:
        yield _cycle_problem(cycle, edges)
    if nodes and not topo.entries:
        yield Problem("S017", "no-entry-node", "workflow",
                      "every node has an edge into it, so nothing can start.",
                      "make sure at least one node has no incoming (non-loop) edge.")
    if len(topo.node_ids) > 1:
        connected = {e.source for e in topo.edges} | {e.target for e in topo.edges}
        for node_id in topo.node_ids:
            if node_id not in connected:
                yield Problem("S018", "unreachable-node", f"node '{node_id}'",
                              "no edge leads to it or from it, so it is not part of the flow.",
                              f"connect it, e.g. add_edge('<previous node>', '{node_id}'), "
                              "or remove it.")


def _cycle_problem(cycle: list[str], edges: list[Edge]) -> Problem:
    closing = next(e for e in edges if (e.source, e.target) == (cycle[-2], cycle[-1]))
    path = " -> ".join(cycle)
    if closing.conditional:
        fix = (f"give the loop edge {closing.label} a guard: "
               "add_conditional_edge(..., max_iterations=2).")
    else:
        fix = (f"replace add_edge('{closing.source}', '{closing.target}') with "
               "add_conditional_edge(source=..., target=..., condition=..., max_iterations=N).")
    return Problem("S016", "unguarded-cycle", f"edge {closing.label}",
                   f"the edges {path} form a cycle with no max_iterations guard, "
                   "so the run could loop forever.", fix)


# --- small predicates ----------------------------------------------------------


def _did_you_mean(name: Any, known: list[str], otherwise: str) -> str:
    close = difflib.get_close_matches(str(name), known, n=1)
    return f"did you mean '{close[0]}'?" if close else otherwise


def _accepts_one_argument(agent: Any) -> bool:
    try:
        inspect.signature(agent).bind(object())
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: trust them
        return True
    return True
