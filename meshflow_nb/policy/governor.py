"""The governor: applies one `Policy` to one run through its hooks.

The engine calls `prepare` before anything runs, `before_node` before an agent is
called, `call` around the agent call, `after_node` on its result, `after_complete`
once the node's completion is recorded and `after_run` at the end. A layer that must
stop the run emits its own event and raises `PolicyStop` with the run's new status; the
engine never needs to know which layer it was. The governor sees the run only through
`RunControl`, so this layer never imports the engine.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..agents.base import AgentResult, NodeContext
from ..agents.pricing import cost_usd
from ..errors import ConfigError, MeshflowError
from ..events import EventType, MeshEvent
from ..model.graph import Blueprint, Node
from ..model.status import RunStatus
from .carbon import carbon_grams
from .circuit import BreakerEvent, BreakerRegistry, CircuitOpenError, Clock
from .config import Policy, PolicyMode
from .guardian import Action, Category, Guardian, Screening
from .rules import ungated_nodes

if TYPE_CHECKING:
    from .learning import LearningStore

T = TypeVar("T")

_SENSITIVE = Guardian(Action.REDACT, categories=(Category.SECRET, Category.PII))
"""Redacts what must never be recorded, whatever the policy's action."""

_breakers: dict[int, BreakerRegistry] = {}
"""Breakers by policy object (not by value: two equal policies do not share state)."""


class PolicyStop(MeshflowError):
    """A governance layer stopped the run; ``status`` becomes the run's status and
    ``node_status`` the status of the node it stopped at."""

    def __init__(self, status: RunStatus, message: str, node_status: str = "blocked") -> None:
        super().__init__(message)
        self.status = status
        self.node_status = node_status


class RunControl(Protocol):
    """What the governor may do to the run it governs: emit an event, ask a human, look
    a node up. The engine's `Run` is one; tests can pass anything that has these."""

    def emit(self, type_: EventType, node: Node | None = None, **fields: Any) -> MeshEvent: ...

    async def ask_approval(self, node: Node, content: Any, prompt: str, *, reason: str) -> Any:
        ...

    def node(self, node_id: str) -> Node | None: ...


