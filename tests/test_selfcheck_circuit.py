"""Lesson 12's self-checks, judged against real mock runs of the lesson's lookup workflow
under circuit breakers on a fake clock, as the lesson makes them.

Each check gets right answers (PASS), wrong answers, values of the wrong type, filler
and huge values (HINT): it never raises, and a HINT never gives the answer away.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import CircuitBreakerConfig, MockAgent, Node, Policy, Role, WorkflowDefinition
from meshflow_nb.notebook import FakeClock, FlakyAgent, policy_breakers, selfcheck
from meshflow_nb.notebook.selfcheck.circuit import fewest_retries, first_opening

TASK = "the market for heat pumps in apartment blocks"
EX1_TIMES = (0, 30, 70, 80, 85)
RIGHT_CONFIG = CircuitBreakerConfig(max_retries=0, failure_threshold=3, failure_window_s=60)
HUGE = "x" * 1_000_000


def lookup_flow(agent: Any) -> WorkflowDefinition:
    """The lesson's workflow: a lookup that may fail, then a writer."""
    return (WorkflowDefinition("lookup_and_write")
            .add_node(Node("lookup", agent, Role.RESEARCHER))
            .add_node(Node("writer", MockAgent(Role.EXECUTOR, angle="writer"), Role.EXECUTOR))
            .add_edge("lookup", "writer"))


def on_clock(config: CircuitBreakerConfig, clock: FakeClock) -> Policy:
    """A policy whose breakers read ``clock``."""
    policy = Policy(circuit_breaker=config)
    policy_breakers(policy, clock)
    return policy


def ex1_runs(config: CircuitBreakerConfig) -> dict[int, Any]:
    """Exercise 1's cell: one run per time against a service that is down."""
    clock = FakeClock()
    policy = on_clock(config, clock)
    service = FlakyAgent(MockAgent(Role.RESEARCHER))
    service.down = True
    flow = lookup_flow(service)
    runs = {}
    for t in EX1_TIMES:
        clock.advance(max(0.0, t - clock.now()))
        runs[t] = flow.run(TASK, policy=policy)
    return runs


def ex2_run(wait_s: float, *, back: bool = True, same_policy: bool = True,
            reopen: bool = False) -> Any:
    """Exercise 2: open a breaker, then the learner's steps (wait, service back, run)."""
    clock = FakeClock()
    policy = on_clock(CircuitBreakerConfig(), clock)
    service = FlakyAgent(MockAgent(Role.RESEARCHER))
    service.down = True
    flow = lookup_flow(service)
    flow.run(TASK, policy=policy)
    if reopen:  # the first cell run again: a new policy, a closed breaker, a down service
        policy = on_clock(CircuitBreakerConfig(), FakeClock())
        return flow.run(TASK, policy=policy)
    clock.advance(wait_s)
    service.down = not back
    return flow.run(TASK, policy=policy if same_policy else Policy())


def ex3_runs(max_retries: int) -> list[Any]:
    """Exercise 3's cell: 100 runs of an agent failing 30% of calls, a minute apart."""
    clock = FakeClock()
    policy = on_clock(CircuitBreakerConfig(max_retries=max_retries, failure_threshold=100),
                      clock)
    flow = lookup_flow(FlakyAgent(MockAgent(Role.RESEARCHER), failure_rate=0.3, seed=1))
    runs = []
    for _ in range(100):
        runs.append(flow.run(TASK, policy=policy))
        clock.advance(60)
    return runs


