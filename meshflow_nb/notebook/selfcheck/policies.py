"""Lesson 06's self-checks: a workflow fixed for REGULATED, rules named, a mode chosen.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ex2_result``, ``ex3_probe``) and the answer variables (``ex1_workflow``, ``ex2_rules``,
``mildest_mode``, ``why_not_milder``). `regulated_fix` runs pre-flight on the learner's
definition itself; `mildest_refusal` runs the probe under the learner's mode and every
milder one.
"""

from __future__ import annotations

import re
from typing import Any

from ...engine.results import RunResult
from ...events import EventType, plural
from ...hitl.local import fixed_approver
from ...ledger.errors import LedgerError
from ...model.graph import Topology
from ...model.roles import RiskTier
from ...model.status import RunStatus
from ...policy.config import Policy, PolicyMode
from ...policy.guardian import Action
from ...policy.rules import ungated_nodes
from ...workflow import WorkflowDefinition
from .expect import RUN, Expect, Instance, ListOf, Text, Unfit
from .framework import Verdict, hint, passed, self_check
from .text import stems

RULE_NAMES: dict[str, str] = {
    "S001": "empty-workflow", "S002": "duplicate-node-id", "S003": "invalid-node-id",
    "S004": "missing-agent", "S005": "agent-not-callable", "S006": "unknown-role",
    "S007": "unknown-risk-tier", "S008": "invalid-timeout", "S009": "invalid-export-name",
    "S010": "unknown-node", "S011": "duplicate-edge", "S012": "invalid-max-iterations",
    "S013": "guard-on-forward-edge", "S014": "condition-syntax", "S015": "unknown-variable",
    "S016": "unguarded-cycle", "S017": "no-entry-node", "S018": "unreachable-node",
    "S019": "invalid-approval-setting", "S020": "gate-content-not-upstream",
    "P001": "ungated-risky-node", "P002": "hitl-disabled", "P003": "budget-missing",
    "P004": "(retired)", "P005": "(retired)", "P006": "node-without-role", "P007": "no-ledger",
    "P008": "ledger-fails-verification",
}
"""Every pre-flight rule by id, as the lesson's tables (and docs/concepts.md,
docs/policy.md) list them."""

EX1_NODES: dict[str, RiskTier] = {"researcher": RiskTier.READ_ONLY, "writer": RiskTier.INTERNAL,
                                  "translator": RiskTier.INTERNAL,
                                  "publisher": RiskTier.EXTERNAL_IO}
"""Exercise 1's nodes and their risk tiers as written: a fix keeps each, at its tier or
above."""
EX1_RISKY = "publisher"
"""The node whose every input must stay an input (through a gate) after the fix."""

PROBE_BUDGET_USD = 1.0
PROBE_CARBON_G = 100.0
"""The caps `mildest_refusal` gives every mode, so that only the missing gate decides."""

MODE_ORDER = (PolicyMode.DEV, PolicyMode.STANDARD, PolicyMode.REGULATED)
"""The modes, mildest first."""

ASKING_STEMS = frozenset({"ask", "appro", "yes", "human", "perso", "revie", "answe", "decid",
                          "gate", "unatt", "nobod", "autom", "defau", "click", "someo",
                          "confi", "quest", "permi", "runti", "pause", "wait", "promp"})
"""Stems a reason has when it says what STANDARD does with an ungated node (it asks, at run
time) and why that is not a refusal (an unattended yes)."""

_RULE_ID = re.compile(r"\b([PS]\d{3})\b", re.IGNORECASE)
_ACTION_ORDER = (Action.FLAG, Action.REDACT, Action.BLOCK)

WORKFLOW_KIND = "a workflow (a WorkflowDefinition)"


# --- exercise 1 --------------------------------------------------------------------------


@self_check(
    given={"ex1_result": Instance(RunResult, "the run of your workflow", kind=RUN)},
    answers={"ex1_workflow": Instance(WorkflowDefinition, "the workflow, fixed",
                                      kind=WORKFLOW_KIND)})
def regulated_fix(ex1_result: RunResult, ex1_workflow: WorkflowDefinition) -> Verdict:
    """Exercise 1: the definition passes REGULATED's pre-flight with every layer and node
    kept, and its run got past pre-flight into a ledger that verifies."""
    wrong = (_policy_hint(ex1_workflow.policy) or _nodes_hint(ex1_workflow)
             or _preflight_hint(ex1_workflow) or _ex1_run_hint(ex1_result, ex1_workflow))
    if wrong:
        return hint(wrong)
    entries = ex1_workflow.ledger.events(ex1_result.run_id)
    return passed(f"pre-flight passes under REGULATED with every layer and node kept; "
                  f"{_ex1_outcome(ex1_result)}; its {len(entries)} ledger entries verify")


