"""Draw a workflow with graphviz, coloured by the state of each node in a run.

`to_dot` builds a `graphviz.Digraph` (pure Python, no binary needed); `render_svg`
runs the real ``dot`` binary on it. The same definition and states always give the
same SVG text, so notebooks that embed it stay clean under version control.

Legend (also in docs/drawing.md):

* role -> shape and border colour (`ROLE_STYLES`); a human gate is an octagon
  labelled "human gate";
* risk tier EXTERNAL_IO and above -> double border and a tier line; IRREVERSIBLE
  also gets a thick border;
* state -> fill colour (`STATE_FILLS`) and text colour (`STATE_TEXT`); skipped nodes
  have a dashed border; `legend_html` is the chips the live view shows under the drawing;
* conditional edges carry their condition; loop edges are dashed, labelled with
  the condition and "max N", and do not constrain the top-down layout.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import graphviz

from ..errors import MeshflowError
from ..model.graph import Edge, Node, Topology
from ..model.roles import RiskTier, Role

INSTALL_HINT = (
    "rendering a workflow needs the Graphviz 'dot' program: install it with "
    "'sudo apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS), "
    "'conda install -c conda-forge graphviz' or from https://graphviz.org/download/, "
    "then restart the kernel")


class GraphvizNotInstalled(MeshflowError, graphviz.ExecutableNotFound):
    """The ``dot`` binary is missing; the message says how to install it.

    Also graphviz's own ExecutableNotFound (a RuntimeError), so code written against
    graphviz catches it too."""

    def __init__(self, message: str = INSTALL_HINT) -> None:
        RuntimeError.__init__(self, message)


@dataclass
class NodeView:
    """What the drawing needs to know about one node so far (a `RunView` keeps one per node)."""

    state: str = "pending"
    iterations: int = 0
    last_event: str | None = None


@dataclass(frozen=True)
class RoleStyle:
    """How one role is drawn: a graphviz shape and a border colour."""

    shape: str
    color: str
    rounded: bool = False


ROLE_STYLES: dict[str, RoleStyle] = {
    Role.RESEARCHER.value: RoleStyle("ellipse", "#1f5fbf"),
    Role.PLANNER.value: RoleStyle("parallelogram", "#7b3fa0"),
    Role.EXECUTOR.value: RoleStyle("box", "#00707a", rounded=True),
    Role.CRITIC.value: RoleStyle("hexagon", "#8c4a1c"),
    Role.ORCHESTRATOR.value: RoleStyle("component", "#2b2b6b"),
    Role.GUARDIAN.value: RoleStyle("invtrapezium", "#4f6b00"),
}
GATE_STYLE = RoleStyle("octagon", "#b8860b")
UNKNOWN_STYLE = RoleStyle("box", "#666666")

STATE_FILLS: dict[str, str] = {
    "pending": "#ffffff",
    "running": "#fff176",
    "done": "#a5d6a7",
    "failed": "#ef9a9a",
    "paused": "#ffb74d",
    "skipped": "#eeeeee",
    "cancelled": "#b0bec5",
    "rejected": "#8b1a1a",
    "blocked": "#8b1a1a",
}
STATE_TEXT: dict[str, str] = {
    state: "#ffffff" if state in ("rejected", "blocked") else "#000000" for state in STATE_FILLS}
"""Text colour on each state's fill (node labels, legend chips): every pair has a
contrast ratio of at least 4.5 (WCAG AA), checked by tests/test_widgets.py."""
DARK_STATES = frozenset(s for s, text in STATE_TEXT.items() if text == "#ffffff")
"""States whose fill is dark enough to need white text."""
STATE_MEANINGS: dict[str, str] = {
    "pending": "not started yet",
    "running": "working now",
    "done": "finished",
    "failed": "stopped with an error",
    "paused": "a gate waiting for a person",
    "skipped": "its branch was not taken",
    "cancelled": "still working when the run ended",
    "rejected": "a person (or the timeout) said no",
    "blocked": "stopped by the policy",
}
"""What each state means, shown when hovering its legend chip."""
LEGEND_BORDER = "#767676"
"""Chip border: visible on white (4.5:1) and on every fill."""

LOOP_COLOR = "#555555"
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def to_dot(definition: Any, states: Mapping[str, NodeView] | None = None) -> graphviz.Digraph:
    """The workflow as a graphviz graph, nodes filled by ``states`` (default: pending)."""
    states = states or {}
    nodes = _unique_nodes(definition.nodes)
    names = {node.id: _dot_name(node.id, i) for i, node in enumerate(nodes)}
    dot = graphviz.Digraph(name=str(getattr(definition, "name", "workflow")))
    dot.attr(rankdir="TB", fontname="Helvetica", bgcolor="white")
    dot.attr("node", fontname="Helvetica", fontsize="11", margin="0.15,0.06")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    for node in nodes:
        dot.node(names[node.id], **_node_attrs(node, states.get(node.id)))
    topo = Topology.of(names, definition.edges)
    loops = set(topo.loop_edges)
    for edge in topo.edges:
        if edge.source in names and edge.target in names:
            attrs = _loop_attrs(edge) if edge in loops else _edge_attrs(edge)
            dot.edge(names[edge.source], names[edge.target], **attrs)
    return dot


def render_svg(definition: Any, states: Mapping[str, NodeView] | None = None) -> str:
    """The workflow drawn as SVG text by the ``dot`` binary (see `to_dot`)."""
    return svg_of(to_dot(definition, states))


def svg_of(dot: graphviz.Digraph) -> str:
    """Any graph as SVG text, laid out by the ``dot`` binary; GraphvizNotInstalled without it."""
    try:
        return dot.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as err:
        raise GraphvizNotInstalled() from err


def legend_html() -> str:
    """What the drawing's fill colours mean: one chip per state, in its own colours.

    The chips sit in a wrapping flex row, so a narrow cell moves chips to a new line
    instead of clipping them.
    """
    chips = "".join(_chip(state) for state in STATE_FILLS)
    return ("<div class='meshflow-legend' style='display:flex;flex-wrap:wrap;gap:4px 6px;"
            f"max-width:100%;font-size:12px;line-height:18px;margin-top:4px'>{chips}</div>")


def _chip(state: str) -> str:
    """One legend chip: the state's name on its fill, in its text colour."""
    border = "dashed" if state == "skipped" else "solid"
    meaning = html.escape(f"{state}: {STATE_MEANINGS.get(state, state)}", quote=True)
    return (f"<span class='meshflow-chip' title='{meaning}' style='display:inline-block;"
            f"white-space:nowrap;background:{STATE_FILLS[state]};color:{STATE_TEXT[state]};"
            f"border:1px {border} {LEGEND_BORDER};border-radius:3px;padding:0 6px'>"
            f"{html.escape(state)}</span>")