@pytest.fixture(scope="module")
def runs() -> Iterator[SimpleNamespace]:
    """Every exercise's runs, right and wrong, as the lesson's cells make them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        configs = {
            "right": RIGHT_CONFIG,
            "wider": CircuitBreakerConfig(max_retries=0, failure_threshold=3,
                                          failure_window_s=65),
            "retries": CircuitBreakerConfig(failure_threshold=3, failure_window_s=60),
            "two": CircuitBreakerConfig(max_retries=0, failure_threshold=2, failure_window_s=60),
            "default_window": CircuitBreakerConfig(max_retries=0, failure_threshold=3),
            "narrow": CircuitBreakerConfig(max_retries=0, failure_threshold=3,
                                           failure_window_s=5),
        }
        found = SimpleNamespace(configs=configs,
                                ex1={name: ex1_runs(c) for name, c in configs.items()})
        found.ex2 = {"right": ex2_run(10), "late": ex2_run(60), "early": ex2_run(5),
                     "still_down": ex2_run(10, back=False),
                     "other_policy": ex2_run(10, same_policy=False),
                     "reopened": ex2_run(10, reopen=True)}
        found.ex3 = {n: ex3_runs(n) for n in (1, 2, 3, 4)}
        yield found


# --- the arithmetic the checks rely on -----------------------------------------------------


def test_the_exercise_numbers() -> None:
    assert first_opening(EX1_TIMES, 3, 60) == 80
    assert first_opening(EX1_TIMES, 3, 30) == 85
    assert first_opening(EX1_TIMES, 2, 60) == 30
    assert first_opening(EX1_TIMES, 3, 5) is None
    assert fewest_retries(0.3, 0.99) == 3
    assert fewest_retries(0.5, 0.75) == 1
    assert fewest_retries(0.0, 0.99) == 0


# --- exercise 1: breaker_opens ---------------------------------------------------------


def opens(runs: SimpleNamespace, config: Any = "right", opened_at: Any = 80,
          made: str = "right") -> Any:
    """breaker_opens with exercise 1's runs made under ``made``'s config."""
    chosen = runs.configs.get(config, config) if isinstance(config, str) else config
    return selfcheck.breaker_opens(EX1_TIMES, runs.ex1[made], ex1_config=chosen,
                                   ex1_opened_at=opened_at)


@pytest.mark.parametrize("opened_at", [80, 80.0, np.float64(80), np.int64(80)])
def test_breaker_opens_passes(runs: SimpleNamespace, opened_at: Any) -> None:
    assert_pass(opens(runs, opened_at=opened_at), "opened at t=80 s", "30, 70 and 80 s",
                "the failure at 0 s had left the window", "1 call failed fast")


def test_breaker_opens_accepts_a_window_that_behaves_the_same(runs: SimpleNamespace) -> None:
    assert_pass(opens(runs, "wider", made="wider"), "within 65 s")


@pytest.mark.parametrize(("config", "says"), [
    ("retries", "every failed attempt counts against the breaker, retries included"),
    ("two", "opens after 2 failures; exercise 1 asks for the third"),
    ("default_window", "your breaker opened at t=85 s"),
    ("narrow", "your breaker never opened"),
])
def test_breaker_opens_hints_at_a_wrong_config(runs: SimpleNamespace, config: str,
                                               says: str) -> None:
    assert_hint(opens(runs, config, made=config), says)


def test_breaker_opens_hints_at_a_wrong_time(runs: SimpleNamespace) -> None:
    assert_hint(opens(runs, opened_at=85), "the call at that time was refused", hides=80)
    assert_hint(opens(runs, opened_at=1.5), "closed -> open circuit_state event", hides=80)
    assert_hint(opens(runs, opened_at="80"), "drop the quotes")
    assert_hint(opens(runs, opened_at=-1), "cannot be negative")


def test_breaker_opens_needs_the_runs_of_the_config(runs: SimpleNamespace) -> None:
    assert_hint(opens(runs, made="default_window"), "were not made with ex1_config")
    assert_hint(selfcheck.breaker_opens(EX1_TIMES, None, ex1_config=RIGHT_CONFIG,
                                        ex1_opened_at=80), "ex1_runs is None")
    assert_hint(selfcheck.breaker_opens(EX1_TIMES, [], ex1_config=RIGHT_CONFIG,
                                        ex1_opened_at=80), "ex1_runs should be")


@pytest.mark.parametrize("junk", [*WRONG_TYPES, *FILLER, HUGE, {"max_retries": 0}])
def test_breaker_opens_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(opens(runs, config=junk), hides=80)
    assert_hint(opens(runs, opened_at=junk), hides=80)


def test_breaker_opens_unanswered(runs: SimpleNamespace) -> None:
    assert_hint(selfcheck.breaker_opens(EX1_TIMES, None), "not defined")
    assert_hint(selfcheck.breaker_opens(EX1_TIMES, None, ex1_config=None, ex1_opened_at=None),
                "set ex1_config")


# --- exercise 2: probe_closes ----------------------------------------------------------


def test_probe_closes_passes(runs: SimpleNamespace) -> None:
    for name in ("right", "late"):
        assert_pass(selfcheck.probe_closes(runs.ex2[name]), "its call was the probe",
                    "open -> half_open -> closed")


@pytest.mark.parametrize(("name", "says"), [
    ("early", "the breaker was still open"),
    ("still_down", "the probe went through and failed"),
    ("other_policy", "your run never met an open breaker"),
    ("reopened", "your run opened the breaker itself"),
])
def test_probe_closes_hints(runs: SimpleNamespace, name: str, says: str) -> None:
    assert_hint(selfcheck.probe_closes(runs.ex2[name]), says, hides="10 s")


@pytest.mark.parametrize("junk", [*WRONG_TYPES, *FILLER, HUGE])
def test_probe_closes_never_raises_on_junk(junk: Any) -> None:
    assert_hint(selfcheck.probe_closes(junk))


def test_probe_closes_without_a_breaker(runs: SimpleNamespace) -> None:
    plain = lookup_flow(MockAgent(Role.RESEARCHER)).run(TASK, policy=Policy(circuit_breaker=None))
    assert_hint(selfcheck.probe_closes(plain), "your run had no circuit breaker")
    assert_hint(selfcheck.probe_closes(), "ex2_result is not there yet")


# --- exercise 3: retries_chosen --------------------------------------------------------


def chosen(runs: SimpleNamespace, answer: Any, made: int | None = None) -> Any:
    """retries_chosen with exercise 3's batch under ``made`` (default: the answer)."""
    batch = runs.ex3[made if made is not None else answer]
    return selfcheck.retries_chosen(0.3, 0.99, batch, ex3_max_retries=answer)


