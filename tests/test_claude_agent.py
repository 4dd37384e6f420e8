"""AnthropicAgent through the real anthropic SDK against the local Messages API server:
answers, usage and cost, structured reviews, streaming, and every error path in sync,
async and streaming modes."""

from __future__ import annotations

import asyncio
import math

import anthropic
import pytest

from meshflow_nb import CircuitBreakerConfig, Policy, WorkflowDefinition
from meshflow_nb.agents.base import NodeContext
from meshflow_nb.agents.claude import AnthropicAgent, live_model
from meshflow_nb.agents.errors import (
    MissingKeyError,
    ModelAuthError,
    ModelOutputError,
    ModelOverloadedError,
    RetiredModelError,
)
from meshflow_nb.agents.pricing import LIVE_MODEL, PRICES, cost_usd
from meshflow_nb.errors import ConfigError
from meshflow_nb.events import EventType
from meshflow_nb.localapi.faults import Fault, closed_port
from meshflow_nb.localapi.server import LocalMessagesServer
from meshflow_nb.model.roles import Role

TASK = "Assess the market readiness of solid-state batteries"
MODES = ("async", "sync", "stream")


@pytest.fixture(scope="module")
def server():
    with LocalMessagesServer() as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults_left(server):
    server.clear_faults()
    yield
    server.clear_faults()


def context(on_text=None, **inputs) -> NodeContext:
    return NodeContext(run_id="r1", node_id="node", role="executor", task=TASK,
                       inputs=inputs or {"researcher": "Research brief: three findings."},
                       outputs={}, variables={}, on_text=on_text)


def client_for(server, mode: str, url: str | None = None):
    kind = anthropic.Anthropic if mode == "sync" else anthropic.AsyncAnthropic
    return kind(base_url=url or server.url, api_key="sk-test-not-a-real-key", max_retries=0)


def agent(server, mode: str = "async", **settings) -> AnthropicAgent:
    settings.setdefault("role", Role.EXECUTOR)
    return AnthropicAgent(client=client_for(server, mode), stream=mode == "stream", **settings)


def call(an_agent: AnthropicAgent, ctx: NodeContext | None = None):
    return asyncio.run(an_agent(ctx or context()))


# --- answers, usage and cost ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_answer_carries_the_servers_usage_and_its_priced_cost(server, mode):
    result = call(agent(server, mode, angle="writer"))
    usage = server.last_usage if hasattr(server, "last_usage") else None
    body = server.requests[-1]
    assert result.text.startswith("# ")                   # the writer's Markdown draft
    assert body["model"] == LIVE_MODEL and body["system"][0]["text"].startswith(
        "You are the writer of a governed research workflow.")
    assert result.tokens_out > 0 and result.tokens_in > 0
    uncached = result.tokens_in - result.cache_write_tokens - result.cache_read_tokens
    assert result.cost_usd == pytest.approx(cost_usd(
        LIVE_MODEL, uncached, result.tokens_out, cache_write_tokens=result.cache_write_tokens,
        cache_read_tokens=result.cache_read_tokens))
    assert usage is None or usage["output_tokens"] == result.tokens_out


def test_a_repeated_system_prompt_is_read_from_the_cache_and_costs_less(server):
    first = call(agent(server, role=Role.RESEARCHER, system="You are the researcher of a "
                       "governed research workflow. Cache test one."))
    second = call(agent(server, role=Role.RESEARCHER, system="You are the researcher of a "
                        "governed research workflow. Cache test one."))
    assert first.cache_write_tokens > 0 and first.cache_read_tokens == 0
    assert second.cache_read_tokens == first.cache_write_tokens
    assert second.cost_usd < first.cost_usd


def test_streaming_hands_every_delta_to_the_live_view_and_they_add_up_to_the_text(server):
    deltas: list[str] = []
    result = call(agent(server, "stream", angle="writer"), context(on_text=deltas.append))
    assert len(deltas) > 3 and "".join(deltas) == result.text


def test_the_model_comes_from_meshflow_model_when_none_is_given(monkeypatch):
    monkeypatch.setenv("MESHFLOW_MODEL", "claude-sonnet-5-5")
    assert live_model() == "claude-sonnet-5-5"
    assert AnthropicAgent(Role.RESEARCHER).model == "claude-sonnet-5-5"
    monkeypatch.delenv("MESHFLOW_MODEL")
    assert AnthropicAgent(Role.RESEARCHER).model == LIVE_MODEL


