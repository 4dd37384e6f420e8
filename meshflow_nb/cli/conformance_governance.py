"""The checks of level 2, governance: one probe per `Policy` field, named after it, and
one of the ledger, each showing that layer doing what docs/policy.md says.

A check takes the policy it runs under (by default one that turns its layer on), so a
test can hand it one with that layer off and see it fail: a check that cannot fail
proves nothing. The checks that record write only into the folder they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..agents.base import AgentResult, NodeContext
from ..agents.errors import ModelOverloadedError
from ..agents.mock import MockAgent
from ..agents.pricing import DEFAULT_MODEL, PRICES, ModelPrice, cost_usd
from ..events import EventType
from ..ledger import ImmutableLedgerError, ReplayLedger
from ..model.graph import Agent, HumanGate
from ..model.roles import RiskTier, Role
from ..model.status import RunStatus
from ..policy.circuit import CircuitBreakerConfig
from ..policy.config import Policy, PolicyMode
from ..workflow import WorkflowDefinition
from .conformance_checks import (
    REJECT,
    Check,
    events_of,
    failed,
    layer_fix,
    passed,
    run_probe,
    two_steps,
)

BUDGET_USD = 0.01
FAKE_SECRET = "sk-ant-api03-" + "Cf7" * 20 + "QQ"
"""A made-up key in a probe agent's output: the guardian must catch it."""
FAST_BREAKER = CircuitBreakerConfig(max_retries=1, failure_threshold=2, failure_window_s=30,
                                    half_open_after_s=60, backoff_base_s=0.001,
                                    backoff_max_s=0.01)


def mode(policy: Policy | None = None) -> Check:
    """REGULATED refuses, before running, a risky node that no human gate precedes."""
    policy = policy or Policy(PolicyMode.REGULATED, budget_usd=1.0, carbon_budget_g=10.0)
    wf = two_steps(lambda ctx: "draft", lambda ctx: "sent", name="conformance_mode",
                    risk_tier=RiskTier.EXTERNAL_IO)
    result = run_probe(wf, policy)
    if result.status is RunStatus.REJECTED_PREFLIGHT and "P001" in result.preflight.rules:
        return passed("REGULATED refused an ungated EXTERNAL_IO node before any node ran (P001)")
    return failed(f"an ungated EXTERNAL_IO node under {policy.mode} ended {result.status}",
                  layer_fix("The REGULATED rules", "docs/policy.md#pre-flight-rules"))


def budget_usd(policy: Policy | None = None) -> Check:
    """Spending past the cost cap stops the run before the next node."""
    policy = policy or Policy(PolicyMode.DEV, budget_usd=BUDGET_USD)
    spend = lambda ctx: AgentResult(text="draft", cost_usd=5 * BUDGET_USD)  # noqa: E731
    result = run_probe(two_steps(spend, spend), policy)
    if result.status is RunStatus.BUDGET_EXCEEDED and "second" not in result.executed:
        return passed(f"a ${5 * BUDGET_USD:.2f} node stopped the run at a ${BUDGET_USD:.2f} "
                      "budget; the next node never started")
    return failed(f"the run ended {result.status} after spending ${result.totals.cost_usd:.2f} "
                  f"against a ${BUDGET_USD:.2f} budget", layer_fix("The budget layer",
                                                             "docs/policy.md"))


def _leak(ctx: NodeContext) -> str:
    return f"Deploy with key {FAKE_SECRET} tonight"


def enable_guardian(policy: Policy | None = None) -> Check:
    """A secret in a node's output is redacted before the next node and every event."""
    policy = policy or Policy(PolicyMode.STANDARD, guardian_action="redact")
    result = run_probe(two_steps(_leak), policy)
    leaked = [e.type.value for e in result.events if FAKE_SECRET in e.to_json()]
    if result.ok and not leaked and "[REDACTED" in str(result.outputs.get("second")):
        return passed("a made-up API key in a node's output was redacted before the next "
                      "node and in every event")
    reached = ", ".join(dict.fromkeys(leaked)) or "the next node"
    return failed(f"the made-up API key reached {reached} (run {result.status})",
                  layer_fix("The guardian", "docs/guardian.md"))


def guardian_action(policy: Policy | None = None) -> Check:
    """With action block, a finding stops the run at the node that produced it."""
    policy = policy or Policy(PolicyMode.STANDARD, guardian_action="block")
    result = run_probe(two_steps(_leak), policy)
    blocked = [e.payload.get("layer") for e in events_of(result, EventType.NODE_BLOCKED)]
    if result.status is RunStatus.BLOCKED and "guardian" in blocked \
            and "second" not in result.executed:
        return passed("guardian_action=block stopped the run at the node that leaked a key")
    return failed(f"a leaked key under guardian_action={policy.guardian_action.value} ended "
                  f"{result.status}", layer_fix("The guardian's block action", "docs/guardian.md"))


