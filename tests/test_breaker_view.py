"""The notebook's view of a circuit breaker: the fake clock, the flaky agent, the policy's
breakers on a given clock, the watch, its plot and the state diagram."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshflow_nb import (
    CircuitBreakerConfig,
    ConfigError,
    Node,
    Policy,
    Role,
    WorkflowDefinition,
)
from meshflow_nb.notebook import (
    BreakerWatch,
    FakeClock,
    FlakyAgent,
    draw_breaker,
    plot_breaker,
    policy_breakers,
)
from meshflow_nb.notebook.breaker_view import run_outcome, transitions

TASK = "a task"


@pytest.fixture(autouse=True)
def mock_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")


def flow(agent: Any) -> WorkflowDefinition:
    """One lookup node that may fail."""
    return WorkflowDefinition("lookup").add_node(Node("lookup", agent, Role.RESEARCHER))


def calls(agent: FlakyAgent, n: int) -> list[bool]:
    """Call the agent ``n`` times; True for each call that answered."""
    async def once() -> bool:
        try:
            await agent(None)
        except ConnectionError:
            return False
        return True
    return [asyncio.run(once()) for _ in range(n)]


def answer(ctx: Any) -> str:
    return "ok"


async def async_answer(ctx: Any) -> str:
    return "ok"


# --- the clock and the flaky agent ---------------------------------------------------------


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    asyncio.run(clock.sleep(0.5))
    assert clock.now() == 0.5 and clock.sleeps == [0.5]
    assert clock.advance(10) == 10.5 and clock.sleeps == [0.5]
    for bad in (-1, "10", None, True):
        with pytest.raises(ConfigError, match="advance"):
            clock.advance(bad)


def test_a_flaky_agent_fails_on_cue_and_the_same_way_every_time() -> None:
    first = FlakyAgent(async_answer, fail_first=2)
    assert calls(first, 3) == [False, False, True] and first.failed == 2
    down = FlakyAgent(async_answer)
    down.down = True
    assert calls(down, 2) == [False, False]
    a, b = (FlakyAgent(async_answer, failure_rate=0.5, seed=3) for _ in range(2))
    assert calls(a, 20) == calls(b, 20) and 0 < a.failed < 20


def test_a_failing_call_takes_its_time_on_the_clock() -> None:
    clock = FakeClock()
    agent = FlakyAgent(async_answer, clock=clock, fail_after_s=5)
    agent.down = True
    calls(agent, 2)
    assert clock.now() == 10 and [c.at_s for c in agent.calls] == [0, 5]


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.3", True, None])
def test_a_failure_rate_outside_0_and_1_is_refused(rate: Any) -> None:
    with pytest.raises(ConfigError, match="failure_rate"):
        FlakyAgent(async_answer, failure_rate=rate)


# --- a policy's breakers on a clock --------------------------------------------------------


def test_a_policy_s_breakers_read_the_clock_they_were_given() -> None:
    clock = FakeClock()
    policy = Policy(circuit_breaker=CircuitBreakerConfig())
    registry = policy_breakers(policy, clock)
    assert registry.clock is clock and policy_breakers(policy) is registry
    agent = FlakyAgent(async_answer)
    agent.down = True
    result = flow(agent).run(TASK, policy=policy)
    assert result.status.value == "failed" and clock.sleeps == [0.5, 1.0]
    assert registry.breaker("lookup").state == "open"
    with pytest.raises(ConfigError, match="another clock"):
        policy_breakers(policy, FakeClock())


def test_a_policy_without_a_breaker_has_no_breakers() -> None:
    with pytest.raises(ConfigError, match="no circuit breaker"):
        policy_breakers(Policy(circuit_breaker=None))


# --- the watch and its plot ------------------------------------------------------------


def outage() -> BreakerWatch:
    """Down at 0 (opens at 1.5), refused at 5, back and probed at 12."""
    clock = FakeClock()
    policy = Policy(circuit_breaker=CircuitBreakerConfig())
    watch = BreakerWatch(policy, "lookup", clock)
    agent = FlakyAgent(async_answer)
    workflow = flow(agent)
    agent.down = True
    for t, down in ((0, True), (5, True), (12, False)):
        clock.advance(t - clock.now() if t > clock.now() else 0)
        agent.down = down
        watch.saw(workflow.run(TASK, policy=policy))
    return watch


def test_the_watch_records_every_state_change_and_run_on_the_clock() -> None:
    watch = outage()
    assert watch.states() == [(0.0, "closed"), (1.5, "open"), (12.0, "half_open"),
                              (12.0, "closed")]
    outcomes = [(m.at_s, m.detail["outcome"]) for m in watch.moments if m.kind == "outcome"]
    assert outcomes == [(1.5, "failed"), (5.0, "refused"), (12.0, "completed")]
    assert [m.detail["delay_s"] for m in watch.moments if m.kind == "retry"] == [0.5, 1.0]
    text = watch.text()
    assert "t=   1.50 s  circuit_state closed -> open: 3 failure(s) within 30 s" in text
    assert "t=   5.00 s  outcome       run refused" in text


def test_the_plot_draws_the_watch_and_prints_its_record() -> None:
    watch = outage()
    figure = plot_breaker(watch, title="an outage")
    assert figure.text() == watch.text()
    assert figure._repr_png_().startswith(b"\x89PNG")
    ax = figure.axes[0]
    assert ax.get_title() == "an outage"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["closed", "half-open", "open"]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["state for an instant", "failed attempt, retried", "run completed",
                      "run failed", "run refused"]


@pytest.mark.parametrize("bad", [None, [], "watch", Policy()])
def test_the_plot_refuses_what_is_no_watch(bad: Any) -> None:
    with pytest.raises(ConfigError, match="BreakerWatch"):
        plot_breaker(bad)


def test_a_watch_needs_a_policy_with_a_breaker() -> None:
    with pytest.raises(ConfigError, match="circuit breaker"):
        BreakerWatch(Policy(circuit_breaker=None), "lookup", FakeClock())


def test_a_run_that_never_reached_the_agent_was_refused() -> None:
    watch = outage()
    refused = [m for m in watch.moments if m.kind == "outcome"][1]
    assert refused.detail["outcome"] == "refused"
    plain = flow(answer).run(TASK, policy=Policy(circuit_breaker=None))
    assert run_outcome(plain, "lookup") == "completed"


# --- the state diagram -----------------------------------------------------------------


def test_the_diagram_has_three_states_and_the_config_s_numbers() -> None:
    config = CircuitBreakerConfig(failure_threshold=4, failure_window_s=20, half_open_after_s=7)
    drawing = draw_breaker(config, state="open")
    svg = drawing.svg()
    shown = svg.replace("&#45;", "-")   # dot writes a hyphen as an entity
    for text in ("closed", "half-open", "open", "4 failures within 20 s", "7 s passed",
                 "the probe succeeds", "the probe fails"):
        assert text in shown, text
    assert svg == draw_breaker(config, state="open").svg()  # the same drawing every time
    assert str(drawing).splitlines() == [f"{a} -> {b}: {w}" for a, b, w in transitions(config)]
    assert 'fill="#ef9a9a"' in svg and svg != draw_breaker(config).svg()


@pytest.mark.parametrize(("config", "state", "says"), [
    (None, None, "CircuitBreakerConfig"), ({"max_retries": 1}, None, "CircuitBreakerConfig"),
    (CircuitBreakerConfig(), "OPEN", "state must be one of"),
    (CircuitBreakerConfig(), "half-open", "state must be one of"),
])
def test_the_diagram_refuses_bad_arguments(config: Any, state: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        draw_breaker(config, state)
