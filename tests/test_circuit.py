"""Retries, backoff and the per-agent circuit breaker, on a fake clock that never sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshflow_nb.errors import ConfigError
from meshflow_nb.policy.circuit import (
    BreakerEvent,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    SystemClock,
)


class FakeClock:
    """`now` moves only when told to, or when someone sleeps (instantly, recorded)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Agent:
    """Fails with the given errors in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def make(config: CircuitBreakerConfig | None = None, agent: str = "writer",
         ) -> tuple[CircuitBreaker, FakeClock, list[BreakerEvent]]:
    clock = FakeClock()
    events: list[BreakerEvent] = []
    breaker = CircuitBreaker(agent, config or CircuitBreakerConfig(), clock, events.append)
    return breaker, clock, events


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def kinds(events: list[BreakerEvent]) -> list[tuple[str, ...]]:
    return [(e.kind, e.detail["from_state"], e.detail["to_state"])
            if e.kind == "circuit_state" else (e.kind,) for e in events]


async def fail_times(breaker: CircuitBreaker, n: int, clock: FakeClock | None = None,
                     gap_s: float = 0.0) -> None:
    """``n`` executions that each fail once (no retries configured by the caller)."""
    for _ in range(n):
        with pytest.raises(ValueError):
            await breaker.call(Agent(ValueError("boom")))
        if clock is not None:
            clock.advance(gap_s)


NO_RETRY = CircuitBreakerConfig(max_retries=0, failure_threshold=3, failure_window_s=30.0,
                                half_open_after_s=10.0)


# --- retries and backoff -------------------------------------------------------------


def test_success_passes_through_without_events() -> None:
    breaker, clock, events = make()
    agent = Agent()
    assert run(breaker.call(agent)) == "ok"
    assert agent.calls == 1 and events == [] and clock.sleeps == []
    assert breaker.state is BreakerState.CLOSED


def test_flaky_agent_succeeds_on_third_attempt_with_two_retries() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=2, failure_threshold=5))
    agent = Agent(ValueError("first"), TimeoutError("second"))
    assert run(breaker.call(agent)) == "ok"
    assert agent.calls == 3
    assert clock.sleeps == [0.5, 1.0]
    assert [e.kind for e in events] == ["retry", "retry"]
    assert events[0].detail == {"attempt": 1, "max_retries": 2, "delay_s": 0.5,
                                "error": "ValueError: first"}
    assert events[1].detail["attempt"] == 2 and events[1].detail["delay_s"] == 1.0
    assert events[1].detail["error"] == "TimeoutError: second"
    assert breaker.snapshot()["failures_in_window"] == 2


def test_retries_run_out_and_the_last_error_is_raised() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=2, failure_threshold=10))
    agent = Agent(ValueError("1"), ValueError("2"), ValueError("3"), ValueError("4"))
    with pytest.raises(ValueError, match="3"):
        run(breaker.call(agent))
    assert agent.calls == 3 and clock.sleeps == [0.5, 1.0]
    assert [e.kind for e in events] == ["retry", "retry"]


def test_max_retries_zero_means_one_attempt() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=0))
    agent = Agent(ValueError("once"))
    with pytest.raises(ValueError):
        run(breaker.call(agent))
    assert agent.calls == 1 and clock.sleeps == [] and events == []


def test_backoff_doubles_and_is_capped() -> None:
    config = CircuitBreakerConfig(max_retries=6, failure_threshold=10, backoff_base_s=1.0,
                                  backoff_max_s=5.0)
    breaker, clock, _ = make(config)
    agent = Agent(*[ValueError(str(i)) for i in range(6)])
    assert run(breaker.call(agent)) == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_is_off_by_default_and_deterministic_when_on() -> None:
    plain = CircuitBreaker("a", CircuitBreakerConfig(), FakeClock())
    assert [plain.delay_for(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    config = CircuitBreakerConfig(jitter_s=0.25)
    first, again = (CircuitBreaker("a", config, FakeClock()) for _ in range(2))
    delays = [first.delay_for(n) for n in (1, 2, 3)]
    assert delays == [again.delay_for(n) for n in (1, 2, 3)]
    assert all(0 <= d - b < 0.25 for d, b in zip(delays, [0.5, 1.0, 2.0], strict=True))
    assert delays != [0.5, 1.0, 2.0]
    assert CircuitBreaker("a", CircuitBreakerConfig(jitter_s=100), FakeClock()).delay_for(1) \
        == 8.0


def test_make_call_gives_a_fresh_awaitable_each_attempt() -> None:
    breaker, _, _ = make(CircuitBreakerConfig(failure_threshold=10))
    agent = Agent(ValueError("x"))
    made: list[object] = []

    def make_call() -> Any:
        made.append(coro := agent())
        return coro

    assert run(breaker.call(make_call)) == "ok"
    assert len(made) == 2 and made[0] is not made[1]


# --- opening the breaker -------------------------------------------------------------


def test_threshold_failures_within_window_open_the_breaker() -> None:
    breaker, clock, events = make(NO_RETRY)

    async def scenario() -> None:
        await fail_times(breaker, 2, clock, gap_s=5.0)
        assert breaker.state is BreakerState.CLOSED and events == []
        await fail_times(breaker, 1)

    run(scenario())
    assert breaker.state is BreakerState.OPEN
    assert len(events) == 1
    assert events[0].kind == "circuit_state" and events[0].agent == "writer"
    assert events[0].detail["from_state"] == "closed" and events[0].detail["to_state"] == "open"
    assert events[0].detail["failures"] == 3
    assert "3 failure(s) within 30 s" in events[0].detail["reason"]


def test_failures_spread_beyond_the_window_do_not_open_it() -> None:
    breaker, clock, events = make(NO_RETRY)
    run(fail_times(breaker, 5, clock, gap_s=16.0))  # never 3 within 30 s
    assert breaker.state is BreakerState.CLOSED and events == []
    assert breaker.snapshot()["failures_in_window"] == 1  # now = last failure + 16 s


def test_retries_count_toward_the_threshold_and_stop_when_it_opens() -> None:
    config = CircuitBreakerConfig(max_retries=5, failure_threshold=3)
    breaker, clock, events = make(config)
    agent = Agent(*[ValueError(str(i)) for i in range(10)])
    with pytest.raises(ValueError, match="2"):  # the third failure, not a CircuitOpenError
        run(breaker.call(agent))
    assert agent.calls == 3  # not 6: once open, no more attempts
    assert clock.sleeps == [0.5, 1.0]
    assert kinds(events) == [("retry",), ("retry",), ("circuit_state", "closed", "open")]
    assert breaker.state is BreakerState.OPEN


def test_open_breaker_fails_fast_without_calling_the_agent() -> None:
    breaker, clock, _ = make(NO_RETRY)
    run(fail_times(breaker, 3))
    opened = clock.now()
    clock.advance(2.5)
    agent = Agent()
    with pytest.raises(CircuitOpenError) as caught:
        run(breaker.call(agent))
    assert agent.calls == 0
    err = caught.value
    assert err.agent == "writer" and err.retry_at == opened + 10.0 and err.wait_s == 7.5
    assert "'writer'" in str(err) and "half-opens in 7.5 s" in str(err)
    assert "ValueError: boom" in str(err)


def test_open_breaker_is_not_retried() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=2, failure_threshold=1))
    run(fail_times(breaker, 1))
    events.clear()
    with pytest.raises(CircuitOpenError):
        run(breaker.call(Agent()))
    assert clock.sleeps == [] and events == []


# --- half-open and the probe ---------------------------------------------------------


def test_open_turns_half_open_after_the_wait_with_an_event() -> None:
    breaker, clock, events = make(NO_RETRY)
    run(fail_times(breaker, 3))
    clock.advance(9.99)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.01)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.state is BreakerState.HALF_OPEN  # reported once, not on every read
    assert kinds(events) == [("circuit_state", "closed", "open"),
                             ("circuit_state", "open", "half_open")]


def test_one_probe_at_a_time_and_its_success_closes_the_breaker() -> None:
    breaker, clock, events = make(NO_RETRY)
    calls: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()
        await fail_times(breaker, 3)
        clock.advance(10.0)

        async def probe() -> str:
            calls.append("probe")
            await gate.wait()
            return "probed"

        task = asyncio.create_task(breaker.call(probe))
        await asyncio.sleep(0)
        assert calls == ["probe"] and breaker.snapshot()["probe_in_flight"]
        second = Agent()
        with pytest.raises(CircuitOpenError) as caught:
            await breaker.call(second)
        assert second.calls == 0 and caught.value.probing
        assert "probe call is still running" in str(caught.value)
        gate.set()
        assert await task == "probed"

    run(scenario())
    assert kinds(events) == [("circuit_state", "closed", "open"),
                             ("circuit_state", "open", "half_open"),
                             ("circuit_state", "half_open", "closed")]
    assert events[-1].detail["failures"] == 0
    assert breaker.state is BreakerState.CLOSED
    # the failure history was cleared: it takes the full threshold again to open
    run(fail_times(breaker, 2))
    assert breaker.state is BreakerState.CLOSED


def test_probe_failure_reopens_and_restarts_the_timer() -> None:
    config = CircuitBreakerConfig(max_retries=2, failure_threshold=3)
    breaker, clock, events = make(config)
    with pytest.raises(ValueError):  # three attempts, the third opens it
        run(breaker.call(Agent(*[ValueError(str(i)) for i in range(3)])))
    clock.advance(12.0)
    probe = Agent(ValueError("still down"), ValueError("never reached"))
    with pytest.raises(ValueError, match="still down"):
        run(breaker.call(probe))
    assert probe.calls == 1  # the probe is one attempt, never retried
    reopened = clock.now()
    assert kinds(events)[-2:] == [("circuit_state", "open", "half_open"),
                                  ("circuit_state", "half_open", "open")]
    assert "probe call failed (ValueError: still down)" in events[-1].detail["reason"]
    with pytest.raises(CircuitOpenError) as caught:
        run(breaker.call(Agent()))
    assert caught.value.retry_at == reopened + 10.0
    clock.advance(9.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_cancelled_probe_lets_the_next_caller_probe() -> None:
    breaker, clock, events = make(NO_RETRY)

    async def scenario() -> None:
        await fail_times(breaker, 3)
        clock.advance(10.0)
        started = asyncio.Event()

        async def hang() -> str:
            started.set()
            await asyncio.Event().wait()
            return "never"

        task = asyncio.create_task(breaker.call(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.state is BreakerState.HALF_OPEN
        assert await breaker.call(Agent()) == "ok"

    run(scenario())
    assert kinds(events)[-1] == ("circuit_state", "half_open", "closed")


# --- what counts as a failure ----------------------------------------------------------


def test_cancellation_is_never_retried_nor_counted() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=2, failure_threshold=1))
    agent = Agent(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        run(breaker.call(agent))
    assert agent.calls == 1 and clock.sleeps == [] and events == []
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["failures_in_window"] == 0


def test_a_timeout_counts_as_a_failure() -> None:
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=1, failure_threshold=2))
    calls = 0

    def timed_out() -> Any:
        nonlocal calls
        calls += 1
        return asyncio.wait_for(asyncio.Event().wait(), timeout=0)  # times out at once

    with pytest.raises(asyncio.TimeoutError):
        run(breaker.call(timed_out))
    assert calls == 2 and clock.sleeps == [0.5]
    assert kinds(events) == [("retry",), ("circuit_state", "closed", "open")]
    assert events[0].detail["error"].startswith("TimeoutError")


def test_a_raised_timeout_error_opens_the_breaker() -> None:
    breaker, _, events = make(CircuitBreakerConfig(max_retries=0, failure_threshold=1))
    with pytest.raises(asyncio.TimeoutError):
        run(breaker.call(Agent(TimeoutError())))
    assert breaker.state is BreakerState.OPEN
    assert kinds(events) == [("circuit_state", "closed", "open")]


# --- listeners -----------------------------------------------------------------------


def test_per_call_listener_gets_that_calls_events_and_the_standing_one_gets_all() -> None:
    breaker, _, standing = make(CircuitBreakerConfig(max_retries=1, failure_threshold=3))
    run_a: list[BreakerEvent] = []
    run_b: list[BreakerEvent] = []

    async def scenario() -> None:
        await breaker.call(Agent(ValueError("a")), on_event=run_a.append)  # 1 retry, 2 fails
        with pytest.raises(ValueError):
            await breaker.call(Agent(ValueError("b1"), ValueError("b2")),
                               on_event=run_b.append)

    run(scenario())
    assert kinds(run_a) == [("retry",)]
    assert kinds(run_b) == [("retry",), ("circuit_state", "closed", "open")]  # b2 opened it
    assert standing == run_a + run_b


def test_a_failing_listener_does_not_leave_a_probe_stuck() -> None:
    breaker, clock, _ = make(NO_RETRY)
    run(fail_times(breaker, 3))
    clock.advance(10.0)

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("listener bug")

    agent = Agent()
    with pytest.raises(RuntimeError, match="listener bug"):
        run(breaker.call(agent, on_event=broken))
    assert agent.calls == 0
    assert run(breaker.call(agent)) == "ok"
    assert breaker.state is BreakerState.CLOSED


# --- the registry --------------------------------------------------------------------


def test_registry_has_one_breaker_per_agent_that_remembers_across_runs() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(NO_RETRY, clock)
    writer = registry.breaker("writer")
    assert registry.breaker("writer") is writer
    assert registry.breaker("critic") is not writer
    assert writer.clock is clock and writer.config is NO_RETRY
    run(fail_times(writer, 3))  # "run 1"
    assert registry.breaker("writer").state is BreakerState.OPEN  # "run 2" sees it open
    assert registry.breaker("critic").state is BreakerState.CLOSED
    assert [s["agent"] for s in registry.snapshot()] == ["writer", "critic"]
    assert "writer" in registry and len(registry) == 2


def test_registry_on_event_sets_the_standing_listener() -> None:
    registry = BreakerRegistry(NO_RETRY, FakeClock())
    seen: list[BreakerEvent] = []
    states: list[str] = []

    def watch(event: BreakerEvent) -> None:  # reading the breaker from a listener is fine
        seen.append(event)
        states.append(registry.breaker("writer").snapshot()["state"])

    breaker = registry.breaker("writer", on_event=watch)
    assert registry.breaker("writer").on_event is watch  # not cleared by a plain lookup
    run(fail_times(breaker, 3))
    assert kinds(seen) == [("circuit_state", "closed", "open")] and states == ["open"]


def test_snapshot_describes_an_open_breaker() -> None:
    breaker, clock, _ = make(NO_RETRY)
    run(fail_times(breaker, 3))
    clock.advance(4.0)
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["failures_in_window"] == 3
    assert snap["opened_at"] == clock.now() - 4.0 and snap["half_open_in_s"] == 6.0
    assert snap["last_error"] == "ValueError: boom" and not snap["probe_in_flight"]


def test_system_clock_is_monotonic_and_sleeps() -> None:
    clock = SystemClock()
    before = clock.now()
    run(clock.sleep(0))
    assert clock.now() >= before
    assert isinstance(CircuitBreaker("a", CircuitBreakerConfig()).clock, SystemClock)


# --- configuration -------------------------------------------------------------------


def test_defaults_match_the_course() -> None:
    config = CircuitBreakerConfig()
    assert (config.max_retries, config.failure_threshold, config.failure_window_s,
            config.half_open_after_s) == (2, 3, 30.0, 10.0)
    assert (config.backoff_base_s, config.backoff_max_s, config.jitter_s) == (0.5, 8.0, 0.0)


@pytest.mark.parametrize(("field", "value", "fix"), [
    ("max_retries", -1, "use 0 for no retries"),
    ("max_retries", 1.5, "whole number"),
    ("max_retries", True, "whole number"),
    ("failure_threshold", 0, "use 1 to open the breaker on the first failure"),
    ("failure_window_s", 0, "> 0"),
    ("failure_window_s", float("nan"), "finite"),
    ("half_open_after_s", -3.0, "positive number of seconds"),
    ("half_open_after_s", float("inf"), "finite"),
    ("backoff_base_s", -0.1, "use 0 to retry without pausing"),
    ("backoff_max_s", 0.0, "> 0"),
    ("jitter_s", -1.0, "use 0 for no jitter"),
    ("failure_window_s", "30", "finite number"),
])
def test_config_validation_names_the_field_and_the_fix(field: str, value: Any,
                                                       fix: str) -> None:
    with pytest.raises(ValueError) as caught:
        CircuitBreakerConfig(**{field: value})
    message = str(caught.value)
    assert f"CircuitBreakerConfig.{field}" in message and fix in message
    assert repr(value) in message


@pytest.mark.parametrize("kwargs", [
    {"max_retries": 0}, {"failure_threshold": 1}, {"backoff_base_s": 0},
    {"failure_window_s": 1}, {"jitter_s": 0.1},
])
def test_config_accepts_the_edges(kwargs: dict[str, Any]) -> None:
    CircuitBreakerConfig(**kwargs)


# --- what an error says about itself ---------------------------------------------------


class Overloaded(Exception):
    """An error that asks for a pause, as a model API's 429/529 does."""

    retryable = True

    def __init__(self, retry_after_s: float | None) -> None:
        super().__init__("overloaded")
        self.retry_after_s = retry_after_s