# --- structured reviews --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_critic_scores_through_the_forced_review_tool_and_passes_the_draft_on(server, mode):
    draft = "# Solid-state batteries\n\nA draft."
    result = call(AnthropicAgent.critic(client=client_for(server, mode),
                                        stream=mode == "stream"), context(writer=draft))
    body = server.requests[-1]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert 0 <= result.variables["quality_score"] <= 1
    assert isinstance(result.variables["feedback"], str) and result.variables["feedback"]
    assert result.output == draft                      # the gate downstream sees the draft


def test_a_model_without_forced_tool_choice_is_asked_in_words(server):
    critic = AnthropicAgent.critic(model="claude-sonnet-5-5", client=client_for(server, "async"))
    result = call(critic, context(writer="# Draft"))
    body = server.requests[-1]
    assert body["tool_choice"] == {"type": "auto"}
    assert "Answer only by calling the submit_review tool" in body["messages"][0]["content"]
    assert 0 <= result.variables["quality_score"] <= 1


@pytest.mark.parametrize("mode", MODES)
def test_a_malformed_review_is_a_clear_model_output_error(server, mode):
    server.inject(Fault("bad_tool_input"))
    critic = AnthropicAgent.critic(client=client_for(server, mode), stream=mode == "stream")
    with pytest.raises(ModelOutputError, match="does not fit its schema: input"):
        call(critic, context(writer="# Draft"))


def test_a_malformed_review_fails_its_node_and_the_run_ends_cleanly(server):
    server.inject(Fault("bad_tool_input"))
    workflow = (WorkflowDefinition("review")
                .add_node("writer", lambda ctx: "# Draft", role=Role.EXECUTOR)
                .add_node("critic", AnthropicAgent.critic(client=client_for(server, "async")),
                          role=Role.CRITIC, exports=["quality_score", "feedback"])
                .add_edge("writer", "critic"))
    result = workflow.run(TASK)
    assert result.status.value == "failed"
    assert result.nodes["critic"].status == "failed"
    assert "ModelOutputError" in result.error and "submit_review" in result.error


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("kind", "status"), [("rate_limit", 429), ("overloaded", 529)])
def test_overload_is_retryable_and_carries_the_servers_retry_after(server, mode, kind, status):
    server.inject(Fault(kind, retry_after_ms=1250))
    with pytest.raises(ModelOverloadedError) as caught:
        call(agent(server, mode))
    assert caught.value.retryable and caught.value.status == status
    assert caught.value.retry_after_s == pytest.approx(1.25)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["unauthorized", "forbidden"])
def test_a_refused_key_names_the_variable_and_is_not_retried(server, mode, kind):
    server.inject(Fault(kind))
    with pytest.raises(ModelAuthError, match="ANTHROPIC_API_KEY") as caught:
        call(agent(server, mode))
    assert not caught.value.retryable


@pytest.mark.parametrize("mode", MODES)
def test_a_retired_model_names_itself_its_replacement_and_the_current_models(mode):
    with LocalMessagesServer(models=["claude-sonnet-5-5"]) as only_new, \
            pytest.raises(RetiredModelError) as caught:
        call(AnthropicAgent(Role.RESEARCHER, model="claude-sonnet-4-5",
                            client=client_for(only_new, mode), stream=mode == "stream"))
    message = str(caught.value)
    assert "'claude-sonnet-4-5'" in message and "replaced by claude-sonnet-5-5" in message
    assert "claude-haiku-4-5" in message and "MESHFLOW_MODEL" in message


def test_a_stream_cut_short_is_overload(server):
    server.inject(Fault("stream_error"))
    deltas: list[str] = []
    with pytest.raises(ModelOverloadedError, match="broke off"):
        call(agent(server, "stream"), context(on_text=deltas.append))
    assert deltas                                      # the part that came was shown


@pytest.mark.parametrize("mode", MODES)
def test_a_dead_server_is_overload_not_a_crash(server, mode):
    dead = client_for(server, mode, url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelOverloadedError, match="could not reach"):
        call(AnthropicAgent(Role.RESEARCHER, client=dead, stream=mode == "stream"))


def test_the_breaker_retries_overload_after_the_asked_pause_and_the_run_completes(server):
    server.inject(Fault("overloaded", retry_after_ms=40))
    policy = Policy("dev", circuit_breaker=CircuitBreakerConfig(max_retries=2, backoff_base_s=0))
    workflow = WorkflowDefinition("one", policy=policy).add_node(
        "researcher", agent(server, role=Role.RESEARCHER), role=Role.RESEARCHER)
    result = workflow.run(TASK)
    retries = [e for e in result.events if e.type is EventType.NODE_RETRY]
    assert result.ok and len(retries) == 1
    assert retries[0].payload["delay_s"] == pytest.approx(0.04)


