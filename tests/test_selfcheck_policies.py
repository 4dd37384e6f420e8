"""Lesson 06's self-checks, judged against real runs of the lesson's workflows (approved
and rejected at the gate) on a fresh ledger, in mock mode.

Every check is called with right answers (PASS), wrong answers (HINT, which never gives
the answer away), values of the wrong type, NaN, huge text and filler (HINT, never an
exception). The workflows are the lesson's: exercise 1's product update (broken as the
answer cell has it, fixed, and fixed the wrong ways), exercise 2's newsletter and
exercise 3's ungated press release.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from meshflow_nb import (
    HumanGate,
    HumanInLoopConfig,
    MockAgent,
    MockCritic,
    Node,
    Policy,
    PolicyMode,
    RiskTier,
    Role,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook.selfcheck import policies
from meshflow_nb.notebook.selfcheck.policies import (
    RULE_NAMES,
    mildest_refusal,
    regulated_fix,
    rule_names,
    rule_of,
    weakened,
)

TASK = "Announce our new solid-state battery line to the press"
DECISIONS = ("approve", "reject")
CAPS = {"budget_usd": 0.05, "carbon_budget_g": 5.0}
EX2_RULES = ["S015", "S016", "P003", "P002", "P006"]
REASON = ("STANDARD only asks for an approval when the run reaches the publisher, and an "
          "unattended approver answers yes, so the release still goes out")

WRONG_TYPES = [["P001"], {"a": 1}, 0.5, math.nan, object(), True, np.float64(0.5), 3,
               "x" * 100_000]
"""Values of every kind a learner might type where another kind belongs."""
FILLER = ["todo", "xxx", "lorem ipsum dolor sit amet", "a a a a a a a a", "asdf",
          "your answer here"]


def publish(ctx: Any) -> str:
    """The lesson's publisher: an action that leaves the building."""
    return "sent"


def product_update(*, caps: bool = False, role: bool = False, gate: str = "none",
                   ledger: ReplayLedger | None = None, policy: Policy | None = None,
                   drop: str = "", translator_tier: RiskTier = RiskTier.INTERNAL,
                   publisher_tier: RiskTier = RiskTier.EXTERNAL_IO,
                   name: str = "product_update") -> WorkflowDefinition:
    """Exercise 1's workflow: as the answer cell has it (every default), or fixed.
    ``gate`` is "none", "both" (one gate on every path) or "one" (on the writer's only)."""
    if policy is None:
        policy = Policy(PolicyMode.REGULATED, **(CAPS if caps else
                                                 {"carbon_budget_g": CAPS["carbon_budget_g"]}))
    wf = (WorkflowDefinition(name, policy=policy)
          .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                         RiskTier.READ_ONLY))
          .add_node(Node("writer", MockAgent(Role.EXECUTOR), Role.EXECUTOR)))
    if drop != "translator":
        wf.add_node(Node("translator", MockAgent(Role.EXECUTOR),
                         Role.EXECUTOR if role else None, translator_tier))
    wf.add_node(Node("publisher", publish, Role.ORCHESTRATOR, publisher_tier))
    wf.add_edge("researcher", "writer")
    if drop != "translator":
        wf.add_edge("researcher", "translator")
    ends = ["writer"] + (["translator"] if drop not in ("translator", "translator-edge") else [])
    if gate == "none":
        for end in ends:
            wf.add_edge(end, "publisher")
    else:
        wf.add_node(HumanGate("approve_publisher"))
        gated = ends if gate == "both" else ["writer"]
        for end in ends:
            wf.add_edge(end, "approve_publisher" if end in gated else "publisher")
        wf.add_edge("approve_publisher", "publisher")
    return ledger.attach(wf) if ledger is not None else wf


def fixed(ledger: ReplayLedger, **changes: Any) -> WorkflowDefinition:
    """Exercise 1's workflow with all four problems fixed (and ``changes`` on top)."""
    return product_update(**{"caps": True, "role": True, "gate": "both", "ledger": ledger,
                             **changes})