def _unsure(level: float) -> Agent:
    return lambda ctx: AgentResult(text="maybe", uncertainty=level)


def enable_uncertainty(policy: Policy | None = None) -> Check:
    """A very unsure node does not reach the next one; a sure one passes unasked."""
    policy = policy or Policy(PolicyMode.STANDARD)
    unsure = run_probe(two_steps(_unsure(0.97)), policy)
    sure = run_probe(two_steps(_unsure(0.1)), policy, approver=REJECT)
    if "second" not in unsure.executed and sure.ok:
        return passed(f"a node at uncertainty 0.97 was stopped ({unsure.status}); one at 0.10 "
                      "ran on without asking anyone")
    return failed(f"uncertainty 0.97 ended {unsure.status}, 0.10 ended {sure.status}",
                  layer_fix("The uncertainty layer", "docs/uncertainty.md"))


def uncertainty_escalate(policy: Policy | None = None) -> Check:
    """Between the thresholds a human is asked, and a rejection stops the run."""
    policy = policy or Policy(PolicyMode.STANDARD, uncertainty_escalate=0.6, uncertainty_block=0.9)
    result = run_probe(two_steps(_unsure(0.75)), policy, approver=REJECT)
    asked = [e.payload.get("reason") for e in events_of(result, EventType.GATE_PAUSE)]
    if result.status is RunStatus.REJECTED_AT_GATE and asked == ["uncertainty"]:
        return passed("uncertainty 0.75 (escalate at 0.60) asked a human; the rejection "
                      "stopped the run")
    return failed(f"uncertainty 0.75 with escalate={policy.uncertainty_escalate:g} ended "
                  f"{result.status} (asked: {asked or 'nobody'})",
                  layer_fix("The uncertainty escalation", "docs/uncertainty.md"))


def uncertainty_block(policy: Policy | None = None) -> Check:
    """Above the block threshold the node is blocked, even if a human would approve."""
    policy = policy or Policy(PolicyMode.STANDARD, uncertainty_escalate=0.6, uncertainty_block=0.8)
    result = run_probe(two_steps(_unsure(0.85)), policy)
    layers = [e.payload.get("layer") for e in events_of(result, EventType.NODE_BLOCKED)]
    if result.status is RunStatus.BLOCKED and layers == ["uncertainty"]:
        return passed("uncertainty 0.85 (block at 0.80) was blocked although the reviewer "
                      "approves everything")
    return failed(f"uncertainty 0.85 with block={policy.uncertainty_block:g} ended "
                  f"{result.status}", layer_fix("The uncertainty block", "docs/uncertainty.md"))


def _mock_pair() -> WorkflowDefinition:
    """Two mock agents that report tokens and a model, so carbon can be estimated."""
    return two_steps(MockAgent(Role.RESEARCHER, latency_s=0),
                      MockAgent(Role.EXECUTOR, latency_s=0), name="conformance_carbon")


def enable_environmental(policy: Policy | None = None) -> Check:
    """Every completed node carries its grams of CO2e, and the run totals them."""
    policy = policy or Policy(PolicyMode.STANDARD)
    result = run_probe(_mock_pair(), policy)
    grams = [e.carbon_g for e in events_of(result, EventType.NODE_COMPLETE)]
    if result.ok and grams and all(g and g > 0 for g in grams) and result.totals.carbon_g > 0:
        return passed(f"each node carried its estimate; the run: {result.totals.carbon_g:.4f} g "
                      "CO2e")
    return failed(f"node estimates {grams} (run {result.status})",
                  layer_fix("The environmental layer", "docs/environmental.md"))


def carbon_budget_g(policy: Policy | None = None) -> Check:
    """A carbon cap stops the run with status budget_exceeded."""
    policy = policy or Policy(PolicyMode.STANDARD, carbon_budget_g=1e-6)
    result = run_probe(_mock_pair(), policy)
    stops = [e.payload.get("budget") for e in events_of(result, EventType.BUDGET_EXCEEDED)]
    if result.status is RunStatus.BUDGET_EXCEEDED and stops == ["carbon"]:
        return passed("a 0.000001 g CO2e budget stopped the run")
    return failed(f"a tiny carbon budget ended the run {result.status}",
                  layer_fix("The carbon budget", "docs/environmental.md"))


