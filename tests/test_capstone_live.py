"""The capstone in live mode, end to end over real HTTP: six Claude agents against the
local Messages API server, recorded to a cassette, replayed offline with no key, and the
key looked for in every place it must never reach."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshflow_nb import CircuitBreakerConfig, Policy, fixed_approver
from meshflow_nb.agents.claude import AnthropicAgent
from meshflow_nb.agents.estimate import CostCapError, check_cost, estimate_cost
from meshflow_nb.events import EventType
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.localapi.cassette import Cassette
from meshflow_nb.localapi.server import LocalMessagesServer
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline
from meshflow_nb.pipelines.capstone import AGENT_IDS

SECRET = "sk-ant-api03-test-SECRET-0123456789abcdef"
LIVE_VARS = ("MESHFLOW_MOCK", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_REPLAY",
             "MESHFLOW_RECORD", "MESHFLOW_MODEL")
POLICY = Policy("standard", budget_usd=5.0,
                circuit_breaker=CircuitBreakerConfig(max_retries=2, backoff_base_s=0))


@pytest.fixture(scope="module")
def server():
    with LocalMessagesServer() as running:
        yield running


@pytest.fixture
def live(monkeypatch, server):
    """Live mode against the local server, with a key that must never leak."""
    for name in LIVE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    return monkeypatch


def run_capstone(ledger_path, task: str = CAPSTONE_TASK, approve: bool = True):
    pipeline = build_capstone_pipeline(policy=POLICY)
    ledger = ReplayLedger(ledger_path)
    ledger.attach(pipeline)
    result = pipeline.run(task, approver=fixed_approver(approve, "tester", "scripted"))
    return result, ledger


def node_rows(ledger, run_id) -> list[tuple]:
    """Each node's completions in order; parallel branches may finish in either order."""
    frame = ledger.to_dataframe(run_id)
    done = frame[frame["event_type"] == "node_complete"]
    rows = done[["node_id", "output", "tokens_in", "tokens_out", "cost_usd"]]
    return sorted(rows.itertuples(index=False, name=None), key=lambda row: row[0])


def test_live_mode_builds_claude_agents_with_role_prompts_for_all_six_nodes(live):
    pipeline = build_capstone_pipeline()
    agents = {node.id: node.agent for node in pipeline.nodes if node.id in AGENT_IDS}
    assert all(isinstance(agent, AnthropicAgent) for agent in agents.values())
    prompts = {agent.system for agent in agents.values()}
    assert len(prompts) == 6 and all(p.startswith("You are the ") for p in prompts)
    assert agents["quality_gate"].output_tool is not None


def test_the_model_is_one_setting_for_every_agent(live):
    live.setenv("MESHFLOW_MODEL", "claude-sonnet-5-5")
    assert {n.agent.model for n in build_capstone_pipeline().nodes if n.agent} == {
        "claude-sonnet-5-5"}
    assert {n.agent.model for n in build_capstone_pipeline(model="claude-haiku-5-5").nodes
            if n.agent} == {"claude-haiku-5-5"}


def test_the_capstone_runs_live_and_its_ledger_holds_what_the_server_reported(live, tmp_path):
    cassette = tmp_path / "run.json"
    live.setenv("MESHFLOW_RECORD", str(cassette))
    result, ledger = run_capstone(tmp_path / "live.duckdb")
    assert result.ok, result.error
    assert ledger.verify_chain(result.run_id).valid
    recorded = Cassette.load(cassette)
    reported = [e.response["usage"] for e in recorded.exchanges]
    agent_calls = [e for e in result.events
                   if e.type is EventType.NODE_COMPLETE and e.node_id in AGENT_IDS]
    assert len(reported) == len(agent_calls) >= 6
    assert result.totals.tokens_out == sum(u["output_tokens"] for u in reported)
    assert result.totals.tokens_in == sum(
        u["input_tokens"] + u.get("cache_creation_input_tokens", 0)
        + u.get("cache_read_input_tokens", 0) for u in reported)
    assert "local fake server" in recorded.recorded_against