def _policy_hint(policy: Any) -> str | None:
    """Where to look when the policy is not REGULATED, or is weaker than its presets."""
    if not isinstance(policy, Policy):
        return ("ex1_workflow has no policy now: keep policy=Policy(PolicyMode.REGULATED, ...) "
                "in WorkflowDefinition(...)")
    if policy.mode is not PolicyMode.REGULATED:
        return (f"ex1_workflow runs under {policy.mode.name} now: keep PolicyMode.REGULATED, "
                "and change the workflow until REGULATED lets it run")
    weaker = weakened(policy)
    if weaker:
        return (f"your policy loosens {', '.join(weaker)} below REGULATED's preset: that "
                "switches a control off rather than meeting it; keep every layer as "
                "REGULATED sets it, and fix the workflow")
    return None


def weakened(policy: Policy) -> list[str]:
    """The fields of ``policy`` that are weaker than REGULATED's presets."""
    preset = Policy(PolicyMode.REGULATED)
    weaker = [name for name in ("enable_guardian", "enable_uncertainty", "enable_environmental",
                                "enable_cross_run_learning", "immutable_audit")
              if getattr(preset, name) and not getattr(policy, name)]
    if _ACTION_ORDER.index(policy.guardian_action) < _ACTION_ORDER.index(preset.guardian_action):
        weaker.append("guardian_action")
    weaker += [name for name in ("uncertainty_escalate", "uncertainty_block")
               if getattr(policy, name) > getattr(preset, name)]
    if policy.circuit_breaker is None:
        weaker.append("circuit_breaker")
    hitl = policy.human_in_loop
    if not hitl.enabled or hitl.tier_threshold > preset.human_in_loop.tier_threshold:
        weaker.append("human_in_loop")
    return weaker


def _nodes_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when a node of the exercise is gone, rated lower, or no longer feeds
    the publisher."""
    tiers = {node.id: node.risk_tier for node in workflow.nodes if not node.is_gate}
    missing = [node_id for node_id in EX1_NODES if node_id not in tiers]
    if missing:
        return (f"ex1_workflow has no {', '.join(missing)} now: keep every node; fix what "
                "the report names around them")
    lowered = [node_id for node_id, tier in EX1_NODES.items() if tiers[node_id] < tier]
    if lowered:
        return (f"you lowered the risk tier of {', '.join(lowered)}: that hides the risk from "
                "P001 instead of putting a person in front of it (section 6); keep each "
                "node's tier")
    topology = Topology.of([node.id for node in workflow.nodes], workflow.edges)
    cut = [node_id for node_id in EX1_NODES
           if node_id != EX1_RISKY and node_id not in topology.ancestors(EX1_RISKY)]
    if cut:
        return (f"{', '.join(cut)} no longer feeds the {EX1_RISKY}: route its work through "
                f"a gate to the {EX1_RISKY} instead of cutting the path")
    return None


def _preflight_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look while pre-flight still rejects the definition."""
    report = workflow.preflight()
    if report.ok:
        return None
    rules = ", ".join(dict.fromkeys(report.rules))
    advice = "the report under the answer cell names each one with its fix"
    has_gate = any(node.is_gate for node in workflow.nodes)
    if "P001" in report.rules and has_gate:
        advice = (f"P001 says a path still reaches the {EX1_RISKY} without a gate: every "
                  f"path into it must pass one (draw_preflight(ex1_workflow) shows them)")
    return (f"pre-flight still finds {plural(len(report.problems), 'problem')} in "
            f"ex1_workflow ({rules}): {advice}")


def _ex1_run_hint(run: RunResult, workflow: WorkflowDefinition) -> str | None:
    """Where to look when ex1_result is not a run of the fixed definition past pre-flight,
    or its ledger does not hold it intact."""
    again = "run the two cells after the answer cell again"
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return f"ex1_result is a run pre-flight rejected, from before your fix: {again}"
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    if run.workflow != workflow.name or start is None \
            or start.payload.get("policy") != workflow.policy.to_dict():
        return f"ex1_result is not a run of ex1_workflow as it is now: {again}"
    if run.status is RunStatus.FAILED:
        return f"your workflow ran, but the run failed: {run.error}"
    ledger = workflow.ledger
    try:
        recorded = ledger.events(run.run_id)
    except LedgerError:
        recorded = []
    if not recorded:
        return f"the ledger attached to ex1_workflow does not hold ex1_result: {again}"
    if not ledger.verify_chain(run.run_id).valid:
        return "the ledger entries of your run do not verify: run it again on a fresh ledger"
    return None


