"""Lesson 09's self-checks, judged against real mock runs as the lesson makes them, and the
uncertainty table and chart they read.

Each check gets right answers (PASS), wrong answers, values of the wrong type, filler
and huge values (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import (
    AgentResult,
    ConfigError,
    HumanInLoopConfig,
    Node,
    Policy,
    ReplayLedger,
    RiskTier,
    Role,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.notebook import plot_uncertainty, selfcheck, uncertainty_table
from meshflow_nb.notebook.selfcheck.uncertainty import SITUATIONS
from meshflow_nb.pipelines import build_capstone_pipeline

APPROVE = fixed_approver(True, "tester", "approved in a test")
REJECT = fixed_approver(False, "tester", "rejected in a test")
EX1_TASK = "Assess heat pumps for older homes and write a brief"
EX1_PASSING = ((0.217, 0.9), (0.25, 0.5), (0.29, 0.3), (0.22, 1.0))
"""Thresholds under which exactly one execution of exercise 1's run escalates: its most
uncertain is quality_gate's first review (0.291), the next analyst_b (0.217)."""
WATERPROOF = "Is the X200 waterproof to 50 m?"
HUGE = "x" * 1_000_000
RIGHT_CHOICES = {key: right for key, (right, _) in SITUATIONS.items()}
RULE = ("Escalate when a person who can judge the output is there to answer in time; block "
        "when nobody would answer or there is nothing a reviewer could check.")
SITUATION_TEXT = {key: f"situation {key}, described at length" for key in SITUATIONS}


def outbox(ctx: Any) -> str:
    return "Queued: " + " | ".join(map(str, ctx.inputs.values()))


def confident(confidence: float | None = None, **result: Any) -> Any:
    """An agent that answers with this confidence (or the AgentResult fields given)."""
    def agent(ctx: Any) -> AgentResult:
        return AgentResult(text="Yes, it is waterproof.", confidence=confidence, **result)
    return agent


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Exercise 1's capstone under many thresholds, and exercise 2's ledgers, one per agent."""
    base = tmp_path_factory.mktemp("uncertainty")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        capstone = build_capstone_pipeline()

        def ex1(escalate: float, block: float, task: str = EX1_TASK) -> Any:
            return capstone.run(task, approver=APPROVE, policy=Policy(
                uncertainty_escalate=escalate, uncertainty_block=block))

        def ex2(agent: Any, policy: Policy | None = None) -> ReplayLedger:
            ledger = ReplayLedger(str(base / f"ex2-{len(found.ex2)}.duckdb"))
            ledger.attach(WorkflowDefinition("unsure_reply")
                          .add_node(Node("unsure", agent, Role.RESEARCHER, RiskTier.READ_ONLY))
                          .add_node(Node("outbox", outbox, Role.ORCHESTRATOR))
                          .add_edge("unsure", "outbox")).run(
                WATERPROOF, policy=policy or Policy(), approver=APPROVE)
            found.ex2[len(found.ex2)] = ledger
            return ledger

        found = SimpleNamespace(ex2={})
        found.ex1 = {pair: ex1(*pair) for pair in (*EX1_PASSING, (0.7, 0.9), (0.2, 0.9),
                                                   (0.2, 0.25), (0.1, 0.1))}
        found.ex1_other_task = ex1(0.25, 0.9, task="Assess something else and write a brief")
        found.blocked = ex2(confident(0.05))
        found.escalated = ex2(confident(0.2))
        found.passed = ex2(confident(0.9))
        found.silent = ex2(lambda ctx: "Yes, it is waterproof.")
        found.failing = ex2(lambda ctx: AgentResult(text="yes", confidence=5))
        found.other_policy = ex2(confident(0.05), Policy(uncertainty_block=0.95))
        found.empty = ReplayLedger(str(base / "empty.duckdb"))
        yield found


def seq_of(ledger: ReplayLedger, event_type: str) -> int:
    """The seq of the run's first entry of this type."""
    frame = ledger.to_dataframe()
    return int(frame[frame.event_type == event_type].seq.iloc[0])


# --- exercise 1: one_escalation ---------------------------------------------------------


@pytest.mark.parametrize("pair", EX1_PASSING)
def test_thresholds_with_one_escalation_pass(runs: SimpleNamespace, pair: tuple) -> None:
    verdict = selfcheck.one_escalation(runs.ex1[pair], EX1_TASK, ex1_escalate=pair[0],
                                       ex1_block=pair[1])
    assert_pass(verdict, "exactly one node escalated: quality_gate (uncertainty 0.291",
                "the next most uncertain, analyst_b at 0.217, passed", "the run completed")


