"""compare_policies and draw_preflight: policies side by side, pre-flight on the graph."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from meshflow_nb import (
    ConfigError,
    HumanGate,
    HumanInLoopConfig,
    Node,
    Policy,
    PolicyMode,
    RiskTier,
    Role,
    WorkflowDefinition,
)
from meshflow_nb.notebook import (
    PolicyComparison,
    PreflightDrawing,
    compare_policies,
    draw_preflight,
)
from meshflow_nb.notebook.drawing import STATE_FILLS
from meshflow_nb.notebook.policy_view import LAYER_FIELDS, caption_lines, problems_by_node
from meshflow_nb.policy.config import FIELDS

MODES = [Policy(mode) for mode in PolicyMode]


def agent(ctx: Any) -> str:
    return "done"


def release(*, gate: bool = True, writer_role: Role | None = Role.EXECUTOR,
            policy: Policy | None = None) -> WorkflowDefinition:
    """writer -> (gate) -> publisher (EXTERNAL_IO)."""
    wf = (WorkflowDefinition("release", policy=policy)
          .add_node(Node("writer", agent, writer_role))
          .add_node(Node("publisher", agent, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO)))
    if not gate:
        return wf.add_edge("writer", "publisher")
    return (wf.add_node(HumanGate("approve")).add_edge("writer", "approve")
              .add_edge("approve", "publisher"))


# --- compare_policies --------------------------------------------------------------------


def test_every_field_belongs_to_one_layer_and_every_layer_to_describe() -> None:
    """A field added to Policy must be placed in a layer, or overrides of it go unmarked."""
    fields = [name for names in LAYER_FIELDS.values() for name in names]
    assert sorted(fields) == sorted(FIELDS) and len(fields) == len(set(fields))
    assert list(compare_policies(Policy()).cells) == [name for name, *_ in Policy()._layers()]


def test_the_modes_side_by_side_follow_describe() -> None:
    table = compare_policies(*MODES)
    assert table.names == ("DEV", "STANDARD", "REGULATED")
    budget = table.cells["budget"]
    assert [cell.on for cell in budget] == [False, True, False]
    assert "$10.00" in budget[1].what and budget[0].what == "no cost cap"
    assert table.cells["guardian"][2].what.endswith("block on a finding")
    assert table.cells["human in the loop"][0].what.startswith("the policy approves every")


def test_regulated_says_what_its_pre_flight_demands() -> None:
    """The demands come from the policy rules themselves, not from a copy of them."""
    table = compare_policies(*MODES)
    assert [cell.demand for cell in table.cells["budget"]] == [
        "", "", "pre-flight needs budget_usd (P003)"]
    assert "(P001)" in table.cells["human in the loop"][2].demand
    assert not table.cells["human in the loop"][1].demand   # STANDARD asks at run time
    audit = table.cells["immutable audit"][2].demand
    assert "(P006)" in audit and "(P007)" in audit
    capped = compare_policies(Policy(PolicyMode.REGULATED, budget_usd=1, carbon_budget_g=5))
    assert not capped.cells["budget"][0].demand and not capped.cells["environmental"][0].demand
    off = compare_policies(Policy(PolicyMode.REGULATED,
                                  human_in_loop=HumanInLoopConfig(enabled=False)))
    assert "(P002)" in off.cells["human in the loop"][0].demand


def test_same_rows_merge_and_overrides_are_marked() -> None:
    standard, cheap = Policy(PolicyMode.STANDARD), Policy(PolicyMode.STANDARD, budget_usd=0.5)
    table = compare_policies(standard, cheap)
    assert table.names == ("STANDARD", "STANDARD + budget_usd")
    assert table.differing() == ["budget"]
    text = str(table)
    assert "  all                    on   screen each node's input" in text
    assert re.search(r"STANDARD \+ budget_usd +on +refuse .*\$0\.50.* \*$", text, re.M)
    html = table._repr_html_()
    assert html.count("colspan='2'") == len(table.layers) - 1 and "<b>*</b>" in html


def test_names_are_made_distinct_or_taken_as_given() -> None:
    twice = compare_policies(Policy(), Policy())
    assert twice.names == ("STANDARD (1)", "STANDARD (2)")
    named = compare_policies(*MODES, names=[" sandbox", "default", "audited"])
    assert named.names == ("sandbox", "default", "audited")
    assert named.frame().columns.tolist() == ["sandbox", "default", "audited"]


def test_the_html_escapes_names_and_keeps_text_left_aligned() -> None:
    html = compare_policies(Policy(), names=["<b>me</b>"])._repr_html_()
    assert "&lt;b&gt;me&lt;/b&gt;" in html and "<b>me</b>" not in html
    assert "text-align:left" in html


@pytest.mark.parametrize(("args", "names", "says"), [
    ((), None, "needs at least one Policy"),
    ((Policy(), "regulated"), None, "argument 2 must be a Policy"),
    ((Policy(),), ["a", "b"], "names must be 1 non-empty strings"),
    ((Policy(),), "ab", "names must be"),
    ((Policy(),), [""], "names must be"),
    ((Policy(),), [math.nan], "names must be"),
    ((Policy(), Policy()), ["a", "a"], "repeat a name"),
])
def test_compare_policies_refuses_what_it_cannot_show(args: tuple, names: Any,
                                                      says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        compare_policies(*args, names=names)


def test_the_comparison_prints_in_a_notebook() -> None:
    table = compare_policies(*MODES)
    assert isinstance(table, PolicyComparison)

    class Printer:
        def __init__(self) -> None:
            self.said = ""

        def text(self, text: str) -> None:
            self.said += text
    printer = Printer()
    table._repr_pretty_(printer, False)
    assert printer.said == str(table)


# --- draw_preflight ----------------------------------------------------------------------


def test_the_drawing_marks_the_nodes_pre_flight_names() -> None:
    drawing = draw_preflight(release(gate=False, writer_role=None), Policy(PolicyMode.REGULATED))
    assert isinstance(drawing, PreflightDrawing)
    assert drawing.marked == {"publisher": ("P001",), "writer": ("P006",)}
    source = drawing.dot.source
    assert source.count(f'fillcolor="{STATE_FILLS["blocked"]}"') == 2
    assert "policy (budget_usd): P003 budget-missing" in source
    assert str(drawing).splitlines()[0] == "pre-flight rejects 'release': 5 problems"


def test_a_passing_workflow_is_drawn_with_nothing_marked() -> None:
    policy = Policy(PolicyMode.STANDARD)
    drawing = draw_preflight(release(policy=policy))
    assert drawing.marked == {} and drawing.report.ok
    assert str(drawing) == "pre-flight passed for 'release': no problems"


def test_the_drawing_renders_svg_with_its_caption() -> None:
    svg = draw_preflight(release(gate=False), Policy(PolicyMode.REGULATED))._repr_svg_()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "P001 ungated" in svg


def test_problems_at_edges_and_the_policy_are_listed_not_marked() -> None:
    wf = release().add_edge("writer", "publsher")
    drawing = draw_preflight(wf)
    assert drawing.marked == {}
    assert caption_lines(drawing.report)[1] == "edge writer -> publsher (target): S010 unknown-node"


def test_node_ids_with_quotes_are_read_back() -> None:
    wf = WorkflowDefinition("odd").add_node(Node("it's", agent, None, RiskTier.EXTERNAL_IO))
    report = wf.preflight(Policy(PolicyMode.REGULATED))
    assert problems_by_node(report.problems) == {"it's": ("P001", "P006")}


@pytest.mark.parametrize(("workflow", "policy", "says"), [
    (None, None, "needs a WorkflowDefinition"),
    ("release", None, "needs a WorkflowDefinition"),
    (release(), "regulated", "policy must be a Policy or None"),
    (release(), PolicyMode.REGULATED, "policy must be a Policy or None"),
])
def test_draw_preflight_refuses_what_it_cannot_draw(workflow: Any, policy: Any,
                                                    says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        draw_preflight(workflow, policy)
