"""Pre-flight: each malformed definition gets its own specific, fixable error."""

from __future__ import annotations

import itertools

import pytest

from meshflow_nb import (
    ConfigError,
    EventType,
    HumanGate,
    Node,
    RiskTier,
    Role,
    RunStatus,
    WorkflowDefinition,
)


def ok(ctx):
    return "ok"


def two_args(ctx, extra):
    return "never"


def wf(*node_ids: str, **exports: list[str]) -> WorkflowDefinition:
    """A workflow with the given nodes (agent `ok`), exports by node id."""
    definition = WorkflowDefinition("broken")
    for node_id in node_ids:
        definition.add_node(node_id, ok, exports=exports.get(node_id, []))
    return definition


def chain(*node_ids: str, **exports: list[str]) -> WorkflowDefinition:
    definition = wf(*node_ids, **exports)
    for a, b in itertools.pairwise(node_ids):
        definition.add_edge(a, b)
    return definition


CASES = {
    "empty workflow": (lambda: WorkflowDefinition("broken"), "S001", "no nodes"),
    "duplicate id": (lambda: wf("a", "a").add_edge("a", "a"), "S002", "2 nodes share"),
    "no agent": (lambda: WorkflowDefinition("broken").add_node(Node("a")), "S004",
                 "no agent"),
    "agent is text": (lambda: WorkflowDefinition("broken").add_node(Node("a", "summarise")),
                      "S005", "is a str"),
    "agent takes two args": (lambda: WorkflowDefinition("broken").add_node("a", two_args),
                             "S005", "one argument"),
    "unknown target": (lambda: wf("writer", "analyst").add_edge("writer", "analsyt"), "S010",
                       "did you mean 'analyst'"),
    "unknown source": (lambda: wf("a").add_edge("ghost", "a"), "S010", "source 'ghost'"),
    "duplicate edge": (lambda: chain("a", "b").add_edge("a", "b"), "S011", "declared 2 times"),
    "max_iterations zero": (lambda: chain("a", "b", a=["x"], b=["x"]).add_conditional_edge(
        "b", "a", "x < 1", max_iterations=0), "S012", "max_iterations=0"),
    "max_iterations negative": (lambda: chain("a", "b", b=["x"]).add_conditional_edge(
        "b", "a", "x < 1", max_iterations=-1), "S012", "max_iterations=-1"),
    "max_iterations fraction": (lambda: chain("a", "b", b=["x"]).add_conditional_edge(
        "b", "a", "x < 1", max_iterations=1.5), "S012", "max_iterations=1.5"),
    "max_iterations bool": (lambda: chain("a", "b", b=["x"]).add_conditional_edge(
        "b", "a", "x < 1", max_iterations=True), "S012", "max_iterations=True"),
    "guard on forward edge": (lambda: wf("a", "b", a=["x"]).add_conditional_edge(
        "a", "b", "x > 1", max_iterations=2), "S013", "leads forward"),
    "incomplete comparison": (lambda: wf("a", "b", a=["x"]).add_conditional_edge(
        "a", "b", "x <"), "S014", "column"),
    "function call": (lambda: wf("a", "b", a=["x"]).add_conditional_edge(
        "a", "b", "len(x) > 2"), "S014", "call"),
    "attribute access": (lambda: wf("a", "b", a=["x"]).add_conditional_edge(
        "a", "b", "x.real > 2"), "S014", "attribute"),
    "empty condition": (lambda: wf("a", "b").add_conditional_edge("a", "b", ""), "S014",
                        "empty"),
    "assignment instead of equality": (lambda: wf("a", "b", a=["x"]).add_conditional_edge(
        "a", "b", "x = 1"), "S014", "=="),
    "misspelt variable": (lambda: wf("a", "b", a=["quality_score"]).add_conditional_edge(
        "a", "b", "quality_scor < 0.8"), "S015", "'quality_scor' is not exported"),
    "variable only downstream": (lambda: chain("a", "b", "c", c=["late"]).add_conditional_edge(
        "a", "c", "late > 1"), "S015", "available: none"),
    "plain cycle": (lambda: chain("a", "b", "c").add_edge("c", "b"), "S016",
                    "b -> c -> b"),
    "loop edge without guard": (lambda: chain("w", "q", q=["s"]).add_conditional_edge(
        "q", "w", "s < 0.8"), "S016", "max_iterations"),
    "plain self edge": (lambda: chain("a", "b").add_edge("b", "b"), "S016", "b -> b"),
    "everything in a cycle": (lambda: chain("a", "b").add_edge("b", "a"), "S017",
                              "nothing can start"),
    "gate shows a node after it": (lambda: chain("a", "gate_in", "b").add_node(
        HumanGate("g", content_from="b")).add_edge("gate_in", "g").add_edge("g", "b"),
        "S020", "content_from='b'"),
    "isolated node": (lambda: chain("a", "b").add_node("orphan", ok), "S018",
                      "'orphan'"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_malformed_definition_gets_its_specific_error(case):
    build, rule, fragment = CASES[case]
    report = build().preflight()
    assert not report.ok
    matching = [p for p in report.problems if p.rule == rule]
    assert matching, f"expected {rule}, got {report.rules}:\n{report}"
    assert any(fragment in f"{p.where} {p.message} {p.fix}" for p in matching), str(report)
    assert all(p.fix for p in report.problems)


BUILT_WRONG = {
    "empty id": (lambda: Node("", ok), "Node.id", "non-empty string"),
    "numeric id": (lambda: Node(7, ok), "Node.id", "not 7"),
    "newline in id": (lambda: Node("a\nb", ok), "Node.id", "U+000A"),
    "NUL in id": (lambda: Node("a\x00", ok), "Node.id", "U+0000"),
    "unit separator in id": (lambda: Node("a\x1fb", ok), "Node.id", "U+001F"),
    "NULL's text as id": (lambda: Node("\\N", ok), "Node.id", "U+005C"),
    "unknown role name": (lambda: Node("a", ok, role="wizard"), "Node.role",
                          "'wizard' is not a Role"),
    "role of wrong type": (lambda: Node("a", ok, role=3), "Node.role", "3 is not a Role"),
    "bad risk tier": (lambda: Node("a", ok, risk_tier="high"), "Node.risk_tier",
                      "not a RiskTier"),
    "zero timeout": (lambda: Node("a", ok, timeout_s=0), "Node.timeout_s", "not 0"),
    "negative timeout": (lambda: Node("a", ok, timeout_s=-5), "Node.timeout_s", "not -5"),
    "text timeout": (lambda: Node("a", ok, timeout_s="30"), "Node.timeout_s", "not '30'"),
    "NaN timeout": (lambda: Node("a", ok, timeout_s=float("nan")), "Node.timeout_s", "nan"),
    "export with space": (lambda: Node("a", ok, exports=["quality score"]), "exports",
                          "'quality score'"),
    "dunder export": (lambda: Node("a", ok, exports=["__class__"]), "exports", "'__class__'"),
    "keyword export": (lambda: Node("a", ok, exports=["if"]), "exports", "'if'"),
    "exports not a list": (lambda: Node("a", ok, exports=3), "exports", "list of names"),
    "gate prompt not text": (lambda: HumanGate("g", prompt=["approve?"]), "HumanGate.prompt",
                             "must be text"),
    "gate content_from blank": (lambda: HumanGate("g", content_from=" "),
                                "HumanGate.content_from", "non-empty"),
}


@pytest.mark.parametrize(("build", "argument", "words"), BUILT_WRONG.values(), ids=BUILT_WRONG)
def test_a_node_built_wrong_is_refused_where_it_is_built(build, argument, words):
    """Field mistakes fail on the line that makes the node, naming the field and the fix."""
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.argument == argument
    assert words in str(caught.value) and caught.value.fix


def test_one_export_given_as_text_is_that_one_export():
    assert Node("critic", ok, exports="quality_score").exports == ("quality_score",)


def test_a_role_name_in_any_case_is_the_role():
    assert Node("a", ok, role="Critic").role.value == "critic"
    assert Node("a", ok, risk_tier=RiskTier.EXTERNAL_IO).risk_tier is RiskTier.EXTERNAL_IO


def test_a_huge_condition_is_quoted_short_in_the_report():
    huge = "quality_score < 0.8 and " + "x " * 500_000
    report = chain("a", "b", a=["quality_score"]).add_conditional_edge(
        "a", "b", huge).preflight()
    assert not report.ok and len(str(report)) < 2_000


def test_there_are_at_least_thirty_distinct_malformed_definitions():
    assert len(CASES) + len(BUILT_WRONG) >= 30
    assert len({rule for _, rule, _ in CASES.values()}) >= 12


def test_every_problem_is_reported_at_once():
    definition = (WorkflowDefinition("many")
                  .add_node("a", ok).add_node("a", ok).add_node("b")
                  .add_edge("a", "nowhere").add_conditional_edge("a", "b", "len(x)"))
    report = definition.preflight()
    assert {"S002", "S004", "S010", "S014"} <= set(report.rules)


def test_bad_headless_approval_setting_is_a_preflight_problem(monkeypatch):
    monkeypatch.setenv("MESHFLOW_HITL", "maybe")
    definition = chain("a").add_node(HumanGate("gate")).add_edge("a", "gate")
    report = definition.preflight()
    assert report.rules == ["S019"]
    assert "'maybe'" in str(report)


def test_a_rejected_definition_runs_no_node():
    calls = []

    def recording(ctx):
        calls.append(ctx.node_id)
        return "ran"

    definition = (WorkflowDefinition("rejected").add_node("a", recording)
                  .add_node("b", recording).add_edge("a", "b").add_edge("b", "missing"))
    result = definition.run("t")
    assert calls == []
    assert result.status is RunStatus.REJECTED_PREFLIGHT
    assert [e.type for e in result.events] == [
        EventType.RUN_START, EventType.PREFLIGHT_REJECTED, EventType.RUN_COMPLETE]
    assert result.events[1].payload["problems"][0]["rule"] == "S010"


def test_the_report_reads_well_for_a_learner():
    text = str(chain("a", "b").add_edge("b", "c").preflight())
    assert text.startswith("Pre-flight rejected workflow 'broken': 1 problem. No node was run.")
    assert "[S010 unknown-node] edge b -> c (target): target 'c' is not a node" in text
    assert "fix:" in text


def test_a_valid_definition_passes():
    report = chain("a", "b", b=["x"]).add_conditional_edge("b", "a", "x < 1",
                                                           max_iterations=2).preflight()
    assert report.ok, str(report)
    assert "passed" in str(report)


def test_a_misspelt_variable_gets_a_did_you_mean() -> None:
    wf = (WorkflowDefinition("typo")
          .add_node("writer", lambda ctx: "draft", role=Role.EXECUTOR)
          .add_node("critic", lambda ctx: {"quality_score": 0.9}, role=Role.CRITIC,
                    exports=["quality_score"])
          .add_node("gate", lambda ctx: "ok", role=Role.EXECUTOR)
          .add_edge("writer", "critic")
          .add_conditional_edge("critic", "gate", "qualty_score >= 0.8"))
    [problem] = [p for p in wf.preflight().problems if p.rule == "S015"]
    assert "did you mean 'quality_score'?" in problem.fix


@pytest.mark.parametrize("condition", [["quality_score < 0.8"], {"x": 1}, 0.8, None])
def test_a_condition_that_is_not_text_is_refused_where_it_is_written(condition) -> None:
    wf = WorkflowDefinition("w").add_node("a", lambda ctx: "x").add_node("b", lambda ctx: "y")
    with pytest.raises(ConfigError, match="condition must be text") as caught:
        wf.add_conditional_edge("a", "b", condition)
    assert caught.value.argument == "condition" and not wf.edges