@pytest.mark.parametrize(("pair", "says"), [
    ((0.7, 0.9), "no node escalated: every uncertainty in your run is at or below your "
                 "ex1_escalate of 0.7"),
    ((0.2, 0.9), "2 node executions escalated (analyst_b, quality_gate)"),
    ((0.2, 0.25), "the layer blocked quality_gate (uncertainty 0.291 is above your ex1_block"),
    ((0.1, 0.1), "the layer blocked researcher"),
])
def test_wrong_thresholds_get_hints(runs: SimpleNamespace, pair: tuple, says: str) -> None:
    verdict = selfcheck.one_escalation(runs.ex1[pair], EX1_TASK, ex1_escalate=pair[0],
                                       ex1_block=pair[1])
    assert_hint(verdict, says)


def test_exercise_1_reads_the_run_of_the_learners_thresholds(runs: SimpleNamespace) -> None:
    run = runs.ex1[(0.25, 0.5)]
    assert_hint(selfcheck.one_escalation(run, EX1_TASK, ex1_escalate=0.26, ex1_block=0.5),
                "comes from other thresholds than yours")
    assert_hint(selfcheck.one_escalation(runs.ex1_other_task, EX1_TASK, ex1_escalate=0.25,
                                         ex1_block=0.9), "another task than EX1_TASK")
    assert_hint(selfcheck.one_escalation(None, EX1_TASK, ex1_escalate=0.25, ex1_block=0.9),
                "run the cell after your answer")
    assert_hint(selfcheck.one_escalation(None, EX1_TASK, ex1_escalate=0.9, ex1_block=0.5),
                "ex1_escalate (0.9) is above ex1_block (0.5)")


@pytest.mark.parametrize(("value", "says"), [
    ("0.25", "not the text '0.25': drop the quotes"),
    ("25%", "drop the quotes and the %"),
    (25, "write it as a fraction from 0 to 1 (25% is 0.25)"),
    (-0.1, "should be from 0 (sure) to 1 (no idea)"),
    (1000.0, "should be from 0 (sure) to 1 (no idea)"),
    (float("nan"), "should be a number from 0 to 1"),
    (True, "should be a number from 0 to 1"),
    (HUGE, "should be a number from 0 to 1"),
    *[(junk, "ex1_escalate") for junk in WRONG_TYPES if junk is not None
      and not isinstance(junk, (float, bool))],
])
def test_exercise_1_junk_is_a_hint(runs: SimpleNamespace, value: Any, says: str) -> None:
    verdict = selfcheck.one_escalation(runs.ex1[(0.25, 0.5)], EX1_TASK, ex1_escalate=value,
                                       ex1_block=0.9)
    assert_hint(verdict, says)
    assert len(verdict.message) < 400


def test_exercise_1_takes_numpy_numbers(runs: SimpleNamespace) -> None:
    assert_pass(selfcheck.one_escalation(runs.ex1[(0.25, 0.5)], EX1_TASK,
                                         ex1_escalate=np.float64(0.25), ex1_block=np.float32(0.5)))


def test_exercise_1_unanswered_and_unrun(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.one_escalation(None, EX1_TASK, ex1_escalate=None, ex1_block=None),
                "set ex1_escalate")
    assert_hint(selfcheck.one_escalation("a run", EX1_TASK, ex1_escalate=0.2, ex1_block=0.9),
                "ex1_result should be the result of a run")


# --- exercise 2: node_blocked -----------------------------------------------------------


def test_a_blocked_node_read_right_passes(runs: SimpleNamespace) -> None:
    ledger = runs.blocked
    seq = seq_of(ledger, "node_blocked")
    verdict = selfcheck.node_blocked(ledger, unsure_agent=confident(0.05), blocked_seq=seq,
                                     blocked_uncertainty=0.95)
    assert_pass(verdict, f"node_blocked at seq {seq} stopped the run before outbox started",
                "uncertainty 0.950, above the block threshold 0.9",
                "unsure is too uncertain (0.95 > 0.90)")
    assert_pass(selfcheck.node_blocked(ledger, unsure_agent=confident(0.05),
                                       blocked_seq=np.int64(seq),
                                       blocked_uncertainty=np.float64(0.9502)))