def newsletter(ledger: ReplayLedger) -> WorkflowDefinition:
    """Exercise 2's workflow: five problems, each of another rule."""
    return ledger.attach(
        WorkflowDefinition("newsletter", policy=Policy(
            PolicyMode.REGULATED, budget_usd=CAPS["budget_usd"],
            human_in_loop=HumanInLoopConfig(enabled=False)))
        .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                       RiskTier.READ_ONLY))
        .add_node(Node("writer", MockAgent(Role.EXECUTOR)))
        .add_node(Node("critic", MockCritic(), Role.CRITIC, exports=["quality_score"]))
        .add_node(Node("sender", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
        .add_edge("researcher", "writer")
        .add_edge("writer", "critic")
        .add_conditional_edge("critic", "writer", condition="quality_score < 0.8")
        .add_conditional_edge("critic", "sender", condition="quality >= 0.8"))


def press_release(ledger: ReplayLedger, gate: bool = False) -> WorkflowDefinition:
    """Exercise 3's probe: researcher -> writer -> publisher (EXTERNAL_IO), no gate."""
    wf = (WorkflowDefinition("ex3_probe")
          .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                         RiskTier.READ_ONLY))
          .add_node(Node("writer", MockAgent(Role.EXECUTOR), Role.EXECUTOR))
          .add_node(Node("publisher", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
          .add_edge("researcher", "writer"))
    if gate:
        wf.add_node(HumanGate("approve_publisher")).add_edge("writer", "approve_publisher")
        wf.add_edge("approve_publisher", "publisher")
    else:
        wf.add_edge("writer", "publisher")
    return ledger.attach(wf)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Real runs of each kind the lesson's exercises judge, on one fresh ledger."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        patch.delenv("MESHFLOW_HITL", raising=False)
        ledger = ReplayLedger(str(tmp_path_factory.mktemp("policies") / "lesson06.duckdb"))
        found = SimpleNamespace(ledger=ledger, fixed=fixed(ledger), ex1={})
        for decision in DECISIONS:
            approver = fixed_approver(decision == "approve", "tester", f"{decision} in a test")
            found.ex1[decision] = found.fixed.run(TASK, approver=approver)
        found.broken = product_update()
        found.rejected = found.broken.run(TASK)
        found.newsletter = newsletter(ledger)
        found.ex2 = found.newsletter.run(TASK)
        found.probe = press_release(ledger)
        found.gated_probe = press_release(ledger, gate=True)
        yield found


def is_hint(verdict: Any, *words: str, hides: tuple[str, ...] = ()) -> str:
    """The HINT's text, after checking it says ``words`` and never ``hides``."""
    text = str(verdict)
    assert text.startswith("HINT: "), text
    for word in words:
        assert word in text, text
    for secret in hides:
        assert secret not in text, text
    return text


def is_pass(verdict: Any, *words: str) -> str:
    """The PASS's text, after checking it says ``words``."""
    text = str(verdict)
    assert text.startswith("PASS: "), text
    for word in words:
        assert word in text, text
    return text


# --- exercise 1: regulated_fix -----------------------------------------------------------


@pytest.mark.parametrize(("decision", "said"), [
    ("approve", "the publisher ran once your gate was approved"),
    ("reject", "the reviewer rejected it, so the publisher never ran")])
def test_regulated_fix_passes_the_fix_in_both_modes(runs: SimpleNamespace, decision: str,
                                                    said: str) -> None:
    verdict = regulated_fix(runs.ex1[decision], ex1_workflow=runs.fixed)
    is_pass(verdict, "pre-flight passes under REGULATED", said, "ledger entries verify")


def test_regulated_fix_runs_pre_flight_on_the_untouched_answer(runs: SimpleNamespace) -> None:
    is_hint(regulated_fix(runs.rejected, ex1_workflow=runs.broken),
            "pre-flight still finds 4 problems", "P003, P001, P006, P007")


def test_regulated_fix_says_every_path_needs_a_gate(runs: SimpleNamespace) -> None:
    half = fixed(runs.ledger, gate="one")
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=half),
            "1 problem", "every path into it must pass one")


@pytest.mark.parametrize(("policy", "says"), [
    (Policy(PolicyMode.STANDARD, **CAPS), "runs under STANDARD now: keep PolicyMode.REGULATED"),
    (Policy(PolicyMode.DEV), "runs under DEV now"),
    (Policy(PolicyMode.REGULATED, **CAPS, immutable_audit=False), "immutable_audit"),
    (Policy(PolicyMode.REGULATED, **CAPS, guardian_action="flag"), "guardian_action"),
    (Policy(PolicyMode.REGULATED, **CAPS, enable_guardian=False), "enable_guardian"),
    (Policy(PolicyMode.REGULATED, **CAPS, uncertainty_block=0.99), "uncertainty_block"),
    (Policy(PolicyMode.REGULATED, **CAPS, circuit_breaker=None), "circuit_breaker"),
    (Policy(PolicyMode.REGULATED, **CAPS,
            human_in_loop=HumanInLoopConfig(tier_threshold=RiskTier.IRREVERSIBLE)),
     "human_in_loop"),
])
def test_regulated_fix_refuses_a_weaker_policy(runs: SimpleNamespace, policy: Policy,
                                               says: str) -> None:
    """Switching a layer off, loosening a threshold or raising the approval tier makes
    some problem go away; none of them is a fix."""
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=fixed(runs.ledger, policy=policy)),
            says)