def _unique_nodes(nodes: list[Node]) -> list[Node]:
    """First node of each id: a definition pre-flight would reject still draws."""
    seen: dict[str, Node] = {}
    for node in nodes:
        seen.setdefault(str(node.id), node)
    return list(seen.values())


def _dot_name(node_id: str, index: int) -> str:
    """A DOT node name: the id itself when plain, else ``#index`` (':' means a port)."""
    return node_id if _SAFE_NAME.match(node_id) else f"#{index}"


def _label(*lines: str) -> str:
    """A plain (never HTML) label; backslashes and quotes in user text are escaped."""
    return graphviz.nohtml("\\n".join(graphviz.escape(line) for line in lines if line))


def _style_of(node: Node) -> RoleStyle:
    if node.is_gate:
        return GATE_STYLE
    role = node.role.value if isinstance(node.role, Role) else str(node.role or "")
    return ROLE_STYLES.get(role, UNKNOWN_STYLE)


def _node_attrs(node: Node, view: NodeView | None) -> dict[str, str]:
    """Shape and border from role and risk tier; fill and label from the node's state."""
    view = view or NodeView()
    state, iterations = view.state, view.iterations
    style = _style_of(node)
    tier = _tier(node)
    styles = ["filled", *(["rounded"] if style.rounded else []),
              *(["dashed"] if state == "skipped" else [])]
    attrs = {
        "label": _node_label(node, iterations, tier),
        "shape": style.shape,
        "color": style.color,
        "style": ",".join(styles),
        "fillcolor": STATE_FILLS.get(state, STATE_FILLS["pending"]),
        "fontcolor": STATE_TEXT.get(state, STATE_TEXT["pending"]),
        "penwidth": "3" if tier is RiskTier.IRREVERSIBLE else "1.5",
        "tooltip": _tooltip(node, state),
    }
    if tier is not None and tier >= RiskTier.EXTERNAL_IO:
        attrs["peripheries"] = "2"
    return attrs


def _tier(node: Node) -> RiskTier | None:
    tier = node.risk_tier
    return tier if isinstance(tier, RiskTier) else None


def _node_label(node: Node, iterations: int, tier: RiskTier | None) -> str:
    title = f"{node.id} ×{iterations}" if iterations > 1 else str(node.id)
    kind = "human gate" if node.is_gate else (str(node.role) if node.role else "")
    risky = tier is not None and tier >= RiskTier.EXTERNAL_IO and not node.is_gate
    return _label(title, kind, f"[{tier.name}]" if risky and tier is not None else "")


def _tooltip(node: Node, state: str) -> str:
    text = f"{node.id}: {state}" + (f" — {node.description}" if node.description else "")
    return graphviz.escape(text)


def _edge_attrs(edge: Edge) -> dict[str, str]:
    """A forward edge: solid, labelled with its condition when it has one."""
    if not edge.condition:
        return {}
    return {"label": _label(edge.condition), "tooltip": graphviz.escape(edge.condition)}


def _loop_attrs(edge: Edge) -> dict[str, str]:
    """A loop edge: dashed, 'condition (max N)', and no pull on the top-down layout."""
    guard = f"max {edge.max_iterations}"
    return {
        "label": _label(edge.condition or "", guard),
        "style": "dashed",
        "color": LOOP_COLOR,
        "fontcolor": LOOP_COLOR,
        "constraint": "false",
        "tooltip": graphviz.escape(f"loop: {edge.condition or ''} ({guard})"),
    }