def test_a_refused_key_is_tried_once_under_the_breaker(server):
    server.inject(Fault("unauthorized", times=5))
    before = len(server.requests)
    policy = Policy("dev", circuit_breaker=CircuitBreakerConfig(max_retries=3, backoff_base_s=0))
    workflow = WorkflowDefinition("one", policy=policy).add_node(
        "researcher", agent(server, role=Role.RESEARCHER), role=Role.RESEARCHER)
    result = workflow.run(TASK)
    assert not result.ok and "ANTHROPIC_API_KEY" in result.error
    assert len(server.requests) - before <= 1
    assert not [e for e in result.events if e.type is EventType.NODE_RETRY]


# --- partial output events -----------------------------------------------------------


def streaming_workflow(server, policy=None) -> WorkflowDefinition:
    return WorkflowDefinition("stream", policy=policy).add_node(
        "writer", agent(server, "stream", angle="writer"), role=Role.EXECUTOR)


def test_partial_output_reaches_the_bus_but_not_the_ledger_by_default(server, tmp_path):
    from meshflow_nb.ledger import ReplayLedger
    ledger = ReplayLedger(tmp_path / "l.duckdb")
    workflow = streaming_workflow(server, Policy("dev"))
    ledger.attach(workflow)
    result = workflow.run(TASK)
    partial = [e for e in result.events if e.type is EventType.NODE_PARTIAL]
    assert partial and "".join(e.payload["delta"] for e in partial) == \
        result.nodes["writer"].text
    stored = ledger.to_dataframe(result.run_id)
    assert "node_partial" not in set(stored["event_type"])
    assert ledger.verify_chain(result.run_id).valid


def test_partial_output_is_recorded_when_the_policy_asks(server, tmp_path):
    from meshflow_nb.ledger import ReplayLedger
    ledger = ReplayLedger(tmp_path / "l.duckdb")
    workflow = streaming_workflow(server, Policy("dev", record_partial_output=True))
    ledger.attach(workflow)
    result = workflow.run(TASK)
    stored = ledger.to_dataframe(result.run_id)
    partial = [e for e in result.events if e.type is EventType.NODE_PARTIAL]
    assert list(stored["event_type"]).count("node_partial") == len(partial) > 0
    assert ledger.verify_chain(result.run_id).valid


# --- construction --------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "argument"), [
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 2.5}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"), ({"temperature": math.nan}, "temperature"),
    ({"temperature": -0.1}, "temperature"), ({"temperature": "hot"}, "temperature"),
    ({"stream": "yes"}, "stream"), ({"client": "http://x"}, "client"),
    ({"role": "boss"}, "role"),
])
def test_bad_settings_are_refused_at_construction(settings, argument):
    settings.setdefault("role", Role.RESEARCHER)
    with pytest.raises(ConfigError) as caught:
        AnthropicAgent(**settings)
    assert argument in caught.value.argument


def test_temperature_on_a_model_that_rejects_it_is_refused_before_any_call():
    with pytest.raises(ConfigError, match="rejects temperature"):
        AnthropicAgent(Role.RESEARCHER, model="claude-sonnet-5-5", temperature=0.2)


def test_temperature_is_sent_where_the_model_takes_it(server):
    call(agent(server, temperature=0.3))
    assert server.requests[-1]["temperature"] == 0.3


def test_an_unknown_model_is_refused_at_construction_with_the_known_ones():
    with pytest.raises(KeyError) as caught:
        AnthropicAgent(Role.RESEARCHER, model="claude-imaginary-9")
    assert "claude-imaginary-9" in str(caught.value) and "MESHFLOW_PRICES" in str(caught.value)
    assert all(model in str(caught.value) for model in PRICES)


def test_no_key_and_nowhere_to_call_is_one_error_naming_both_ways(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_REPLAY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingKeyError) as caught:
        call(AnthropicAgent(Role.RESEARCHER))
    assert "MESHFLOW_MOCK=1" in str(caught.value) and "ANTHROPIC_API_KEY" in str(caught.value)


def test_a_loopback_base_url_needs_no_key(server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    result = call(AnthropicAgent(Role.RESEARCHER))
    assert result.text.startswith("Research brief")