def enable_cross_run_learning(folder: Path, policy: Policy | None = None) -> Check:
    """The critic's feedback in one run reaches the writer at the start of the next."""
    policy = policy or Policy(PolicyMode.STANDARD, enable_cross_run_learning=True)
    heard: list[tuple[str, ...]] = []

    def writer(ctx: NodeContext) -> str:
        heard.append(ctx.lessons)
        return "draft"

    def critic(ctx: NodeContext) -> dict[str, Any]:
        return {"quality_score": 0.5 if ctx.iteration == 1 else 0.9,
                "feedback": "cite a source for every claim"}

    ledger = ReplayLedger(folder / "learning-probe.duckdb")
    wf = ledger.attach(WorkflowDefinition("conformance_learning")
                       .add_node("writer", writer, role=Role.EXECUTOR)
                       .add_node("critic", critic, role=Role.CRITIC,
                                 exports=["quality_score", "feedback"])
                       .add_edge("writer", "critic")
                       .add_conditional_edge("critic", "writer", "quality_score < 0.8",
                                             max_iterations=2))
    run_probe(wf, policy)
    first_draft = len(heard)
    run_probe(wf, policy)
    ledger.close()
    lessons = heard[first_draft] if len(heard) > first_draft else ()
    if any("cite a source" in lesson for lesson in lessons):
        return passed("the second run's writer started with the first run's feedback")
    return failed("the second run's writer got no lesson from the first run's feedback",
                  layer_fix("Cross-run learning", "docs/cross-run-learning.md"))


def immutable_audit(folder: Path, policy: Policy | None = None) -> Check:
    """Under immutable audit the ledger refuses an UPDATE, and a damaged ledger is not
    appended to (P008)."""
    policy = policy or Policy(PolicyMode.STANDARD, immutable_audit=True)
    ledger = ReplayLedger(folder / "audit-probe.duckdb")
    wf = ledger.attach(two_steps(lambda ctx: "draft", name="conformance_audit"))
    run_probe(wf, policy)
    tamper = "UPDATE ledger_entries SET output = '\"edited\"' WHERE run_seq = 2"
    try:
        ledger.sql(tamper)
    except ImmutableLedgerError:
        pass
    else:
        return failed(f"an UPDATE of a recorded entry was accepted under immutable_audit="
                      f"{policy.immutable_audit}", layer_fix("Immutable audit", "docs/policy.md"))
    ledger.immutable = False  # the learner's own SQL session: the file itself has no triggers
    ledger.sql(tamper)
    entries = len(ledger.to_dataframe())
    refused = run_probe(wf, policy)
    appended = len(ledger.to_dataframe()) - entries
    ledger.close()
    if refused.status is RunStatus.REJECTED_PREFLIGHT and "P008" in refused.preflight.rules \
            and not appended:
        return passed("an UPDATE was refused, and after tampering the next run was refused "
                      "(P008) with nothing appended")
    return failed(f"on a tampered ledger the next run ended {refused.status} and appended "
                  f"{appended} entries", layer_fix("Immutable audit", "docs/policy.md"))


def circuit_breaker(policy: Policy | None = None) -> Check:
    """An agent that keeps failing opens its breaker; the next run fails fast without it."""
    policy = policy or Policy(PolicyMode.STANDARD, circuit_breaker=FAST_BREAKER)
    calls: list[int] = []

    def down(ctx: NodeContext) -> str:
        calls.append(1)
        raise ModelOverloadedError("upstream 503", model=DEFAULT_MODEL, status=503)

    first = run_probe(two_steps(down, name="conformance_breaker"), policy)
    opened = [e.payload.get("to_state") for e in events_of(first, EventType.CIRCUIT_STATE)]
    before = len(calls)
    second = run_probe(two_steps(down, name="conformance_breaker"), policy)
    if "open" in opened and second.status is RunStatus.FAILED and len(calls) == before:
        return passed(f"{before} failed calls opened the breaker; the next run failed fast "
                      "without calling the agent")
    return failed(f"breaker states {opened or 'none'}; the next run called the agent "
                  f"{len(calls) - before} more times", layer_fix("The circuit breaker",
                                                           "docs/circuit-breaker.md"))


def human_in_loop(policy: Policy | None = None) -> Check:
    """A rejecting reviewer at a human gate stops the run before the risky node."""
    policy = policy or Policy(PolicyMode.STANDARD)
    wf = (WorkflowDefinition("conformance_gate")
          .add_node("draft", lambda ctx: "text", role=Role.EXECUTOR)
          .add_node(HumanGate("review", prompt="Publish this?"))
          .add_node("publish", lambda ctx: "sent", role=Role.ORCHESTRATOR,
                    risk_tier=RiskTier.EXTERNAL_IO)
          .add_edge("draft", "review").add_edge("review", "publish"))
    result = run_probe(wf, policy, approver=REJECT)
    if result.status is RunStatus.REJECTED_AT_GATE and "publish" not in result.executed:
        return passed("the reviewer's rejection at the human gate stopped the run; the "
                      "EXTERNAL_IO node never ran")
    return failed(f"a rejecting reviewer left the run {result.status} "
                  f"(publish ran: {'publish' in result.executed})",
                  layer_fix("Human in the loop", "docs/approvals.md"))


