"""The course's capstone pipeline (lesson 16) as a builder.

    researcher -> analyst_a || analyst_b -> writer -> quality_gate
    quality_gate -> writer      when quality_score < 0.8  (at most 2 revisions)
    quality_gate -> hitl_gate   when quality_score >= 0.8 (or once the revisions are spent)
    hitl_gate -> publisher      a human approves before anything is published
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..agents.claude import AnthropicAgent
from ..agents.client import live_available
from ..agents.errors import KEY_VAR
from ..agents.mock import MockAgent, MockCritic, mock_enabled
from ..errors import ConfigError
from ..model.graph import Agent, HumanGate, Node
from ..model.roles import RiskTier, Role
from ..policy.config import Policy
from ..workflow import WorkflowDefinition

CAPSTONE_TASK = "Assess the market readiness of solid-state batteries for electric vehicles"
"""The course's task for the capstone pipeline (section 2 of lesson 16)."""
QUALITY_THRESHOLD = 0.8
AGENT_IDS = ("researcher", "analyst_a", "analyst_b", "writer", "quality_gate", "publisher")


def build_capstone_pipeline(
    *,
    agents: Mapping[str, Agent] | None = None,
    quality_scores: Sequence[float] | None = None,
    max_revisions: int = 2,
    gate_timeout_s: float | None = None,
    name: str = "production_pipeline",
    policy: Policy | None = None,
    human_gate: bool = True,
    model: str | None = None,
) -> WorkflowDefinition:
    """Build the capstone workflow.

    ``agents`` maps node ids to agents. Any you leave out get the mock agents with
    ``MESHFLOW_MOCK=1`` (or when ``quality_scores`` forces the mock critic's scores, one
    per draft), and otherwise live Claude agents when live calls have somewhere to go
    (``ANTHROPIC_API_KEY``, a local server, a cassette to replay): ``model``, else
    ``MESHFLOW_MODEL``, else the live default.
    ``human_gate=False`` leaves the gate out, so quality_gate feeds the publisher
    directly: the deliberate misconfiguration of exercise 3, which a REGULATED policy's
    pre-flight rejects (P001) before any node runs.
    """
    chosen = {**_default_agents(quality_scores, model), **(agents or {})}
    missing = [a for a in AGENT_IDS if a not in chosen]
    if missing:
        raise _no_agents(missing)
    workflow = (
        WorkflowDefinition(name, description="Research, parallel analysis, drafting with a "
                           "quality loop, human approval, then publication.", policy=policy)
        .add_node(Node("researcher", chosen["researcher"], Role.RESEARCHER, RiskTier.READ_ONLY,
                       description="Gather facts and structure findings"))
        .add_node(Node("analyst_a", chosen["analyst_a"], Role.EXECUTOR, RiskTier.INTERNAL,
                       description="Analyse from the technical angle"))
        .add_node(Node("analyst_b", chosen["analyst_b"], Role.EXECUTOR, RiskTier.INTERNAL,
                       description="Analyse from the business angle"))
        .add_node(Node("writer", chosen["writer"], Role.EXECUTOR, RiskTier.INTERNAL,
                       description="Synthesise both analyses into a draft"))
        .add_node(Node("quality_gate", chosen["quality_gate"], Role.CRITIC, RiskTier.READ_ONLY,
                       exports=["quality_score", "feedback"],
                       description="Score the draft against the quality rubric"))
    )
    if human_gate:
        workflow.add_node(HumanGate("hitl_gate", timeout_s=gate_timeout_s, content_from="writer",
                                    prompt="Approve this draft for publication?",
                                    description="A human reviewer checks the draft before "
                                                "publishing"))
    approved_goes_to = "hitl_gate" if human_gate else "publisher"
    (workflow
        .add_node(Node("publisher", chosen["publisher"], Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO,
                       description="Finalize and publish after human approval"))
        .add_edge("researcher", "analyst_a")
        .add_edge("researcher", "analyst_b")
        .add_edge("analyst_a", "writer")
        .add_edge("analyst_b", "writer")
        .add_edge("writer", "quality_gate")
        .add_conditional_edge(source="quality_gate", target="writer",
                              condition=f"quality_score < {QUALITY_THRESHOLD}",
                              max_iterations=max_revisions)
        .add_conditional_edge(source="quality_gate", target=approved_goes_to,
                              condition=f"quality_score >= {QUALITY_THRESHOLD}"))
    if human_gate:
        workflow.add_edge("hitl_gate", "publisher")
    if agents is None:  # rebuildable from its arguments alone: a paused run can resume
        workflow.builder = {"function": f"{__name__}:build_capstone_pipeline", "kwargs": {
            "quality_scores": list(quality_scores) if quality_scores else None,
            "max_revisions": max_revisions, "gate_timeout_s": gate_timeout_s, "name": name,
            "human_gate": human_gate, "model": model}}
    return workflow


def _no_agents(missing: list[str]) -> ConfigError:
    """The one-line error naming both ways forward: mock agents, or live ones."""
    ways = f"set MESHFLOW_MOCK=1 for the offline mock agents, or {KEY_VAR} for live Claude agents"
    if len(missing) == len(AGENT_IDS):
        return ConfigError("the capstone pipeline has no agents", argument="agents", fix=ways)
    return ConfigError(f"the capstone pipeline has no agent for {', '.join(missing)}",
                       argument="agents", fix=f"add them to agents=, or {ways}")


def _default_agents(quality_scores: Sequence[float] | None,
                    model: str | None) -> dict[str, Agent]:
    """Mock agents in mock mode, live ones when live calls can go somewhere, else none."""
    if mock_enabled() or quality_scores is not None:
        return _mock_agents(quality_scores)
    if live_available():
        return live_agents(model)
    return {}


def live_agents(model: str | None = None) -> dict[str, Agent]:
    """The six Claude agents, each with its role's prompt; every answer streams."""
    return {
        "researcher": AnthropicAgent(Role.RESEARCHER, model=model, stream=True),
        "analyst_a": AnthropicAgent(Role.EXECUTOR, angle="technical", model=model, stream=True),
        "analyst_b": AnthropicAgent(Role.EXECUTOR, angle="business", model=model, stream=True),
        "writer": AnthropicAgent(Role.EXECUTOR, angle="writer", model=model, stream=True,
                                 max_tokens=1500),
        "quality_gate": AnthropicAgent.critic(model=model, max_tokens=400),
        "publisher": AnthropicAgent(Role.ORCHESTRATOR, model=model, max_tokens=200,
                                    stream=True),
    }


def _mock_agents(quality_scores: Sequence[float] | None) -> dict[str, Agent]:
    return {
        "researcher": MockAgent(Role.RESEARCHER),
        "analyst_a": MockAgent(Role.EXECUTOR, angle="technical"),
        "analyst_b": MockAgent(Role.EXECUTOR, angle="business"),
        "writer": MockAgent(Role.EXECUTOR, angle="writer"),
        "quality_gate": MockCritic(Role.CRITIC, scores=quality_scores,
                                   threshold=QUALITY_THRESHOLD),
        "publisher": MockAgent(Role.ORCHESTRATOR),
    }
