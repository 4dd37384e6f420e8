"""The notebook layer's drawing and run model: real `dot`, real (mock) runs."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from meshflow_nb import EventType, WorkflowDefinition
from meshflow_nb.hitl import fixed_approver
from meshflow_nb.model.graph import Node
from meshflow_nb.model.roles import Role
from meshflow_nb.notebook.drawing import (
    STATE_FILLS,
    STATE_TEXT,
    GraphvizNotInstalled,
    NodeView,
    render_svg,
    to_dot,
)
from meshflow_nb.notebook.runview import RunView
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.skipif(shutil.which("dot") is None,
                                reason="Graphviz 'dot' not installed; ./dev test installs it")
SVG = "{http://www.w3.org/2000/svg}"
CAPSTONE_NODES = ["researcher", "analyst_a", "analyst_b", "writer", "quality_gate",
                  "hitl_gate", "publisher"]


@pytest.fixture(autouse=True)
def _mock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    monkeypatch.delenv("MESHFLOW_HITL", raising=False)


def capstone() -> WorkflowDefinition:
    return build_capstone_pipeline(quality_scores=[0.6, 0.85])


def replay(definition: WorkflowDefinition, events) -> RunView:
    view = RunView(definition)
    for event in events:
        view.apply(event)
    return view


def svg_nodes(svg: str) -> dict[str, ET.Element]:
    """The SVG's node groups by their title (the DOT node name = the node id here)."""
    root = ET.fromstring(svg)
    return {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g")
            if g.get("class") == "node"}


def svg_edges(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g")
            if g.get("class") == "edge"}


def outline(group: ET.Element) -> ET.Element:
    """A node's filled outline: its first polygon, ellipse or path with a fill."""
    tags = {f"{SVG}polygon", f"{SVG}ellipse", f"{SVG}path"}
    return next(el for el in group.iter() if el.tag in tags and el.get("fill") != "none")


def fills(svg: str) -> dict[str, str | None]:
    """Fill colour of each node's outline shape."""
    return {name: outline(group).get("fill") for name, group in svg_nodes(svg).items()}


def test_svg_is_valid_xml_with_every_node_and_escaped_condition():
    svg = render_svg(capstone())
    nodes = svg_nodes(svg)  # parses as XML
    assert set(nodes) == set(CAPSTONE_NODES)
    for node_id in CAPSTONE_NODES:
        assert node_id in svg
    assert "quality_score &lt; 0.8" in svg
    assert "quality_score &gt;= 0.8" in svg
    assert "max 2" in svg


def test_loop_edge_is_dashed_and_does_not_constrain_layout():
    svg = render_svg(capstone())
    edges = svg_edges(svg)
    loop = edges["quality_gate->writer"]
    assert loop.find(f".//{SVG}path").get("stroke-dasharray")
    assert not edges["writer->quality_gate"].find(f".//{SVG}path").get("stroke-dasharray")
    assert 'constraint=false' in to_dot(capstone()).source


def test_gate_and_roles_have_their_own_shapes():
    source = to_dot(capstone()).source
    lines = {line.split()[0]: line for line in source.splitlines()[4:] if "label=" in line
             and "->" not in line}
    assert "shape=octagon" in lines["hitl_gate"] and "human gate" in lines["hitl_gate"]
    shapes = {n: lines[n].split("shape=")[1].split()[0] for n in CAPSTONE_NODES}
    assert len({shapes["researcher"], shapes["writer"], shapes["quality_gate"],
                shapes["hitl_gate"], shapes["publisher"]}) == 5
    assert "peripheries=2" in lines["publisher"] and "EXTERNAL_IO" in lines["publisher"]
    assert "peripheries" not in lines["writer"]
    gate = outline(svg_nodes(render_svg(capstone()))["hitl_gate"])
    assert len(gate.get("points").split()) == 9  # 8 corners + closing point: an octagon


def test_replaying_a_completed_run():
    wf = capstone()
    result = wf.run("t")
    view = replay(wf, result.events)
    for node_id in result.executed:
        assert view.states[node_id].state == "done"
    assert view.states["writer"].iterations == 2
    assert view.states["quality_gate"].iterations == 2
    assert view.states["researcher"].iterations == 1
    assert view.states["publisher"] == NodeView("done", 1, "node_complete")
    assert view.totals["status"] == "completed"
    assert view.totals["cost_usd"] == pytest.approx(result.totals.cost_usd)
    assert view.totals["tokens"] == result.totals.tokens
    assert view.totals["node_executions"] == result.totals.node_executions
    assert view.totals["loop_iterations"] == result.totals.loop_iterations
    assert view.totals["elapsed_s"] >= 0
    assert len(view.rows) == len(result.events)
    assert [r["seq"] for r in view.rows] == [e.seq for e in result.events]
    assert any("quality_score=0.6" in r["detail"] for r in view.rows)


def test_replayed_svg_is_recoloured_and_shows_iterations():
    wf = capstone()
    pending = render_svg(wf)
    done = replay(wf, wf.run("t").events).svg()
    assert fills(pending) != fills(done)
    assert fills(done)["writer"] == STATE_FILLS["done"]
    assert set(fills(pending).values()) == {STATE_FILLS["pending"]}
    assert "writer ×2" in done and "writer ×2" not in pending