def test_regulated_fix_refuses_a_workflow_without_a_policy(runs: SimpleNamespace) -> None:
    bare = fixed(runs.ledger)
    bare.policy = None
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=bare), "has no policy now")


@pytest.mark.parametrize(("changes", "says"), [
    ({"publisher_tier": RiskTier.INTERNAL}, "you lowered the risk tier of publisher"),
    ({"translator_tier": RiskTier.READ_ONLY}, "you lowered the risk tier of translator"),
    ({"drop": "translator"}, "has no translator now"),
    ({"drop": "translator-edge"}, "translator no longer feeds the publisher"),
])
def test_regulated_fix_refuses_a_fix_that_hides_the_risk(runs: SimpleNamespace,
                                                         changes: dict, says: str) -> None:
    """Each of these passes pre-flight (or nearly), and none fixes the workflow."""
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=fixed(runs.ledger, **changes)),
            says)


def test_a_raised_tier_is_no_weakening(runs: SimpleNamespace) -> None:
    stricter = fixed(runs.ledger, translator_tier=RiskTier.EXTERNAL_IO, name="product_update")
    text = str(regulated_fix(runs.ex1["approve"], ex1_workflow=stricter))
    assert "lowered" not in text, text


def test_regulated_fix_hints_at_a_stale_or_foreign_run(runs: SimpleNamespace) -> None:
    is_hint(regulated_fix(runs.rejected, ex1_workflow=runs.fixed),
            "a run pre-flight rejected, from before your fix")
    other = fixed(runs.ledger, name="other_update")
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=other),
            "not a run of ex1_workflow as it is now")
    recapped = fixed(runs.ledger, policy=Policy(PolicyMode.REGULATED, budget_usd=0.04,
                                                carbon_budget_g=5.0))
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=recapped),
            "not a run of ex1_workflow as it is now")


def test_regulated_fix_hints_when_the_ledger_lacks_the_run(runs: SimpleNamespace,
                                                           tmp_path: Any) -> None:
    elsewhere = fixed(ReplayLedger(str(tmp_path / "elsewhere.duckdb")))
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=elsewhere),
            "does not hold ex1_result")


@pytest.mark.parametrize("junk", [None, *WRONG_TYPES, *FILLER])
def test_regulated_fix_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    is_hint(regulated_fix(runs.ex1["approve"], ex1_workflow=junk), "ex1_workflow")
    is_hint(regulated_fix(junk, ex1_workflow=runs.fixed), "ex1_result")


def test_weakened_is_empty_for_regulated_and_its_stricter_variants() -> None:
    assert weakened(Policy(PolicyMode.REGULATED)) == []
    assert weakened(Policy(PolicyMode.REGULATED, uncertainty_escalate=0.5,
                           uncertainty_block=0.6)) == []
    assert "enable_cross_run_learning" in weakened(Policy(PolicyMode.STANDARD))


# --- exercise 2: rule_names --------------------------------------------------------------


def test_the_newsletter_breaks_five_different_rules(runs: SimpleNamespace) -> None:
    assert runs.ex2.preflight.rules == EX2_RULES


@pytest.mark.parametrize("answer", [
    EX2_RULES,
    [r.lower() for r in EX2_RULES],
    tuple(EX2_RULES),
    [f"[{r} {RULE_NAMES[r]}]" for r in EX2_RULES],
    [RULE_NAMES[r] for r in EX2_RULES],
])
def test_rule_names_passes_ids_names_and_both(runs: SimpleNamespace, answer: Any) -> None:
    is_pass(rule_names(runs.ex2, ex2_rules=answer), "all 5 rules named",
            "2 structural", "3 of the policy")


def test_rule_names_hints_at_the_first_wrong_problem(runs: SimpleNamespace) -> None:
    answer = ["S015", "S016", "P007", "P002", "P006"]
    is_hint(rule_names(runs.ex2, ex2_rules=answer), "ex2_rules[2]", "problem 3 is not P007",
            hides=("P003", "budget-missing"))


def test_rule_names_hints_at_the_right_rules_in_the_wrong_order(runs: SimpleNamespace) -> None:
    answer = ["S016", "S015", "P003", "P002", "P006"]
    is_hint(rule_names(runs.ex2, ex2_rules=answer), "ex2_rules[0]", "not in the list's order")


@pytest.mark.parametrize(("answer", "says"), [
    (EX2_RULES[:3], "has 3 rule ids and the list has 5 problems"),
    ([*EX2_RULES, "P001"], "has 6 rule ids"),
    (["S015", "S015", "P003", "P002", "P006"], "ex2_rules[1] repeats ex2_rules[0]"),
    (["S015", "s015 unknown-variable", "P003", "P002", "P006"], "repeats"),
    (["S015", "S016", "P099", "P002", "P006"], "P099 is not a rule"),
    (["S015", "S016", "budget", "P002", "P006"], "'budget' is not a rule id"),
    (["S015", "S016", "P0??", "P002", "P006"], "is not a rule id"),
])
def test_rule_names_hints_at_counts_repeats_and_non_rules(runs: SimpleNamespace,
                                                          answer: list, says: str) -> None:
    is_hint(rule_names(runs.ex2, ex2_rules=answer), says)