def _ex1_outcome(run: RunResult) -> str:
    """What the learner's run did at its gate, in words."""
    if run.status is RunStatus.REJECTED_AT_GATE:
        return "your run stopped at your gate: the reviewer rejected it, so the publisher never ran"
    if run.status is RunStatus.COMPLETED:
        return "your run passed your gate, and the publisher ran once your gate was approved"
    return f"your run got past pre-flight and ended {run.status.value}"


# --- exercise 2 --------------------------------------------------------------------------


@self_check(
    given={"ex2_result": Instance(RunResult, "the newsletter's rejected run", kind=RUN)},
    answers={"ex2_rules": ListOf(
        Text("one rule id per problem, in order", max_words=4,
             kind="a rule id in quotes, such as 'S001'"),
        "one rule id per problem, in the order of the list", min_len=1,
        kind="a list of rule ids in square brackets, such as ['S001', 'P008']")})
def rule_names(ex2_result: RunResult, ex2_rules: list[str]) -> Verdict:
    """Exercise 2: one rule per problem of the rejected run's report, in its order."""
    report = ex2_result.preflight
    if ex2_result.status is not RunStatus.REJECTED_PREFLIGHT or report is None:
        return hint("ex2_result should be the newsletter's run that pre-flight rejected: run "
                    "the exercise's first cell again")
    named = [rule_of(text) for text in ex2_rules]
    wrong = _unknown_hint(ex2_rules, named) or _repeat_hint(named) \
        or _count_hint(named, report.rules) or _order_hint(named, report.rules)
    if wrong:
        return hint(wrong)
    policy = sum(rule.startswith("P") for rule in named)
    return passed(f"all {len(named)} rules named: {len(named) - policy} structural (the graph "
                  f"cannot run as written) and {policy} of the policy (what REGULATED demands)")


def rule_of(answer: str) -> str | None:
    """The rule id an answer names: ``P001`` of "p001", "[P001 ungated-risky-node]" or
    "ungated-risky-node"; None when it names none."""
    found = _RULE_ID.search(answer)
    if found:
        return found.group(1).upper()
    name = answer.strip().strip("[]").strip().lower()
    return next((rule for rule, known in RULE_NAMES.items() if known == name), None)


def _unknown_hint(answers: list[str], named: list[str | None]) -> str | None:
    """Where to look when an entry is not a rule at all."""
    for position, (answer, rule) in enumerate(zip(answers, named, strict=True)):
        if rule is None:
            return (f"ex2_rules[{position}]: {answer!r} is not a rule id; the tables of "
                    "section 4 give each rule a letter and three digits, such as 'S001'")
        if rule not in RULE_NAMES:
            return (f"ex2_rules[{position}]: {rule} is not a rule; the tables of section 4 "
                    "list every one")
    return None


def _repeat_hint(named: list[str | None]) -> str | None:
    """Where to look when a rule is named twice (each problem here breaks another rule)."""
    seen: dict[str | None, int] = {}
    for position, rule in enumerate(named):
        if rule in seen:
            return (f"ex2_rules[{position}] repeats ex2_rules[{seen[rule]}]: each problem in "
                    "this list breaks a different rule")
        seen[rule] = position
    return None


def _count_hint(named: list[str | None], rules: list[str]) -> str | None:
    """Where to look when there is not one rule per problem."""
    if len(named) == len(rules):
        return None
    return (f"ex2_rules has {plural(len(named), 'rule id')} and the list has "
            f"{plural(len(rules), 'problem')}: give one rule id per problem, in order")


def _order_hint(named: list[str | None], rules: list[str]) -> str | None:
    """Where to look at the first problem whose rule is not the one given."""
    for position, (rule, actual) in enumerate(zip(named, rules, strict=True)):
        if rule != actual:
            if sorted(map(str, named)) == sorted(rules):
                return (f"ex2_rules[{position}]: every rule is right, but not in the list's "
                        f"order: {rule} belongs to another problem")
            return (f"ex2_rules[{position}]: problem {position + 1} is not {rule} "
                    f"{RULE_NAMES[str(rule)]}: read where it is and what it says again, then "
                    "find the rule whose description says that")
    return None


# --- exercise 3 --------------------------------------------------------------------------