@pytest.mark.parametrize(("agent", "says"), [
    ("escalated", "your node escalated instead: its uncertainty 0.800 is above escalate (0.7)"),
    ("passed", "your node passed: its uncertainty 0.100 is not above escalate"),
    ("silent", "your agent reported no uncertainty, so the layer had nothing to judge"),
    ("failing", "your agent failed instead of answering"),
    ("other_policy", "was not made under Policy()"),
])
def test_an_agent_that_is_not_blocked_gets_a_hint(runs: SimpleNamespace, agent: str,
                                                  says: str) -> None:
    verdict = selfcheck.node_blocked(getattr(runs, agent), unsure_agent=confident(0.1),
                                     blocked_seq=3, blocked_uncertainty=0.95)
    assert_hint(verdict, says)


@pytest.mark.parametrize(("seq", "value", "says"), [
    (2, 0.95, "blocked_seq: seq 2 is the run's node_start entry; find the node_blocked one"),
    (99, 0.95, "your run has no entry with seq 99"),
    (None, 0.05, "that is the confidence; the event carries the uncertainty"),
    (None, 0.9, "that is the block threshold"),
    (None, 0.5, "read the uncertainty field of the node_blocked entry"),
])
def test_a_wrong_reading_of_the_event_gets_a_hint(runs: SimpleNamespace, seq: int | None,
                                                  value: float, says: str) -> None:
    ledger = runs.blocked
    verdict = selfcheck.node_blocked(ledger, unsure_agent=confident(0.05),
                                     blocked_seq=seq_of(ledger, "node_blocked") if seq is None
                                     else seq, blocked_uncertainty=value)
    assert_hint(verdict, says, hides=seq_of(ledger, "node_blocked") if seq else None)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("unsure_agent", "def unsure_agent(ctx): ...", "should be a function of one argument"),
    ("unsure_agent", AgentResult, "should be a function of one argument"),
    ("blocked_seq", "3", "drop the quotes"),
    ("blocked_seq", 3.0, "should be a whole number"),
    ("blocked_seq", -3, "cannot be negative"),
    ("blocked_uncertainty", "0.95", "drop the quotes"),
    ("blocked_uncertainty", 95, "95% is 0.95"),
    *[("blocked_seq", junk, "blocked_seq") for junk in WRONG_TYPES if junk is not None],
    *[("blocked_uncertainty", junk, "blocked_uncertainty") for junk in WRONG_TYPES
      if junk is not None and not isinstance(junk, float)],
    ("blocked_seq", HUGE, "should be a whole number"),
])
def test_exercise_2_junk_is_a_hint(runs: SimpleNamespace, name: str, value: Any,
                                   says: str) -> None:
    answers = {"unsure_agent": confident(0.05), "blocked_seq": 3, "blocked_uncertainty": 0.95,
               name: value}
    verdict = selfcheck.node_blocked(runs.blocked, **answers)
    assert_hint(verdict, says)
    assert len(verdict.message) < 400


def test_exercise_2_without_a_run(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.node_blocked(runs.empty, unsure_agent=confident(0.05), blocked_seq=3,
                                       blocked_uncertainty=0.95), "ex2_ledger has no run yet")
    assert_hint(selfcheck.node_blocked(runs.blocked, unsure_agent=None, blocked_seq=None,
                                       blocked_uncertainty=None), "set unsure_agent")


# --- exercise 3: escalate_or_block ------------------------------------------------------


def test_the_right_choices_and_a_rule_pass() -> None:
    verdict = selfcheck.escalate_or_block(SITUATION_TEXT, ex3_choices=RIGHT_CHOICES,
                                          ex3_rule=RULE)
    assert_pass(verdict, "escalate where a person who can judge the output is there to answer "
                         "(editor_at_desk, shelf_check)", "(night_batch, pure_guess)")
    shouted = {key: value.upper() for key, value in RIGHT_CHOICES.items()}
    assert_pass(selfcheck.escalate_or_block(SITUATION_TEXT, ex3_choices=shouted, ex3_rule=RULE))


@pytest.mark.parametrize("key", list(SITUATIONS))
def test_each_wrong_choice_points_at_its_situation(key: str) -> None:
    choices = dict(RIGHT_CHOICES)
    choices[key] = "block" if choices[key] == "escalate" else "escalate"
    verdict = selfcheck.escalate_or_block(SITUATION_TEXT, ex3_choices=choices, ex3_rule=RULE)
    assert_hint(verdict, f"{key}: ", hides=RIGHT_CHOICES[key])


def test_all_escalate_names_the_first_wrong_and_counts_the_rest() -> None:
    verdict = selfcheck.escalate_or_block(
        SITUATION_TEXT, ex3_choices=dict.fromkeys(SITUATIONS, "escalate"), ex3_rule=RULE)
    assert_hint(verdict, "night_batch: who would answer at 3 a.m.?", "1 other choice")