class Governor:
    """Budgets, guardian, uncertainty, carbon, circuit breaker and approvals for a run.

    ``ledger_location`` is where the run's ledger is (the learning store lives beside it).
    """

    def __init__(self, policy: Policy, run: RunControl, *,
                 ledger_location: str | None = None) -> None:
        self.policy = policy
        self.run = run
        self.guardian = Guardian(policy.guardian_action) if policy.enable_guardian else None
        self.spent_usd = 0.0
        self.spent_g = 0.0
        self._last: dict[str, tuple[float, float]] = {}
        self._needs_approval: set[str] = set()
        self.learning = _learning_store(ledger_location) \
            if policy.enable_cross_run_learning else None

    # --- before anything runs ------------------------------------------------------

    def prepare(self, definition: Blueprint) -> None:
        """Outside REGULATED mode (whose pre-flight demands gates instead), an ungated
        node at or above the tier threshold asks a human before it runs."""
        hitl = self.policy.human_in_loop
        if hitl.enabled and self.policy.mode is not PolicyMode.REGULATED:
            self._needs_approval = set(ungated_nodes(definition, hitl.tier_threshold))

    def screen_task(self, task: str) -> Screening | None:
        """The task as it may be recorded and given to agents, screened before anything
        is recorded (None when the guardian is off). The ledger cannot forget, so under
        the flag and block actions too, secrets and personal data in the task are
        redacted in what is recorded (an injection stays, flagged or blocked). Emits
        nothing, since the run's first event must be run_start: `report_task` does."""
        if self.guardian is None:
            return None
        screening = self.guardian.screen(task, "task")
        if self.guardian.action is not Action.REDACT and screening.findings:
            kept = _SENSITIVE.screen(task, "task").value
            screening = dataclasses.replace(screening, value=kept)
        return screening

    def report_task(self, screening: Screening) -> None:
        """The findings of `screen_task` as events; a blocked task stops the run."""
        self._report(None, screening, "task")

    # --- around one node -----------------------------------------------------------

    async def before_node(self, node: Node, ctx: NodeContext) -> NodeContext:
        """Refuse a node the budgets cannot afford, screen its input, ask if it is risky."""
        self._refuse_unaffordable(node)
        if self.learning is not None:
            ctx = dataclasses.replace(ctx, lessons=tuple(self.learning.lessons_for(
                node.id, ctx.task)))
        if self.guardian is not None:  # the task was screened once, when the run started
            screened = self._screen(node, dict(ctx.inputs), "input")
            ctx = dataclasses.replace(ctx, inputs=screened.value)
        if node.id in self._needs_approval:
            await self.run.ask_approval(
                node, ctx.upstream(), f"{node.id} is {node.risk_tier.name}: approve it to run?",
                reason="risk_tier")
        return ctx

    async def call(self, node: Node, make_call: Callable[[], Awaitable[T]]) -> T:
        """The agent call, with retries and the node's circuit breaker when configured."""
        if self.policy.circuit_breaker is None:
            return await make_call()
        registry = policy_breakers(self.policy)
        try:
            return await registry.breaker(node.id).call(make_call, on_event=self._breaker_event)
        except CircuitOpenError as err:
            raise PolicyStop(RunStatus.FAILED, str(err), node_status="failed") from err

    async def after_node(self, node: Node, ctx: NodeContext, result: AgentResult) -> AgentResult:
        """Account cost and carbon, screen the output, act on uncertainty."""
        result = self._account(result)
        if self.guardian is not None:
            output = self._screen(node, result.output, "output").value
            text = output if result.text == result.output else \
                self._screen(node, result.text, "output.text").value
            variables = self._screen(node, result.variables, "variables").value
            result = dataclasses.replace(result, output=output, text=str(text),
                                         variables=variables)
        await self._judge_uncertainty(node, result)
        return result

    def after_run(self, status: RunStatus, events: list[MeshEvent], workflow: str,
                  task: str) -> None:
        """Cross-run learning: remember what this run taught (scores, feedback, decisions)."""
        if self.learning is not None and status is not RunStatus.REJECTED_PREFLIGHT:
            self.learning.record_run(events, workflow, task)

    def after_complete(self, node: Node, result: AgentResult) -> None:
        """Stop the run once what was actually spent passes a budget."""
        self.spent_usd += result.cost_usd or 0.0
        self.spent_g += result.carbon_g or 0.0
        self._last[node.id] = (result.cost_usd or 0.0, result.carbon_g or 0.0)
        for kind, spent, cap in self._budgets():
            if cap is not None and spent > cap:
                self._stop_for_budget(node, kind, spent, cap, when="after")

    # --- layers --------------------------------------------------------------------

    def _account(self, result: AgentResult) -> AgentResult:
        cost = result.cost_usd
        prices = self.policy.prices
        priced_here = prices is not None and result.model in prices
        if result.model and (priced_here or cost is None):
            cost = cost_usd(result.model, result.tokens_in, result.tokens_out, prices)
        carbon = None
        if self.policy.enable_environmental:
            carbon = carbon_grams(result.tokens, result.model)
        return dataclasses.replace(result, cost_usd=cost, carbon_g=carbon)

    def _budgets(self) -> list[tuple[str, float, float | None]]:
        carbon_cap = self.policy.carbon_budget_g if self.policy.enable_environmental else None
        return [("cost", self.spent_usd, self.policy.budget_usd),
                ("carbon", self.spent_g, carbon_cap)]

    def _refuse_unaffordable(self, node: Node) -> None:
        """Estimate from the node's previous execution in this run (a loop re-run)."""
        last_cost, last_carbon = self._last.get(node.id, (0.0, 0.0))
        for (kind, spent, cap), estimate in zip(self._budgets(), (last_cost, last_carbon),
                                                strict=True):
            if cap is not None and spent + estimate > cap:
                self._stop_for_budget(node, kind, spent, cap, when="before", estimate=estimate)

    def _stop_for_budget(self, node: Node, kind: str, spent: float, cap: float, *, when: str,
                         estimate: float = 0.0) -> None:
        unit = "USD" if kind == "cost" else "g CO2e"
        if when == "before":
            message = (f"{node.id} would take the {kind} to about {spent + estimate:.4f} {unit}, "
                       f"past the budget of {cap:g} {unit}; it was not started")
        else:
            message = f"{kind} reached {spent:.4f} {unit}, past the budget of {cap:g} {unit}"
        self.run.emit(EventType.BUDGET_EXCEEDED, node, payload={
            "budget": kind, "when": when, "spent": round(spent, 6), "estimate": round(estimate, 6),
            "cap": cap, "message": message})
        raise PolicyStop(RunStatus.BUDGET_EXCEEDED, message,
                         node_status="completed" if when == "after" else "refused")

    def _screen(self, node: Node, value: Any, where: str) -> Screening:
        screening = self.guardian.screen(value, where)
        self._report(node, screening, where)
        return screening

    def _report(self, node: Node | None, screening: Screening, where: str) -> None:
        """A guardian_finding event per finding; a blocked screening stops the run."""
        for finding in screening.findings:
            self.run.emit(EventType.GUARDIAN_FINDING, node, payload={
                **finding.to_dict(), "action": self.policy.guardian_action.value,
                "message": finding.describe()})
        if screening.blocked:
            kinds = ", ".join(sorted({f.kind for f in screening.findings}))
            message = (f"the guardian blocked {node.id}: {kinds} in its {where}" if node
                       else f"the guardian blocked the run: {kinds} in its {where}")
            self.run.emit(EventType.NODE_BLOCKED, node, payload={
                "layer": "guardian", "message": message})
            raise PolicyStop(RunStatus.BLOCKED, message)

    async def _judge_uncertainty(self, node: Node, result: AgentResult) -> None:
        value = result.uncertainty
        if not self.policy.enable_uncertainty or value is None:
            return
        if value > self.policy.uncertainty_block:
            message = (f"{node.id} is too uncertain ({value:.2f} > "
                       f"{self.policy.uncertainty_block:.2f}); its output was not used")
            self.run.emit(EventType.NODE_BLOCKED, node, uncertainty=value, payload={
                "layer": "uncertainty", "message": message})
            raise PolicyStop(RunStatus.BLOCKED, message)
        if value > self.policy.uncertainty_escalate:
            self.run.emit(EventType.UNCERTAINTY_ESCALATED, node, uncertainty=value, payload={
                "threshold": self.policy.uncertainty_escalate,
                "message": f"{node.id} is uncertain ({value:.2f}); asking a human"})
            await self.run.ask_approval(
                node, result.output, f"{node.id} is uncertain ({value:.2f}): use its output?",
                reason="uncertainty")

    def _breaker_event(self, event: BreakerEvent) -> None:
        kind = EventType.NODE_RETRY if event.kind == "retry" else EventType.CIRCUIT_STATE
        self.run.emit(kind, self.run.node(event.agent), payload=dict(event.detail))