def test_retries_chosen_passes(runs: SimpleNamespace) -> None:
    assert_pass(chosen(runs, 3), "max_retries=3: 100 of 100 executions succeeded",
                "0.3^4 = 0.81%", "with one retry fewer it is 2.70%")
    assert_pass(chosen(runs, np.int64(3), made=3))


@pytest.mark.parametrize(("answer", "says"), [
    (1, "below 99%"), (2, "below 99%"), (4, "so would fewer retries"),
])
def test_retries_chosen_hints(runs: SimpleNamespace, answer: int, says: str) -> None:
    assert_hint(chosen(runs, answer), says, hides="max_retries=3")


def test_retries_chosen_needs_the_batch_of_the_answer(runs: SimpleNamespace) -> None:
    assert_hint(chosen(runs, 3, made=2), "another max_retries")
    assert_hint(selfcheck.retries_chosen(0.3, 0.99, None, ex3_max_retries=3),
                "ex3_runs is None")


def test_retries_chosen_lucky_batch(runs: SimpleNamespace) -> None:
    """A batch that met a lower target by luck is no justification at a higher one."""
    verdict = selfcheck.retries_chosen(0.3, 0.995, runs.ex3[3], ex3_max_retries=3)
    assert_hint(verdict, "this batch was lucky")


@pytest.mark.parametrize("junk", [*WRONG_TYPES, *FILLER, HUGE, -1, "3"])
def test_retries_chosen_never_raises_on_junk(runs: SimpleNamespace, junk: Any) -> None:
    assert_hint(selfcheck.retries_chosen(0.3, 0.99, runs.ex3[3], ex3_max_retries=junk),
                hides="max_retries=3")
    assert_hint(selfcheck.retries_chosen(junk, 0.99, runs.ex3[3], ex3_max_retries=3))