@pytest.mark.parametrize(("choices", "rule", "says"), [
    ({**RIGHT_CHOICES, "night_batch": None}, RULE, "choose escalate or block for night_batch"),
    ({**RIGHT_CHOICES, "night_batch": "ask"}, RULE, "should be one of 'escalate' or 'block'"),
    ({**RIGHT_CHOICES, "lunch": "block"}, RULE, "'lunch', which is not a situation"),
    (RIGHT_CHOICES, "Escalate when it is cheap, block when it is risky.",
     "is too short"),
    (RIGHT_CHOICES, "Escalation is better for low stakes outputs because blocking stops the "
                    "whole workflow run entirely.", "should say who an escalation asks"),
    (RIGHT_CHOICES, "Escalate to a human when the stakes are low and the whole workflow "
                    "should not stop for one node.", "can they judge the output"),
    (["escalate", "block"], RULE, "ex3_choices should be a dict"),
    *[(RIGHT_CHOICES, filler, "ex3_rule") for filler in FILLER if filler.strip()],
    (RIGHT_CHOICES, HUGE, "ex3_rule"),
    *[(junk, RULE, "ex3_choices") for junk in WRONG_TYPES if junk is not None],
])
def test_exercise_3_wrong_and_junk_answers_get_hints(choices: Any, rule: Any, says: str) -> None:
    verdict = selfcheck.escalate_or_block(SITUATION_TEXT, ex3_choices=choices, ex3_rule=rule)
    assert_hint(verdict, says)
    assert len(verdict.message) < 400


def test_exercise_3_needs_the_lessons_situations() -> None:
    assert_hint(selfcheck.escalate_or_block({"a": "b"}, ex3_choices=RIGHT_CHOICES, ex3_rule=RULE),
                "EX3_SITUATIONS is not the exercise's")
    assert_hint(selfcheck.escalate_or_block(SITUATION_TEXT, ex3_choices=None, ex3_rule=""),
                "set ex3_choices")


# --- the table and the chart the checks read --------------------------------------------


def test_the_table_has_a_row_per_agent_execution_with_the_layers_verdict(
        runs: SimpleNamespace) -> None:
    table = uncertainty_table(runs.ex1[(0.25, 0.5)])
    assert list(table.node) == ["researcher", "analyst_a", "analyst_b", "writer",
                                "quality_gate", "writer", "quality_gate", "publisher"]
    assert list(table.iteration) == [1, 1, 1, 1, 1, 2, 2, 1]
    assert table.verdict.tolist().count("escalated, approved by tester") == 1
    assert (table.confidence + table.uncertainty - 1).abs().max() < 1e-9
    blocked = uncertainty_table(runs.blocked.events(runs.blocked.runs().run_id.iloc[0]))
    assert blocked.to_dict("records") == [{"seq": 3, "node": "unsure", "iteration": 1,
                                           "role": "researcher", "uncertainty": 0.95,
                                           "confidence": 0.05, "verdict": "blocked"}]


def test_the_table_says_rejected_not_reported_and_layer_off(tmp_path: Path) -> None:
    flow = (WorkflowDefinition("two").add_node(Node("unsure", confident(0.2), Role.RESEARCHER))
            .add_node(Node("quiet", lambda ctx: "text", Role.EXECUTOR)).add_edge("unsure", "quiet"))
    rejected = flow.run("q", policy=Policy(), approver=REJECT)
    assert uncertainty_table(rejected).verdict.tolist() == ["escalated, rejected by tester"]
    off = flow.run("q", policy=Policy(enable_uncertainty=False))
    assert uncertainty_table(off).verdict.tolist() == ["layer off", "not reported"]
    unattended = flow.run("q", policy=Policy(human_in_loop=HumanInLoopConfig(enabled=False)))
    assert uncertainty_table(unattended).verdict.tolist() == ["escalated, approved by policy",
                                                              "not reported"]


def test_the_chart_prints_the_zones_and_tries_other_thresholds(runs: SimpleNamespace) -> None:
    run = runs.ex1[(0.7, 0.9)]
    printed = plot_uncertainty(run).text()
    assert printed.splitlines()[0] == "escalate above 0.7, block above 0.9"
    assert "quality_gate      0.291  passed  (passes)" in printed
    tried = plot_uncertainty(run, escalate=0.2, block=0.25).text()
    assert "quality_gate      0.291  passed  (blocks)" in tried
    assert "analyst_b         0.217  passed  (escalates)" in tried
    with pytest.raises(ConfigError, match="escalate"):
        plot_uncertainty(run, escalate=0.5, block=0.4)
    with pytest.raises(ConfigError, match="an uncertainty chart is drawn from a run"):
        plot_uncertainty("not a run")