def prices(policy: Policy | None = None) -> Check:
    """The policy's price table, not the default one, prices the tokens."""
    tenfold = {DEFAULT_MODEL: ModelPrice(
        DEFAULT_MODEL, PRICES[DEFAULT_MODEL].input_usd_per_mtok * 10,
        PRICES[DEFAULT_MODEL].output_usd_per_mtok * 10, PRICES[DEFAULT_MODEL].model_class)}
    policy = policy or Policy(PolicyMode.DEV, prices=tenfold)
    tokens = lambda ctx: AgentResult(text="x", tokens_in=1000, tokens_out=1000,  # noqa: E731
                                     model=DEFAULT_MODEL)
    result = run_probe(WorkflowDefinition("conformance_prices").add_node("a", tokens,
                                                                   role=Role.EXECUTOR), policy)
    expected = cost_usd(DEFAULT_MODEL, 1000, 1000, tenfold)
    if result.ok and abs(result.totals.cost_usd - expected) < 1e-9:
        return passed(f"2,000 tokens cost ${expected:.4f} at the policy's prices (tenfold)")
    return failed(f"2,000 tokens cost ${result.totals.cost_usd:.4f}, not the policy's "
                  f"${expected:.4f}", layer_fix("The policy price table", "docs/mock-mode.md"))


def record_partial_output(folder: Path, policy: Policy | None = None) -> Check:
    """A streaming agent's partial text becomes ledger entries when the policy says so."""
    policy = policy or Policy(PolicyMode.DEV, record_partial_output=True)

    def streaming(ctx: NodeContext) -> str:
        for piece in ("Hel", "lo"):
            if ctx.on_text is not None:
                ctx.on_text(piece)
        return "Hello"

    ledger = ReplayLedger(folder / "partial-probe.duckdb")
    wf = ledger.attach(WorkflowDefinition("conformance_partial")
                       .add_node("a", streaming, role=Role.EXECUTOR))
    result = run_probe(wf, policy)
    ledger.flush()
    kinds = ledger.to_dataframe(result.run_id)["event_type"].tolist()
    ledger.close()
    if kinds.count(EventType.NODE_PARTIAL.value) == 2:
        return passed("both pieces of a streamed answer were recorded as node_partial entries")
    return failed(f"the ledger holds {kinds.count(EventType.NODE_PARTIAL.value)} of 2 "
                  "node_partial entries", layer_fix("Partial-output recording", "docs/policy.md"))


def ledger(folder: Path) -> Check:
    """Every event of a run is recorded, the chain verifies, and an edit is found."""
    store = ReplayLedger(folder / "ledger-probe.duckdb")
    wf = store.attach(two_steps(lambda ctx: "draft", name="conformance_ledger"))
    result = run_probe(wf, None)
    clean = store.verify_chain(result.run_id)
    recorded = len(store.to_dataframe(result.run_id))
    store.sql("UPDATE ledger_entries SET output = '\"edited\"' WHERE run_seq = 2")
    damaged = store.verify_chain(result.run_id)
    store.close()
    if clean.valid and recorded == len(result.events) and not damaged.valid \
            and damaged.first_bad_seq is not None:
        return passed(f"{recorded} events recorded and verified; an edited entry was found "
                      f"at seq {damaged.first_bad_seq}")
    return failed(f"recorded {recorded} of {len(result.events)} events, chain valid: "
                  f"{clean.valid}, edit found: {not damaged.valid}",
                  layer_fix("The ledger", "docs/ledger.md"))


GOVERNANCE: tuple[tuple[str, Callable[..., Check]], ...] = (
    ("mode", mode), ("budget_usd", budget_usd), ("enable_guardian", enable_guardian),
    ("guardian_action", guardian_action), ("enable_uncertainty", enable_uncertainty),
    ("uncertainty_escalate", uncertainty_escalate), ("uncertainty_block", uncertainty_block),
    ("enable_environmental", enable_environmental), ("carbon_budget_g", carbon_budget_g),
    ("enable_cross_run_learning", enable_cross_run_learning),
    ("immutable_audit", immutable_audit), ("circuit_breaker", circuit_breaker),
    ("human_in_loop", human_in_loop), ("prices", prices),
    ("record_partial_output", record_partial_output), ("ledger", ledger))
"""Level 2: one check per Policy field, named after it, and the ledger's own."""

NEEDS_FOLDER = frozenset({"enable_cross_run_learning", "immutable_audit",
                          "record_partial_output", "ledger"})
"""The checks that write a ledger file: they are given the run's temporary folder."""