def policy_breakers(policy: Policy, clock: Clock | None = None) -> BreakerRegistry:
    """The breakers of ``policy``'s runs, one per agent, remembered across its runs and
    dropped with the policy.

    ``clock`` is the clock they read: a fake one lets a test or a lesson play minutes of
    backoff and half-open timers in milliseconds. Give it before the policy's first run;
    a policy's breakers keep the clock they were made with.
    """
    config = policy.circuit_breaker
    if config is None:
        raise ConfigError("this policy has no circuit breaker (circuit_breaker=None)",
                          argument="policy", fix="pass a policy with a CircuitBreakerConfig")
    key = id(policy)
    registry = _breakers.get(key)
    if registry is None:
        registry = _breakers[key] = BreakerRegistry(config, clock)
        weakref.finalize(policy, _breakers.pop, key, None)
    elif clock is not None and registry.clock is not clock:
        raise ConfigError("this policy's breakers already read another clock",
                          argument="clock", fix="give the clock before the policy's first "
                          "run, or use a new Policy")
    return registry


def _learning_store(ledger_location: str | None) -> LearningStore:
    """The store beside the run's ledger. Imported here, not at the top, so that pandas
    and DuckDB stay out of the engine's import until learning is switched on."""
    from .learning import LearningStore, learning_location

    return LearningStore(learning_location(ledger_location))