def test_a_replayed_run_writes_the_recorded_outputs_tokens_and_costs(live, tmp_path):
    cassette = tmp_path / "run.json"
    live.setenv("MESHFLOW_RECORD", str(cassette))
    recorded, recorded_ledger = run_capstone(tmp_path / "live.duckdb")
    for name in ("MESHFLOW_RECORD", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        live.delenv(name)
    live.setenv("MESHFLOW_REPLAY", str(cassette))
    replayed, replayed_ledger = run_capstone(tmp_path / "replay.duckdb")
    assert replayed.ok and replayed_ledger.verify_chain(replayed.run_id).valid
    assert node_rows(replayed_ledger, replayed.run_id) == node_rows(
        recorded_ledger, recorded.run_id)


def test_a_request_the_cassette_does_not_hold_fails_loudly_naming_the_difference(
        live, tmp_path):
    cassette = tmp_path / "run.json"
    live.setenv("MESHFLOW_RECORD", str(cassette))
    run_capstone(tmp_path / "live.duckdb")
    for name in ("MESHFLOW_RECORD", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        live.delenv(name)
    live.setenv("MESHFLOW_REPLAY", str(cassette))
    result, _ = run_capstone(tmp_path / "miss.duckdb", task="A different task entirely")
    assert result.status.value == "failed"
    assert "ReplayMissError" in result.error and "replay miss" in result.error
    assert "messages[0].content" in result.error and "A different task" in result.error


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                    min_size=1, max_size=60).filter(str.strip),
       approve=st.booleans())
def test_property_any_recorded_run_replays_to_the_same_ledger(live, tmp_path_factory, task,
                                                                approve):
    folder = tmp_path_factory.mktemp("property")
    cassette = folder / "run.json"
    live.setenv("MESHFLOW_RECORD", str(cassette))
    live.setenv("ANTHROPIC_API_KEY", SECRET)
    live.delenv("MESHFLOW_REPLAY", raising=False)
    recorded, recorded_ledger = run_capstone(folder / "live.duckdb", task, approve)
    live.delenv("MESHFLOW_RECORD")
    live.delenv("ANTHROPIC_API_KEY")
    live.setenv("MESHFLOW_REPLAY", str(cassette))
    replayed, replayed_ledger = run_capstone(folder / "replay.duckdb", task, approve)
    assert replayed.status == recorded.status
    assert node_rows(replayed_ledger, replayed.run_id) == node_rows(
        recorded_ledger, recorded.run_id)


def test_the_key_reaches_no_event_ledger_log_error_or_cassette(live, tmp_path, caplog, server):
    from meshflow_nb.localapi.faults import Fault

    caplog.set_level(logging.DEBUG)
    cassette = tmp_path / "run.json"
    live.setenv("MESHFLOW_RECORD", str(cassette))
    result, ledger = run_capstone(tmp_path / "live.duckdb")
    server.inject(Fault("unauthorized"))
    refused, _ = run_capstone(tmp_path / "refused.duckdb")
    assert not refused.ok and "ANTHROPIC_API_KEY" in refused.error
    ledger.flush()
    sinks = {
        "events": "\n".join(e.to_json() for e in result.events + refused.events),
        "errors": str(refused.error) + refused.summary(),
        "ledger": ledger.to_dataframe().to_json(),
        "ledger file": (tmp_path / "live.duckdb").read_bytes().decode("latin-1"),
        "cassette": cassette.read_text(encoding="utf-8"),
        "logs": caplog.text,
        "server": json.dumps([server.requests, server.request_headers], default=str),
    }
    leaked = [name for name, text in sinks.items() if SECRET in text or "SECRET-0123" in text]
    assert not leaked
    assert "ANTHROPIC_API_KEY" in refused.error


def test_the_cost_preview_bounds_the_run_and_a_cap_below_it_stops_it_before_any_call(
        live, tmp_path, server):
    pipeline = build_capstone_pipeline(policy=POLICY)
    preview = estimate_cost(pipeline, CAPSTONE_TASK)
    assert {c.node_id for c in preview.calls} == set(AGENT_IDS)
    assert next(c for c in preview.calls if c.node_id == "writer").calls == 3  # 2 revisions
    assert preview.models == ["claude-haiku-4-5"]
    assert "Cost preview: at most $" in preview.describe()
    result, _ = run_capstone(tmp_path / "live.duckdb")
    assert 0 < result.totals.cost_usd <= preview.cost_usd
    before = len(server.requests)
    with pytest.raises(CostCapError, match="nothing was called"):
        check_cost(preview, preview.cost_usd / 2)
    assert len(server.requests) == before


def test_mock_mode_wins_over_a_key(live):
    live.setenv("MESHFLOW_MOCK", "1")
    pipeline = build_capstone_pipeline()
    assert not any(isinstance(n.agent, AnthropicAgent) for n in pipeline.nodes)
    assert estimate_cost(pipeline, CAPSTONE_TASK).describe().endswith("costs nothing.")
