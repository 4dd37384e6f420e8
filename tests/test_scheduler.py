"""Scheduler semantics a learner relies on: overlap, joins, loops, failures, gates."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from meshflow_nb import (
    AgentResult,
    Decision,
    EventType,
    HumanGate,
    Role,
    RunStatus,
    WorkflowDefinition,
)
from meshflow_nb.hitl import fixed_approver
from meshflow_nb.pipelines import build_capstone_pipeline


def sleeper(ms: float, text: str = "ok"):
    async def agent(ctx):
        await asyncio.sleep(ms / 1000)
        return f"{text} from {ctx.node_id}"
    return agent


def constant(**variables):
    return lambda ctx: dict(variables)


def types_of(result) -> list[str]:
    return [e.type.value for e in result.events]


def interval(result, node_id: str) -> tuple[datetime, datetime]:
    times = {e.type: datetime.fromisoformat(e.ts) for e in result.events if e.node_id == node_id}
    return times[EventType.NODE_START], times[EventType.NODE_COMPLETE]


def fan_out(agent_b, agent_c) -> WorkflowDefinition:
    return (WorkflowDefinition("fan")
            .add_node("a", sleeper(0)).add_node("b", agent_b).add_node("c", agent_c)
            .add_node("join", sleeper(0))
            .add_edge("a", "b").add_edge("a", "c").add_edge("b", "join").add_edge("c", "join"))


def test_parallel_coroutine_branches_really_overlap():
    result = fan_out(sleeper(100), sleeper(100)).run("t")
    b_start, b_end = interval(result, "b")
    c_start, c_end = interval(result, "c")
    assert result.status is RunStatus.COMPLETED
    assert c_start < b_end and b_start < c_end, "the two branches ran one after the other"


def test_parallel_plain_function_branches_overlap_in_threads():
    def blocking(ctx):
        time.sleep(0.1)
        return "done"

    result = fan_out(blocking, blocking).run("t")
    b_start, b_end = interval(result, "b")
    c_start, _ = interval(result, "c")
    assert c_start < b_end and b_start < interval(result, "c")[1]


def test_join_waits_for_every_branch_and_sees_both_outputs():
    seen = {}

    def join(ctx):
        seen.update(ctx.inputs)
        return "joined"

    wf = fan_out(sleeper(30, "slow"), sleeper(1, "fast"))
    wf.nodes[-1].agent = join
    result = wf.run("t")
    assert result.executed[-1] == "join"
    assert set(seen) == {"b", "c"}
    assert result.executed.count("join") == 1


def test_capstone_loop_runs_once_when_the_revision_passes():
    result = build_capstone_pipeline(quality_scores=[0.6, 0.85]).run("task")
    assert result.status is RunStatus.COMPLETED
    assert [e for e in types_of(result) if e == "loop_iteration"] == ["loop_iteration"]
    assert result.executed.count("writer") == 2
    assert result.executed.count("quality_gate") == 2
    assert result.executed[-2:] == ["hitl_gate", "publisher"]
    assert result.totals.node_executions == 9


def test_capstone_loop_stops_after_two_revisions_and_proceeds_regardless():
    result = build_capstone_pipeline(quality_scores=[0.5]).run("task")
    assert result.status is RunStatus.COMPLETED
    assert types_of(result).count("loop_iteration") == 2
    exhausted = [e for e in result.events if e.type is EventType.LOOP_EXHAUSTED]
    assert len(exhausted) == 1 and "regardless" in exhausted[0].payload["message"]
    assert result.executed.count("writer") == 3
    assert "publisher" in result.executed


def test_diamond_with_exclusive_conditions_runs_its_join_once():
    wf = (WorkflowDefinition("diamond")
          .add_node("a", constant(x=1), exports=["x"])
          .add_node("b", sleeper(0)).add_node("c", sleeper(0)).add_node("d", sleeper(0))
          .add_conditional_edge("a", "b", "x > 0").add_conditional_edge("a", "c", "x <= 0")
          .add_edge("b", "d").add_edge("c", "d"))
    result = wf.run("t")
    assert result.executed == ["a", "b", "d"]
    skipped = [e.node_id for e in result.events if e.type is EventType.NODE_SKIPPED]
    assert skipped == ["c"]
    assert result.nodes["c"].status == "skipped"


def test_a_cut_branch_skips_everything_that_only_it_feeds():
    wf = (WorkflowDefinition("cut")
          .add_node("a", constant(go=False), exports=["go"])
          .add_node("b", sleeper(0)).add_node("c", sleeper(0))
          .add_conditional_edge("a", "b", "go").add_edge("b", "c"))
    result = wf.run("t")
    assert result.status is RunStatus.COMPLETED
    assert result.executed == ["a"]
    assert {n for n, r in result.nodes.items() if r.status == "skipped"} == {"b", "c"}


def test_self_loop_reruns_the_node_until_its_condition_fails():
    def counter(ctx):
        return {"count": ctx.iteration}

    wf = (WorkflowDefinition("self")
          .add_node("a", counter, exports=["count"]).add_node("end", sleeper(0))
          .add_conditional_edge("a", "a", "count < 3", max_iterations=5)
          .add_edge("a", "end"))
    result = wf.run("t")
    assert result.executed == ["a", "a", "a", "end"]
    assert result.nodes["a"].executions == 3


def test_nested_fan_out_joins_once_after_all_leaves():
    wf = (WorkflowDefinition("nested")
          .add_node("a", sleeper(0)).add_node("b", sleeper(0)).add_node("c", sleeper(20))
          .add_node("b1", sleeper(10)).add_node("b2", sleeper(30)).add_node("d", sleeper(0))
          .add_edge("a", "b").add_edge("a", "c").add_edge("b", "b1").add_edge("b", "b2")
          .add_edge("b1", "d").add_edge("b2", "d").add_edge("c", "d"))
    result = wf.run("t")
    assert result.executed[-1] == "d" and result.executed.count("d") == 1
    assert set(result.executed) == {"a", "b", "c", "b1", "b2", "d"}


def test_fan_in_of_five_with_one_failure_fails_the_run_without_crashing():
    def broken(ctx):
        raise RuntimeError("the upstream API returned 500")

    wf = WorkflowDefinition("five").add_node("start", sleeper(0)).add_node("join", sleeper(0))
    for i in range(5):
        wf.add_node(f"b{i}", broken if i == 2 else sleeper(20)).add_edge("start", f"b{i}")
        wf.add_edge(f"b{i}", "join")
    result = wf.run("t")
    assert result.status is RunStatus.FAILED
    failed = [e for e in result.events if e.type is EventType.NODE_FAILED]
    assert [e.node_id for e in failed] == ["b2"]
    assert "RuntimeError: the upstream API returned 500" in failed[0].payload["error"]
    assert "join" not in result.executed
    assert {f"b{i}" for i in (0, 1, 3, 4)} <= set(result.executed)
    assert "b2" in result.error and types_of(result)[-1] == "run_complete"


def test_running_one_definition_twice_behaves_the_same_twice():
    wf = build_capstone_pipeline(quality_scores=[0.6, 0.85])
    first, second = wf.run("task"), wf.run("task")
    assert sorted(first.executed) == sorted(second.executed)
    assert [e.type for e in first.events] == [e.type for e in second.events]
    assert first.totals.loop_iterations == second.totals.loop_iterations == 1
    assert first.run_id != second.run_id


def test_run_works_inside_an_already_running_event_loop():
    wf = fan_out(sleeper(1), sleeper(1))

    async def notebook_cell():
        return wf.run("t")  # what a Jupyter cell does: sync call, loop running

    result = asyncio.run(notebook_cell())
    assert result.status is RunStatus.COMPLETED


def test_arun_runs_in_the_callers_loop():
    result = asyncio.run(fan_out(sleeper(1), sleeper(1)).arun("t"))
    assert result.executed[-1] == "join"


def test_agent_timeout_is_a_failed_node_with_reason_timeout():
    wf = WorkflowDefinition("slow").add_node("a", sleeper(500), timeout_s=0.05)
    result = wf.run("t")
    assert result.status is RunStatus.FAILED
    failed = next(e for e in result.events if e.type is EventType.NODE_FAILED)
    assert failed.payload["reason"] == "timeout"
    assert "timed out after 0.05 s" in result.error


def test_missing_declared_export_fails_the_node_with_a_fix():
    wf = WorkflowDefinition("x").add_node("a", lambda ctx: "just text", exports=["score"])
    result = wf.run("t")
    assert result.status is RunStatus.FAILED
    assert "declared exports ['score']" in result.error


def test_structured_output_feeds_totals_and_events():
    def agent(ctx):
        return AgentResult(text="hi", variables={"s": 0.9}, tokens_in=100, tokens_out=20,
                           cost_usd=0.01, confidence=0.75, model="m")

    result = WorkflowDefinition("s").add_node("a", agent, exports=["s"]).run("t")
    done = next(e for e in result.events if e.type is EventType.NODE_COMPLETE)
    assert (done.tokens, done.cost_usd, done.uncertainty) == (120, 0.01, 0.25)
    assert done.payload["s"] == 0.9
    assert result.totals.tokens == 120 and result.totals.cost_usd == pytest.approx(0.01)


def test_gate_rejection_stops_before_the_publisher():
    wf = build_capstone_pipeline(quality_scores=[0.9])
    result = wf.run("task", approver=fixed_approver(False, "dana", "facts unchecked"))
    assert result.status is RunStatus.REJECTED_AT_GATE
    assert "publisher" not in result.executed and "writer" in result.executed
    reject = next(e for e in result.events if e.type is EventType.GATE_REJECT)
    assert (reject.payload["reviewer"], reject.payload["reason"]) == ("dana", "facts unchecked")
    assert result.decisions[0].approved is False


def test_gate_approval_passes_the_draft_to_the_publisher():
    seen = {}

    def publisher(ctx):
        seen.update(ctx.inputs)
        return "published"

    wf = build_capstone_pipeline(quality_scores=[0.9], agents={"publisher": publisher})
    result = wf.run("task", approver=fixed_approver(True, "dana"))
    assert result.status is RunStatus.COMPLETED
    assert seen["hitl_gate"] == result.nodes["writer"].output
    assert types_of(result).index("gate_pause") < types_of(result).index("gate_resume")


def test_gate_shows_and_passes_on_the_node_named_by_content_from():
    requests = []

    def approve(request):
        requests.append(request)
        return Decision(True, "dana")

    wf = (WorkflowDefinition("g").add_node("draft", lambda ctx: "the draft")
          .add_node("score", lambda ctx: {"q": 1}, exports=["q"])
          .add_node(HumanGate("gate", content_from="draft")).add_node("pub", lambda ctx: ctx.inputs)
          .add_edge("draft", "score").add_edge("score", "gate").add_edge("gate", "pub"))
    result = wf.run("t", approver=approve)
    assert requests[0].content == "the draft"
    assert result.output == {"gate": "the draft"}


def test_gate_timeout_rejects_with_reason_timeout():
    async def never(request):
        await asyncio.sleep(10)

    wf = (WorkflowDefinition("g").add_node("a", sleeper(0))
          .add_node(HumanGate("gate", timeout_s=0.05)).add_node("b", sleeper(0))
          .add_edge("a", "gate").add_edge("gate", "b"))
    result = wf.run("t", approver=never)
    assert result.status is RunStatus.REJECTED_AT_GATE
    assert result.decisions[0].reason == "timeout"
    assert "b" not in result.executed


def test_headless_decision_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MESHFLOW_HITL", "reject")
    monkeypatch.setenv("MESHFLOW_REVIEWER", "ci-bot")
    result = build_capstone_pipeline(quality_scores=[0.9]).run("task")
    assert result.status is RunStatus.REJECTED_AT_GATE
    assert result.decisions[0].reviewer == "ci-bot"


def test_nested_loop_counter_restarts_on_each_outer_pass():
    def inner(ctx):
        return {"i": ctx.iteration}

    def outer(ctx):
        return {"o": ctx.iteration}

    wf = (WorkflowDefinition("nested-loops")
          .add_node("start", sleeper(0))
          .add_node("inner", inner, exports=["i"]).add_node("outer", outer, exports=["o"])
          .add_edge("start", "inner").add_edge("inner", "outer")
          .add_conditional_edge("inner", "inner", "i < 100", max_iterations=1)
          .add_conditional_edge("outer", "start", "o < 2", max_iterations=3))
    result = wf.run("t")
    # each outer pass: inner runs twice (once + one guarded re-run)
    assert result.executed.count("inner") == 4
    assert result.executed.count("outer") == 2


def test_roles_and_run_ids_appear_on_node_events():
    result = build_capstone_pipeline(quality_scores=[0.9]).run("task")
    starts = [e for e in result.events if e.type is EventType.NODE_START]
    assert {e.role for e in starts} >= {Role.RESEARCHER.value, Role.CRITIC.value}
    assert {e.run_id for e in result.events} == {result.run_id}