class ModeExpect(Expect):
    """A `PolicyMode`, or its name in any case ("REGULATED", "PolicyMode.DEV")."""

    kind = "a PolicyMode, such as PolicyMode.DEV"

    def clean(self, value: Any, where: str) -> PolicyMode:
        """The mode itself, whether given as the enum or by name."""
        if isinstance(value, PolicyMode):
            return value
        if isinstance(value, Policy):
            raise Unfit(f"{where} should be a mode, not a whole Policy: write PolicyMode.<...>")
        if isinstance(value, str):
            name = value.strip().lower().removeprefix("policymode.")
            if name in {mode.value for mode in PolicyMode}:
                return PolicyMode(name)
        raise self.refuse(value, where)


@self_check(
    given={"ex3_probe": Instance(WorkflowDefinition, "the ungated probe", kind=WORKFLOW_KIND)},
    answers={"mildest_mode": ModeExpect("the mildest mode that kept the publisher from running"),
             "why_not_milder": Text("why the next milder mode is not enough", min_words=6,
                                    min_distinct=4)})
def mildest_refusal(ex3_probe: WorkflowDefinition, mildest_mode: PolicyMode,
                    why_not_milder: str) -> Verdict:
    """Exercise 3: the probe, run under the learner's mode with an approver that says yes,
    never reaches its risky node; under every milder mode it does; the reason says why."""
    risky = ungated_nodes(ex3_probe, RiskTier.EXTERNAL_IO)
    if not risky:
        return hint("ex3_probe has a gate before every EXTERNAL_IO node now: run the "
                    "exercise's first cell again, as it is")
    outcomes = {mode: probe_run(ex3_probe, mode) for mode in
                MODE_ORDER[:MODE_ORDER.index(mildest_mode) + 1]}
    chosen = outcomes[mildest_mode]
    if _acted(chosen, risky):
        return hint(_acted_hint(mildest_mode, chosen, risky))
    milder = next((mode for mode, run in outcomes.items()
                   if mode is not mildest_mode and not _acted(run, risky)), None)
    if milder is not None:
        return hint(f"under {milder.name} the {risky[0]} did not run either: a milder mode "
                    "than yours already does the job")
    if mildest_mode is not MODE_ORDER[0] and not stems(why_not_milder) & ASKING_STEMS:
        previous = MODE_ORDER[MODE_ORDER.index(mildest_mode) - 1]
        return hint(f"why_not_milder should say what {previous.name} does when the run reaches "
                    f"the {risky[0]}, and why that is not enough in an unattended run")
    return passed(f"{_refusal_said(mildest_mode, chosen)}; "
                  + "; ".join(_acted_said(mode, run, risky) for mode, run in outcomes.items()
                              if mode is not mildest_mode))


def probe_run(probe: WorkflowDefinition, mode: PolicyMode) -> RunResult:
    """The probe run under ``mode`` (with caps, so that only the gate decides), every
    approval answered yes, as an unattended run's default approver answers."""
    policy = Policy(mode, budget_usd=PROBE_BUDGET_USD, carbon_budget_g=PROBE_CARBON_G)
    says_yes = fixed_approver(True, "unattended", "approves whatever it is asked")
    return probe.run("a self-check of exercise 3", policy=policy, approver=says_yes)


def _acted(run: RunResult, risky: list[str]) -> bool:
    """A risky node completed in the run."""
    return any(node_id in risky for node_id in run.executed)


def _acted_hint(mode: PolicyMode, run: RunResult, risky: list[str]) -> str:
    """Where to look when the learner's mode let the risky node run."""
    if not run.decisions:
        return (f"under {mode.name} the {risky[0]} ran and nobody was asked: look at what "
                "that mode does with approvals in section 3's comparison")
    return (f"under {mode.name} the {risky[0]} ran: the run asked for an approval, and the "
            "approver that says yes gave it. Asking is not refusing when nobody is there to "
            "say no: look for a mode that stops the workflow before any approval is asked "
            "for (section 4)")


def _refusal_said(mode: PolicyMode, run: RunResult) -> str:
    """How the learner's mode kept the risky node from acting."""
    if run.status is RunStatus.REJECTED_PREFLIGHT and run.preflight is not None:
        return (f"{mode.name} refused ex3_probe before any node ran "
                f"({', '.join(dict.fromkeys(run.preflight.rules))})")
    return f"under {mode.name} the run ended {run.status.value} before the risky node acted"


def _acted_said(mode: PolicyMode, run: RunResult, risky: list[str]) -> str:
    """What a milder mode did, said plainly."""
    if run.decisions:
        return f"{mode.name} asked, and the {risky[0]} ran on an unattended yes"
    return f"{mode.name} ran the {risky[0]} without asking anyone"