@pytest.mark.parametrize("filler", FILLER)
def test_rule_names_refuses_filler(runs: SimpleNamespace, filler: str) -> None:
    is_hint(rule_names(runs.ex2, ex2_rules=[filler, *EX2_RULES[1:]]), "ex2_rules[0]")


@pytest.mark.parametrize("junk", [None, [], *WRONG_TYPES, [None], [3, "S016"], [math.nan]])
def test_rule_names_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    is_hint(rule_names(runs.ex2, ex2_rules=junk), "ex2_rules")


def test_rule_names_hints_when_the_run_is_not_a_rejection(runs: SimpleNamespace) -> None:
    is_hint(rule_names(runs.ex1["approve"], ex2_rules=EX2_RULES), "run the exercise's first")
    for junk in (None, "ex2_result", 3, runs.fixed):
        is_hint(rule_names(junk, ex2_rules=EX2_RULES), "ex2_result")


def test_rule_of_reads_ids_names_and_nothing() -> None:
    assert rule_of(" p001 ") == "P001"
    assert rule_of("[P008 ledger-fails-verification]") == "P008"
    assert rule_of("Unguarded-Cycle") == "S016"
    assert rule_of("a cycle") is None


# --- exercise 3: mildest_refusal ---------------------------------------------------------


@pytest.mark.parametrize("mode", [PolicyMode.REGULATED, "regulated", "PolicyMode.REGULATED",
                                  " REGULATED "])
def test_mildest_refusal_passes_regulated_with_a_reason(runs: SimpleNamespace,
                                                        mode: Any) -> None:
    verdict = mildest_refusal(runs.probe, mildest_mode=mode, why_not_milder=REASON)
    is_pass(verdict, "REGULATED refused ex3_probe before any node ran (P001)",
            "STANDARD asked, and the publisher ran on an unattended yes",
            "DEV ran the publisher without asking anyone")


@pytest.mark.parametrize(("mode", "says"), [
    (PolicyMode.STANDARD, "under STANDARD the publisher ran: the run asked for an approval"),
    (PolicyMode.DEV, "under DEV the publisher ran and nobody was asked"),
])
def test_mildest_refusal_hints_at_a_mode_that_lets_it_act(runs: SimpleNamespace,
                                                          mode: PolicyMode, says: str) -> None:
    is_hint(mildest_refusal(runs.probe, mildest_mode=mode, why_not_milder=REASON), says,
            hides=("REGULATED",))


def test_mildest_refusal_needs_a_reason_about_asking(runs: SimpleNamespace) -> None:
    off_topic = "the mode has more layers switched on than the other ones do"
    is_hint(mildest_refusal(runs.probe, mildest_mode=PolicyMode.REGULATED,
                            why_not_milder=off_topic),
            "why_not_milder should say what STANDARD does")


@pytest.mark.parametrize("filler", [*FILLER, "because"])
def test_mildest_refusal_refuses_filler_reasons(runs: SimpleNamespace, filler: str) -> None:
    is_hint(mildest_refusal(runs.probe, mildest_mode=PolicyMode.REGULATED,
                            why_not_milder=filler), "why_not_milder")


def test_mildest_refusal_names_every_unset_answer_at_once(runs: SimpleNamespace) -> None:
    is_hint(mildest_refusal(runs.probe, mildest_mode=None, why_not_milder=""),
            "set mildest_mode", "and why_not_milder")


@pytest.mark.parametrize("junk", [*WRONG_TYPES, "strict", Policy(PolicyMode.REGULATED)])
def test_mildest_refusal_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    is_hint(mildest_refusal(runs.probe, mildest_mode=junk, why_not_milder=REASON),
            "mildest_mode")


def test_mildest_refusal_hints_when_the_probe_has_a_gate(runs: SimpleNamespace) -> None:
    is_hint(mildest_refusal(runs.gated_probe, mildest_mode="regulated", why_not_milder=REASON),
            "has a gate before every EXTERNAL_IO node now")
    for junk in (None, "ex3_probe", 3, runs.rejected):
        is_hint(mildest_refusal(junk, mildest_mode="regulated", why_not_milder=REASON),
                "ex3_probe")


def test_the_probe_runs_with_caps_so_only_the_gate_decides(runs: SimpleNamespace) -> None:
    run = policies.probe_run(runs.probe, PolicyMode.REGULATED)
    assert run.preflight is not None and run.preflight.rules == ["P001"]
