"""`agent_for`: a role's agent, mock with MESHFLOW_MOCK=1, live with somewhere to call,
and one line naming both ways on otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from meshflow_nb import (
    AnthropicAgent,
    ConfigError,
    MeshflowError,
    MissingKeyError,
    Node,
    Role,
    WorkflowDefinition,
    agent_for,
)
from meshflow_nb.agents.mock import MockAgent, MockCritic
from meshflow_nb.agents.structured import REVIEW_TOOL

MOCK = {"MESHFLOW_MOCK": "1"}
LIVE = {"ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.CRITIC])
def test_mock_mode_gives_a_mock_agent_for_every_role(role: Role) -> None:
    agent = agent_for(role, environ=MOCK)
    assert type(agent) is MockAgent and agent.role is role


def test_mock_mode_gives_the_critic_the_mock_critic() -> None:
    assert type(agent_for(Role.CRITIC, environ=MOCK)) is MockCritic


def test_the_angle_and_a_role_written_as_text_reach_the_agent() -> None:
    agent = agent_for("executor", angle="technical", environ=MOCK)
    assert agent.role is Role.EXECUTOR and agent.angle == "technical"


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_every_spelling_of_mock_mode_is_mock_mode(value: str) -> None:
    assert isinstance(agent_for(Role.RESEARCHER, environ={"MESHFLOW_MOCK": value}), MockAgent)


def test_mock_mode_wins_over_a_key() -> None:
    assert isinstance(agent_for(Role.RESEARCHER, environ={**MOCK, **LIVE}), MockAgent)


def test_with_a_key_and_no_mock_mode_the_agent_is_claude() -> None:
    agent = agent_for(Role.EXECUTOR, angle="writer", environ=LIVE)
    assert isinstance(agent, AnthropicAgent)
    assert agent.role is Role.EXECUTOR and agent.angle == "writer"


def test_a_live_critic_answers_through_the_review_tool() -> None:
    agent = agent_for(Role.CRITIC, environ=LIVE)
    assert isinstance(agent, AnthropicAgent) and agent.output_tool is REVIEW_TOOL


def test_the_live_model_comes_from_the_argument_else_the_given_environment() -> None:
    assert agent_for(Role.RESEARCHER, model="claude-sonnet-4-5", environ=LIVE).model == \
        "claude-sonnet-4-5"
    chosen = agent_for(Role.RESEARCHER, environ={**LIVE, "MESHFLOW_MODEL": "claude-opus-4-1"})
    assert chosen.model == "claude-opus-4-1"


@pytest.mark.parametrize("environ", [{"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
                                     {"MESHFLOW_REPLAY": "run.json"}])
def test_a_local_server_or_a_replay_is_somewhere_to_call(environ: dict[str, str]) -> None:
    assert isinstance(agent_for(Role.RESEARCHER, environ=environ), AnthropicAgent)


@pytest.mark.parametrize("environ", [{}, {"MESHFLOW_MOCK": "0"}, {"MESHFLOW_MOCK": "off"}])
def test_with_neither_it_says_both_ways_in_one_line(environ: dict[str, str]) -> None:
    with pytest.raises(MissingKeyError) as raised:
        agent_for(Role.RESEARCHER, environ=environ)
    text = str(raised.value)
    assert "MESHFLOW_MOCK=1" in text and "ANTHROPIC_API_KEY" in text and "\n" not in text
    assert isinstance(raised.value, MeshflowError)


def test_the_given_environment_replaces_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    with pytest.raises(MissingKeyError):
        agent_for(Role.RESEARCHER, environ={})
    assert isinstance(agent_for(Role.RESEARCHER), MockAgent)  # no environ: os.environ


@pytest.mark.parametrize("role", ["boss", None, 3, Role, ["researcher"]])
def test_an_unknown_role_lists_the_roles(role: Any) -> None:
    with pytest.raises(ConfigError, match="is not a Role") as raised:
        agent_for(role, environ=MOCK)
    assert "Role.RESEARCHER" in str(raised.value) and raised.value.argument == "role"


@pytest.mark.parametrize("angle", ["", "   ", 3, ["writer"]])
def test_an_angle_that_is_not_text_is_refused(angle: Any) -> None:
    with pytest.raises(ConfigError, match="angle must be text") as raised:
        agent_for(Role.EXECUTOR, angle=angle, environ=MOCK)
    assert raised.value.argument == "angle"


def test_mock_agents_from_it_make_the_same_run_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    workflow = (WorkflowDefinition("hello")
                .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER))
                .add_node(Node("writer", agent_for(Role.EXECUTOR, angle="writer"),
                               Role.EXECUTOR))
                .add_edge("researcher", "writer"))
    first, second = workflow.run("Explain a hash chain"), workflow.run("Explain a hash chain")
    assert first.ok and first.executed == ["researcher", "writer"]
    assert first.output == second.output and first.totals.tokens == second.totals.tokens > 0
    assert first.run_id != second.run_id