def test_rejected_run_stops_at_the_gate():
    wf = capstone()
    result = wf.run("t", approver=fixed_approver(False, "dana"))
    view = replay(wf, result.events)
    assert view.states["hitl_gate"].state == "rejected"
    assert view.states["publisher"].state == "pending"
    assert view.totals["status"] == "rejected_at_gate"
    assert any("reviewer=dana" in r["detail"] for r in view.rows)
    gate = svg_nodes(view.svg())["hitl_gate"]
    assert outline(gate).get("fill") == STATE_FILLS["rejected"]
    labels = list(gate.iter(f"{SVG}text"))
    assert labels and {t.get("fill") for t in labels} == {STATE_TEXT["rejected"]}  # white


@pytest.mark.parametrize(("approve", "final"), [(True, "completed"), (False, "rejected_at_gate")])
def test_a_paused_gate_reads_waiting_for_a_decision(approve, final):
    wf = capstone()
    events = wf.run("t", approver=fixed_approver(approve, "dana")).events
    pause = next(i for i, e in enumerate(events) if e.type is EventType.GATE_PAUSE)
    view = replay(wf, events[: pause + 1])
    assert view.waiting == ["hitl_gate"] and view.totals["status"] == "running"
    assert view.status_text() == "waiting for a decision on hitl_gate"
    assert "status waiting for a decision on hitl_gate" in view.text()
    view.apply(events[pause + 1])  # gate_resume / gate_reject
    assert view.waiting == [] and view.status_text() == "running"
    for event in events[pause + 2:]:
        view.apply(event)
    assert view.status_text() == final


def test_loop_iteration_resets_its_body_to_pending():
    wf = capstone()
    events = wf.run("t").events
    upto = next(i for i, e in enumerate(events) if e.type is EventType.LOOP_ITERATION)
    view = replay(wf, events[: upto + 1])
    assert view.states["writer"] == NodeView("pending", 1, "loop_iteration")
    assert view.states["quality_gate"].state == "pending"
    assert view.states["researcher"].state == "done"


def diamond() -> WorkflowDefinition:
    return (WorkflowDefinition("diamond")
            .add_node(Node("split", lambda ctx: {"x": 1}, Role.PLANNER, exports=["x"]))
            .add_node("left", lambda ctx: "L", role=Role.EXECUTOR)
            .add_node("right", lambda ctx: "R", role=Role.EXECUTOR)
            .add_node("join", lambda ctx: "J", role=Role.ORCHESTRATOR)
            .add_conditional_edge("split", "left", "x > 0")
            .add_conditional_edge("split", "right", 'x <= 0 and "a" != "<b>"')
            .add_edge("left", "join")
            .add_edge("right", "join"))


def test_a_skipped_branch_is_drawn_skipped():
    wf = diamond()
    result = wf.run("t")
    view = replay(wf, result.events)
    assert view.states["right"].state == "skipped"
    assert {view.states[n].state for n in ("split", "left", "join")} == {"done"}
    svg = view.svg()
    assert fills(svg)["right"] == STATE_FILLS["skipped"]
    assert outline(svg_nodes(svg)["right"]).get("stroke-dasharray")
    assert "&quot;a&quot; != &quot;&lt;b&gt;&quot;" in svg  # quotes and <> escaped


def test_render_svg_is_deterministic():
    wf = capstone()
    view = replay(wf, wf.run("t").events)
    assert render_svg(wf) == render_svg(capstone())
    assert view.svg() == render_svg(wf, view.states)


def test_a_200_branch_fan_out_replays():
    wf = WorkflowDefinition("fan").add_node("root", lambda ctx: "r", role=Role.PLANNER)
    for i in range(200):
        wf.add_node(f"b{i}", lambda ctx: "b", role=Role.EXECUTOR).add_edge("root", f"b{i}")
    wf.add_node("join", lambda ctx: "j", role=Role.CRITIC)
    for i in range(200):
        wf.add_edge(f"b{i}", "join")
    result = wf.run("t")
    view = replay(wf, result.events)
    assert {v.state for v in view.states.values()} == {"done"}
    assert view.totals["node_executions"] == 202
    assert view.totals["status"] == "completed"
    assert len(to_dot(wf, view.states).body) > 400


def test_text_lists_every_node_and_the_totals():
    wf = capstone()
    view = replay(wf, wf.run("t").events)
    lines = view.text().splitlines()
    assert len(lines) == len(CAPSTONE_NODES) + 1
    for node_id, line in zip(CAPSTONE_NODES, lines[:-1], strict=True):
        assert line.split()[:2] == [node_id, "done"]
    assert "runs 2" in lines[CAPSTONE_NODES.index("writer")]
    assert "status completed" in lines[-1]


def test_a_run_view_is_an_event_subscriber():
    wf = capstone()
    view = RunView(wf)
    wf.run("t", on_event=view)
    assert view.states["publisher"].state == "done"


def test_odd_node_ids_and_labels_are_escaped():
    wf = (WorkflowDefinition('odd "name"')
          .add_node(Node("a:b", lambda ctx: {"v": 1}, Role.GUARDIAN, exports=["v"],
                         description='quotes " and <tags> \\ backslash'))
          .add_node("c d", lambda ctx: "x", role=None)
          .add_conditional_edge("a:b", "c d", 'v > 0 or "\\" == "<>"'))
    svg = render_svg(wf)
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "a:b" in labels and "c d" in labels
    assert 'v > 0 or "\\" == "<>"' in labels


def test_a_missing_dot_binary_says_how_to_install_graphviz(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GraphvizNotInstalled, match="apt-get install graphviz"):
        render_svg(capstone())
