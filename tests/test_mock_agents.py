"""Mock agents and the price table: what a learner notices when running MESHFLOW_MOCK=1."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from meshflow_nb.agents import mock
from meshflow_nb.agents.base import AgentResult, NodeContext
from meshflow_nb.agents.mock import (
    MockAgent,
    MockCritic,
    mock_enabled,
    mock_latency_s,
    mock_seed,
)
from meshflow_nb.agents.pricing import (
    DEFAULT_MODEL,
    PRICES,
    ModelPrice,
    UnknownModelError,
    cost_usd,
    price_for,
)
from meshflow_nb.errors import ConfigError
from meshflow_nb.model.roles import Role

REPO = Path(__file__).resolve().parents[1]
TASK = "Assess the market readiness of solid-state batteries for electric vehicles"
SEEDS = range(21)


def make_ctx(node_id, role, inputs=None, iteration=1, feedback=None, outputs=None, variables=None):
    return NodeContext(
        run_id="r",
        node_id=node_id,
        role=str(role),
        task=TASK,
        inputs=inputs or {},
        outputs=outputs or dict(inputs or {}),
        variables=variables or {},
        iteration=iteration,
        feedback=feedback,
    )


def call(agent, ctx) -> AgentResult:
    return asyncio.run(agent(ctx))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """No real delays, and no timing assertions: keep the suite fast and stable."""
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")


def capstone(seed: int, scores=None) -> dict[str, AgentResult]:
    """researcher -> analysts -> writer -> critic -> (writer -> critic) -> publisher.

    The contexts are the ones the runner builds: the loop re-runs the writer with the
    critic's review as input and feedback, and the human gate (content_from="writer")
    hands the latest draft to the publisher.
    """
    outputs: dict[str, object] = {}
    variables: dict[str, object] = {}
    results: dict[str, AgentResult] = {}

    def step(key, node_id, agent, inputs, iteration=1, feedback=None):
        ctx = make_ctx(node_id, agent.role, inputs, iteration, feedback, {**outputs}, {**variables})
        results[key] = result = call(agent, ctx)
        outputs[node_id] = result.output
        variables.update(result.variables)

    step("research", "researcher", MockAgent(Role.RESEARCHER, seed=seed), {})
    findings = {"researcher": outputs["researcher"]}
    step("tech", "analyst_a", MockAgent(Role.EXECUTOR, "technical", seed=seed), findings)
    step("biz", "analyst_b", MockAgent(Role.EXECUTOR, "business", seed=seed), findings)
    analyses = {"analyst_a": outputs["analyst_a"], "analyst_b": outputs["analyst_b"]}
    writer = MockAgent(Role.EXECUTOR, "writer", seed=seed)
    critic = MockCritic(seed=seed, scores=scores)
    step("draft", "writer", writer, analyses)
    step("review", "quality_gate", critic, {"writer": outputs["writer"]})
    looped = outputs["quality_gate"]
    step("revision", "writer", writer, {**analyses, "quality_gate": looped}, 2,
         results["review"].text)
    step("review2", "quality_gate", critic, {"writer": outputs["writer"]}, 2)
    publisher = MockAgent(Role.ORCHESTRATOR, seed=seed)
    step("publish", "publisher", publisher, {"hitl_gate": outputs["writer"]})
    return results


# --- determinism -------------------------------------------------------------------


def test_same_call_twice_gives_identical_results():
    agent = MockAgent(Role.RESEARCHER, seed=7)
    assert call(agent, make_ctx("researcher", Role.RESEARCHER)) == call(
        agent, make_ctx("researcher", Role.RESEARCHER)
    )


def test_a_fresh_process_writes_the_same_text():
    script = (
        "import asyncio\n"
        "from meshflow_nb.agents.base import NodeContext\n"
        "from meshflow_nb.agents.mock import MockAgent\n"
        "from meshflow_nb import Role\n"
        f"ctx = NodeContext('r', 'researcher', 'researcher', {TASK!r}, {{}}, {{}}, {{}})\n"
        "print(asyncio.run(MockAgent(Role.RESEARCHER, seed=3)(ctx)).text, end='')\n"
    )
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "12345"}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    here = call(MockAgent(Role.RESEARCHER, seed=3), make_ctx("researcher", Role.RESEARCHER))
    assert child.stdout == here.text


def test_the_whole_capstone_is_reproducible():
    assert capstone(5) == capstone(5)


def test_different_seeds_give_different_text():
    texts = {capstone(seed)["draft"].text for seed in range(5)}
    assert len(texts) == 5
    research = {call(MockAgent(Role.RESEARCHER, seed=s), make_ctx("r", "r")).text for s in (1, 2)}
    assert len(research) == 2


def test_seed_comes_from_the_environment_when_not_given(monkeypatch):
    ctx = make_ctx("researcher", Role.RESEARCHER)
    monkeypatch.setenv("MESHFLOW_MOCK_SEED", "9")
    from_env = call(MockAgent(Role.RESEARCHER), ctx)
    assert from_env == call(MockAgent(Role.RESEARCHER, seed=9), ctx)
    assert from_env != call(MockAgent(Role.RESEARCHER, seed=10), ctx)


# --- role-shaped text --------------------------------------------------------------


def test_researcher_lists_findings_and_sources_on_the_task():
    text = capstone(16)["research"].text
    assert "solid-state batteries for electric vehicles" in text
    assert "Key findings:" in text and "Sources to check:" in text


def test_each_analyst_takes_its_angle_and_builds_on_the_research():
    results = capstone(16)
    findings = re.findall(r"^\d+\. (.+?)\.?$", results["research"].text, re.MULTILINE)
    for key, angle in (("tech", "Technical"), ("biz", "Business")):
        text = results[key].text
        assert text.startswith(f"{angle} analysis:")
        assert "researcher's findings" in text
        assert any(finding[:40] in text for finding in findings)


@pytest.mark.parametrize("seed", SEEDS)
def test_writer_drafts_a_titled_synthesis_of_both_angles(seed):
    results = capstone(seed)
    for key in ("draft", "revision"):
        text = results[key].text
        assert text.startswith("# ")
        assert "technical analysis" in text and "business analysis" in text
        assert 80 <= len(text.split()) <= 250


def test_revision_differs_and_answers_the_critics_feedback():
    results = capstone(16)
    draft, revision = results["draft"].text, results["revision"].text
    assert revision != draft
    assert "Changes in revision 2" in revision and "Changes in revision" not in draft
    flagged = [line.split(":")[0] for line in results["review"].variables["feedback"].split("\n")]
    assert len(flagged) == 2
    for criterion in flagged:
        assert f"- {criterion.capitalize()}:" in revision


def test_writer_quotes_feedback_it_cannot_match_to_the_rubric():
    ctx = make_ctx("writer", Role.EXECUTOR, iteration=2, feedback="Too many adjectives.")
    text = call(MockAgent(Role.EXECUTOR, seed=1), ctx).text
    assert '"Too many adjectives"' in text


def test_publisher_confirms_publication_with_an_id():
    results = capstone(16)
    text = results["publish"].text
    assert re.search(r'^Published ".+" to .+ as pub-[0-9a-f]{8}\.', text)
    assert f"quality score {results['review2'].variables['quality_score']:.2f}" in text


@pytest.mark.parametrize("role", [Role.PLANNER, Role.GUARDIAN, Role.HUMAN])
def test_other_roles_give_a_short_answer_about_the_task(role):
    text = call(MockAgent(role, seed=1), make_ctx("node", role, {"up": "Some notes."})).text
    assert 5 <= len(text.split()) <= 80
    assert "solid-state batteries" in text


# --- the critic and the quality loop ----------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_default_critic_fails_the_first_draft_and_passes_the_revision(seed):
    results = capstone(seed)
    first, second = results["review"], results["review2"]
    assert 0.55 <= first.variables["quality_score"] < 0.8
    assert 0.8 <= second.variables["quality_score"] <= 0.93
    assert "revise" in first.text and "passes" in second.text
    assert first.uncertainty > second.uncertainty


def test_critic_reports_its_review_in_output_and_variables():
    results = capstone(16)
    review = results["review"]
    assert review.output == review.text
    assert review.text.startswith('Quality review of "The market readiness')
    assert set(review.variables) == {"quality_score", "feedback"}
    for criterion in ("coverage", "evidence", "clarity", "structure"):
        assert f"- {criterion} " in review.text
    assert review.variables["feedback"] in review.text.replace("\n- ", "\n")


def test_forced_scores_are_used_in_order_and_the_last_repeats():
    critic = MockCritic(scores=[0.6, 0.85], seed=1)
    scores = [
        call(critic, make_ctx("quality_gate", Role.CRITIC, iteration=i)).variables
        for i in (1, 2, 3)
    ]
    assert [s["quality_score"] for s in scores] == [0.6, 0.85, 0.85]


def test_a_plain_mock_agent_in_the_critic_role_reviews_like_the_default_critic():
    ctx = make_ctx("quality_gate", Role.CRITIC)
    assert call(MockAgent(Role.CRITIC, seed=4), ctx) == call(MockCritic(seed=4), ctx)


@pytest.mark.parametrize("kwargs", [{"scores": []}, {"scores": [1.2]}, {"threshold": 2}])
def test_critic_rejects_impossible_settings(kwargs):
    with pytest.raises(ValueError):
        MockCritic(**kwargs)


# --- tokens, cost, uncertainty -----------------------------------------------------


def test_token_counts_grow_with_the_input():
    agent = MockAgent(Role.EXECUTOR, "technical", seed=1)
    finding = "- Costs fell sharply in pilot plants.\n"
    small = call(agent, make_ctx("a", Role.EXECUTOR, {"researcher": finding * 10}))
    large = call(agent, make_ctx("a", Role.EXECUTOR, {"researcher": finding * 100}))
    assert large.tokens_in - small.tokens_in == pytest.approx(90 * len(finding) / 4, abs=1)
    assert 100 <= small.tokens_out <= 1500


def test_every_capstone_call_looks_like_a_real_llm_call():
    for result in capstone(16).values():
        assert 100 <= result.tokens_in <= 2000 and 100 <= result.tokens_out <= 1500
        assert result.model == DEFAULT_MODEL
        assert 0.0 <= result.uncertainty <= 1.0


def test_cost_follows_the_price_table_and_the_model():
    ctx = make_ctx("researcher", Role.RESEARCHER)
    costs = {}
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"):
        result = call(MockAgent(Role.RESEARCHER, model=model, seed=1), ctx)
        price = PRICES[model]
        expected = (
            result.tokens_in * price.input_usd_per_mtok
            + result.tokens_out * price.output_usd_per_mtok
        ) / 1e6
        assert result.cost_usd == pytest.approx(expected) and result.model == model
        costs[model] = result.cost_usd
    assert costs["claude-haiku-4-5"] < costs["claude-sonnet-4-5"] < costs["claude-opus-4-1"]


def test_price_table_values_and_override():
    sonnet = price_for("claude-sonnet-4-5")
    assert (sonnet.input_usd_per_mtok, sonnet.output_usd_per_mtok, sonnet.model_class) == (
        3.0, 15.0, "medium")
    assert cost_usd("claude-opus-4-1", 1_000_000, 1_000_000) == 90.0
    assert cost_usd("mock-free", 5000, 5000) == 0.0
    mine = {"local": ModelPrice("local", 0.5, 1.0, "small")}
    assert cost_usd("local", 2_000_000, 1_000_000, prices=mine) == 2.0
    with pytest.raises(TypeError):
        PRICES["local"] = mine["local"]  # type: ignore[index]


def test_unknown_model_lists_the_known_ones_and_how_to_add_one():
    with pytest.raises(UnknownModelError) as caught:
        call(MockAgent(Role.RESEARCHER, model="gpt-imaginary"), make_ctx("r", "r"))
    message = str(caught.value)
    assert "gpt-imaginary" in message and "ModelPrice" in message
    assert all(model in message for model in PRICES)
    assert isinstance(caught.value, KeyError)


# --- environment and latency -------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "YES", " On "])
def test_mock_mode_switches_on(value):
    assert mock_enabled({"MESHFLOW_MOCK": value})


@pytest.mark.parametrize("environ", [{}, {"MESHFLOW_MOCK": "0"}, {"MESHFLOW_MOCK": "off"}])
def test_mock_mode_stays_off(environ):
    assert not mock_enabled(environ)


def test_seed_and_latency_defaults_and_values():
    assert mock_seed({}) == 16 and mock_seed({"MESHFLOW_MOCK_SEED": "42"}) == 42
    assert mock_latency_s({}) == 0.08
    assert mock_latency_s({"MESHFLOW_MOCK_LATENCY": "0.5"}) == 0.5


def test_bad_environment_values_say_which_variable_is_wrong():
    with pytest.raises(ValueError, match=r"MESHFLOW_MOCK_SEED must be an integer.*'abc'"):
        mock_seed({"MESHFLOW_MOCK_SEED": "abc"})
    for bad in ("-1", "fast", "nan"):
        with pytest.raises(ValueError, match="MESHFLOW_MOCK_LATENCY"):
            mock_latency_s({"MESHFLOW_MOCK_LATENCY": bad})


def test_zero_latency_never_sleeps(monkeypatch):
    async def forbidden(delay):
        raise AssertionError(f"slept {delay} s with zero latency")

    monkeypatch.setattr(mock.asyncio, "sleep", forbidden)
    capstone(1)
    call(MockAgent(Role.RESEARCHER, latency_s=0.0, seed=1), make_ctx("r", "r"))


def test_default_latency_keeps_the_capstone_under_a_second(monkeypatch):
    monkeypatch.delenv("MESHFLOW_MOCK_LATENCY")
    slept: list[float] = []

    async def record(delay):
        slept.append(delay)

    monkeypatch.setattr(mock.asyncio, "sleep", record)
    capstone(1)
    _, tech, biz, draft, review, _, _, publish = slept
    assert tech == biz and draft > tech > review > publish
    assert sum(slept) - biz <= 1.0  # the analysts run side by side
    call(MockAgent(Role.RESEARCHER, latency_s=0.25, seed=1), make_ctx("r", "r"))
    assert slept[-1] == 0.25


@pytest.mark.parametrize("role", ["wizard", 3, None])
def test_a_mock_agent_with_no_such_role_is_refused_with_the_roles(role) -> None:
    with pytest.raises(ConfigError, match="is not a Role") as caught:
        MockAgent(role)
    assert caught.value.argument == "MockAgent.role" and "Role.CRITIC" in str(caught.value)


def test_a_mock_agent_takes_a_role_by_its_name_in_any_case() -> None:
    assert MockAgent(" Critic ").role is Role.CRITIC
