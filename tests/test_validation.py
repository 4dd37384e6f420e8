"""Every public constructor checks its arguments when it is called: the careless and the
hostile value each get a `ConfigError` naming the argument and the fix, cut short, and
nothing half-built is left behind. (Nodes and gates: tests/test_preflight.py.)"""

from __future__ import annotations

import math

import pytest

from meshflow_nb import (
    AgentResult,
    CircuitBreakerConfig,
    ConfigError,
    EventType,
    HumanInLoopConfig,
    MeshflowError,
    Policy,
    PolicyMode,
    RiskTier,
    RunStatus,
    WorkflowDefinition,
)

pytestmark = pytest.mark.usefixtures("mock_mode")

HUGE = "x" * 1_000_000

POLICY_MISTAKES = [
    ({"budget_usd": True}, "Policy.budget_usd", "not True"),       # a bool is not $1
    ({"budget_usd": math.nan}, "Policy.budget_usd", "not nan"),
    ({"budget_usd": math.inf}, "Policy.budget_usd", "not inf"),
    ({"budget_usd": -1}, "Policy.budget_usd", "not -1"),
    ({"budget_usd": 0}, "Policy.budget_usd", "> 0"),
    ({"carbon_budget_g": "50"}, "Policy.carbon_budget_g", "not '50'"),
    ({"enable_guardian": "no"}, "Policy.enable_guardian", "True or False"),  # was: on
    ({"immutable_audit": 1}, "Policy.immutable_audit", "True or False"),
    ({"circuit_breaker": 3}, "Policy.circuit_breaker", "CircuitBreakerConfig"),
    ({"human_in_loop": True}, "Policy.human_in_loop", "HumanInLoopConfig"),
    ({"guardian_action": "explode"}, "Policy.guardian_action", "not an action"),
    ({"uncertainty_escalate": 1.5}, "Policy.uncertainty_escalate", "<= 1"),
    ({"uncertainty_escalate": 0.9, "uncertainty_block": 0.5}, "Policy.uncertainty_escalate",
     "above uncertainty_block"),
    ({"prices": {"m": 1.0}}, "Policy.prices", "ModelPrice"),
    ({"budget": 5}, "budget", "did you mean 'budget_usd'"),
]


@pytest.mark.parametrize(("settings", "argument", "words"), POLICY_MISTAKES)
def test_a_policy_built_wrong_names_the_field(settings, argument, words):
    with pytest.raises(ConfigError) as caught:
        Policy(PolicyMode.STANDARD, **settings)
    assert caught.value.argument == argument and words in str(caught.value)
    assert caught.value.fix and isinstance(caught.value, MeshflowError)


@pytest.mark.parametrize(("settings", "argument", "words"), [
    ({"timeout_s": -1}, "HumanInLoopConfig.timeout_s", "not -1"),
    ({"timeout_s": "abc"}, "HumanInLoopConfig.timeout_s", "not 'abc'"),
    ({"timeout_s": math.nan}, "HumanInLoopConfig.timeout_s", "not nan"),
    ({"tier_threshold": "high"}, "HumanInLoopConfig.tier_threshold", "RiskTier.EXTERNAL_IO"),
    ({"tier_threshold": 2}, "HumanInLoopConfig.tier_threshold", "not a risk tier"),
    ({"enabled": "yes"}, "HumanInLoopConfig.enabled", "True or False"),
    ({"approval_webhook": 443}, "HumanInLoopConfig.approval_webhook", "URL"),
    ({"webhook_secret_env": ""}, "HumanInLoopConfig.webhook_secret_env", "environment"),
])
def test_a_gate_setting_built_wrong_names_the_field(settings, argument, words):
    with pytest.raises(ConfigError) as caught:
        HumanInLoopConfig(**settings)
    assert caught.value.argument == argument and words in str(caught.value)


def test_a_tier_may_be_named():
    assert HumanInLoopConfig(tier_threshold="external_io").tier_threshold is RiskTier.EXTERNAL_IO


@pytest.mark.parametrize(("settings", "argument"), [
    ({"max_retries": -1}, "CircuitBreakerConfig.max_retries"),
    ({"failure_window_s": math.inf}, "CircuitBreakerConfig.failure_window_s"),
    ({"half_open_after_s": 10**12}, "CircuitBreakerConfig.half_open_after_s"),
])
def test_a_breaker_built_wrong_names_the_field(settings, argument):
    with pytest.raises(ConfigError) as caught:
        CircuitBreakerConfig(**settings)
    assert caught.value.argument == argument