class RefusedKey(Exception):
    retryable = False


@pytest.mark.parametrize(("asked", "paused"), [(3.0, 3.0), (0.1, 0.5), (1e9, 60.0),
                                               (float("nan"), 0.5), (-5, 0.5), (None, 0.5)])
def test_a_retry_waits_the_servers_retry_after_at_least_and_at_most_the_cap(asked, paused):
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=1, backoff_base_s=0.5))
    assert run(breaker.call(Agent(Overloaded(asked)))) == "ok"
    assert clock.sleeps == [paused]
    assert events[0].detail["delay_s"] == paused


def test_an_error_that_says_it_is_not_retryable_is_raised_at_once_and_not_counted():
    breaker, clock, events = make(CircuitBreakerConfig(max_retries=3, failure_threshold=1))
    agent = Agent(RefusedKey("401"))
    with pytest.raises(RefusedKey):
        run(breaker.call(agent))
    assert agent.calls == 1 and clock.sleeps == [] and events == []
    assert breaker.state.value == "closed"          # one failure would have opened it


def test_max_retry_after_s_is_checked_like_every_pause():
    with pytest.raises(ConfigError, match="max_retry_after_s"):
        CircuitBreakerConfig(max_retry_after_s=-1)


def test_a_bad_setting_or_an_unknown_model_is_never_retried():
    from meshflow_nb import ConfigError as BadSetting
    from meshflow_nb.agents.pricing import UnknownModelError

    for error in (BadSetting("no such thing"), UnknownModelError("gpt-x", ["claude-haiku-4-5"])):
        breaker, _, _ = make(CircuitBreakerConfig(max_retries=3, failure_threshold=1))
        agent = Agent(error)
        with pytest.raises(type(error)):
            run(breaker.call(agent))
        assert agent.calls == 1 and breaker.state.value == "closed"