@pytest.mark.parametrize(("settings", "argument"), [
    ({"cost_usd": math.nan}, "AgentResult.cost_usd"),
    ({"cost_usd": 1e12}, "AgentResult.cost_usd"),                 # beyond DECIMAL(18, 9)
    ({"cost_usd": -50.0}, "AgentResult.cost_usd"),               # would buy budget
    ({"tokens_in": 2**70}, "AgentResult.tokens_in"),             # beyond BIGINT
    ({"tokens_out": -1}, "AgentResult.tokens_out"),
    ({"tokens_in": 1.5}, "AgentResult.tokens_in"),
    ({"uncertainty": 2}, "AgentResult.uncertainty"),
    ({"confidence": math.nan}, "AgentResult.confidence"),
    ({"carbon_g": -0.1}, "AgentResult.carbon_g"),
    ({"text": ["a", "list"]}, "AgentResult.text"),
    ({"variables": "quality_score"}, "AgentResult.variables"),
    ({"model": 42}, "AgentResult.model"),
])
def test_a_result_that_cannot_be_stored_is_refused_naming_the_field(settings, argument):
    with pytest.raises(ConfigError) as caught:
        AgentResult(**{"text": "x", **settings})
    assert caught.value.argument == argument


def test_an_unstorable_value_fails_its_node_and_the_next_run_is_unaffected():
    workflow = (WorkflowDefinition("costly")
                .add_node("a", lambda ctx: AgentResult(text="x", cost_usd=math.nan)))
    failed = workflow.run("t")
    assert failed.status is RunStatus.FAILED
    assert "AgentResult.cost_usd" in failed.error
    fine = WorkflowDefinition("fine").add_node("a", lambda ctx: "ok").run("t")
    assert fine.ok


def test_a_negative_cost_cannot_buy_budget():
    ran = []
    workflow = (WorkflowDefinition("refund")
                .add_node("a", lambda ctx: AgentResult(text="a", cost_usd=-50.0))
                .add_node("b", lambda ctx: ran.append("b") or AgentResult(text="b", cost_usd=30.0))
                .add_edge("a", "b"))
    result = workflow.run("t", policy=Policy(PolicyMode.STANDARD, budget_usd=1.0))
    assert result.status is RunStatus.FAILED and "AgentResult.cost_usd" in result.error
    assert not ran and result.totals.cost_usd == 0.0


def test_a_dict_results_accounting_counts():
    workflow = (WorkflowDefinition("dict")
                .add_node("a", lambda ctx: {"text": "a", "cost_usd": 1.0, "tokens_in": 10})
                .add_node("b", lambda ctx: "b").add_edge("a", "b"))
    result = workflow.run("t", policy=Policy(PolicyMode.STANDARD, budget_usd=0.5))
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.totals.tokens_in == 10
    assert [e.type for e in result.events].count(EventType.BUDGET_EXCEEDED) == 1


@pytest.mark.parametrize(("build", "argument"), [
    (lambda: WorkflowDefinition("w", policy="regulated"), "WorkflowDefinition.policy"),
    (lambda: WorkflowDefinition("w").add_node("a", lambda c: 1).run("t", policy="dev"),
     "policy"),
    (lambda: WorkflowDefinition(""), "WorkflowDefinition.name"),
    (lambda: WorkflowDefinition("a\nb"), "WorkflowDefinition.name"),
    (lambda: WorkflowDefinition("w").add_node(7), "node"),
    (lambda: WorkflowDefinition("w").add_node("a", lambda c: 1).run(42), "task"),
])
def test_a_workflow_used_wrong_names_the_argument(build, argument):
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.argument == argument


def test_messages_cut_a_huge_value_short():
    for build in (lambda: Policy(PolicyMode.STANDARD, budget_usd=HUGE),
                  lambda: HumanInLoopConfig(timeout_s=HUGE),
                  lambda: AgentResult(text="x", model=[HUGE])):
        with pytest.raises(ConfigError) as caught:
            build()
        assert len(str(caught.value)) < 400
