"""Lesson 12's self-checks: each exercise judged against the learner's own runs.

The names the checks read are the lesson's: what its cells made (``ex1_times``,
``ex1_runs``, ``ex3_failure_rate``, ``ex3_target``, ``ex3_runs``) and the answer variables
(``ex1_config``, ``ex1_opened_at``, ``ex2_result``, ``ex3_max_retries``). A run that
depends on an answer is made by the cell after the answer cell, so it is None until the
learner has answered (`OrNone`). Every fact a check uses comes from the runs' events:
the policy each run recorded in ``run_start``, its ``node_retry`` and ``circuit_state``
events, and how its ``lookup`` node ended.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ...engine.results import RunResult
from ...events import EventType, plural
from ...model.status import RunStatus
from ...policy.circuit import CircuitBreakerConfig
from ..breaker_view import run_outcome
from .expect import RUN, Count, Expect, Instance, OrNone, Unfit
from .framework import Verdict, hint, passed, self_check

AGENT = "lookup"
"""The node whose breaker every exercise watches."""
EX1_THRESHOLD, EX1_WINDOW_S = 3, 60.0
"""Exercise 1's breaker: it opens on the third failure within 60 s."""


class Seconds(Expect):
    """A time on the fake clock: a number zero or more, not text."""

    kind = "a number of seconds, such as 12.5"

    def clean(self, value: Any, where: str) -> float:
        """The time as a float; a number in quotes is told to lose its quotes."""
        if isinstance(value, str):
            try:
                float(value.strip().removesuffix("s").strip())
            except ValueError:
                raise self.refuse(value, where) from None
            raise Unfit(f"{where} should be a number, not the text {value!r}: drop the quotes")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise self.refuse(value, where)
        if value < 0:
            raise Unfit(f"{where} is a time on the clock, which starts at 0: it cannot be "
                        "negative")
        return float(value)


class Fraction(Expect):
    """A share between 0 and 1."""

    kind = "a fraction between 0 and 1, such as 0.3"

    def clean(self, value: Any, where: str) -> float:
        """The fraction as a float."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not 0 <= value <= 1:
            raise self.refuse(value, where)
        return float(value)


class Runs(Expect):
    """Runs a lesson cell made: a list of run results, or a dict of them by clock time."""

    kind = "the runs the cell after your answer makes (a list or dict of RunResult)"

    def clean(self, value: Any, where: str) -> list[RunResult]:
        """The runs in order, once every one is a run's result."""
        runs = list(value.values()) if isinstance(value, Mapping) else value
        if not isinstance(runs, (list, tuple)) or not runs \
                or not all(isinstance(run, RunResult) for run in runs):
            raise self.refuse(value, where)
        return list(runs)


# --- what a run recorded ---------------------------------------------------------------


def breaker_of(run: RunResult) -> dict[str, Any] | None:
    """The circuit_breaker settings the run's policy recorded (None: no breaker)."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    breaker = policy.get("circuit_breaker") if isinstance(policy, dict) else None
    return breaker if isinstance(breaker, dict) else None


def transitions_of(run: RunResult) -> list[tuple[str, str]]:
    """(from_state, to_state) of every circuit_state event of the lookup node, in order."""
    return [(e.payload.get("from_state"), e.payload.get("to_state")) for e in run.events
            if e.type is EventType.CIRCUIT_STATE and e.node_id == AGENT]


def retries_of(run: RunResult) -> int:
    """How many retries the lookup node made in the run."""
    return sum(1 for e in run.events if e.type is EventType.NODE_RETRY and e.node_id == AGENT)


def _same_config(run: RunResult, config: CircuitBreakerConfig) -> bool:
    """The run recorded a breaker with exactly ``config``'s settings."""
    return breaker_of(run) == dict(config.__dict__)


# --- exercise 1: a breaker that opens on the third failure within a window ------------


def first_opening(times: Sequence[float], threshold: int, window_s: float) -> float | None:
    """The time of the call whose failure opens a breaker when every call fails once."""
    failures: list[float] = []
    for at in times:
        failures.append(at)
        if sum(1 for t in failures if at - t < window_s) >= threshold:
            return at
    return None


@self_check(
    given={"ex1_times": Instance((list, tuple), "the clock times of exercise 1's calls",
                                 kind="a list of times"),
           "ex1_runs": OrNone(Runs("the runs of exercise 1"))},
    answers={"ex1_config": Instance(CircuitBreakerConfig, "the breaker exercise 1 asks for",
                                    kind="a CircuitBreakerConfig(...)"),
             "ex1_opened_at": Seconds("the clock time at which your breaker opened")})
def breaker_opens(ex1_times: Sequence[float], ex1_runs: list[RunResult] | None,
                  ex1_config: CircuitBreakerConfig, ex1_opened_at: float) -> Verdict:
    """Exercise 1: the learner's breaker opened on the third failure within 60 s, one
    attempt per call, and the learner read off when."""
    if ex1_runs is None:
        return hint("run the cell after your config: it makes one run per time of ex1_times "
                    "(ex1_runs is None)")
    if len(ex1_runs) != len(ex1_times) or not all(_same_config(r, ex1_config)
                                                  for r in ex1_runs):
        return hint("ex1_runs were not made with ex1_config: run the cell after your config "
                    "again")
    opened = [at for at, run in zip(ex1_times, ex1_runs, strict=True)
              if ("closed", "open") in transitions_of(run)]
    wrong = _config_hint(ex1_config, ex1_runs, opened, ex1_times)
    if wrong:
        return hint(wrong)
    at = opened[0]
    wrong = _opened_at_hint(ex1_opened_at, at, ex1_times, ex1_runs)
    if wrong:
        return hint(wrong)
    window = ex1_config.failure_window_s
    counted = [t for t in ex1_times if t <= at and at - t < window]
    left = [t for t in ex1_times if at - t >= window]
    refused = sum(run_outcome(r, AGENT) == "refused" for r in ex1_runs)
    return passed(f"your breaker opened at t={at:g} s, on the third failure within "
                  f"{window:g} s (the calls at {_times(counted)} s)"
                  + (f"; the failure at {_times(left)} s had left the window" if left else "")
                  + f". After it opened, {plural(refused, 'call')} failed fast without "
                  "reaching the agent")


def _times(times: Sequence[float]) -> str:
    """``0``, ``30 and 70``, ``30, 70 and 80``."""
    shown = [f"{t:g}" for t in times]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def _config_hint(config: CircuitBreakerConfig, runs: list[RunResult], opened: list[float],
                 times: Sequence[float]) -> str | None:
    """Where to look when the breaker did not open as exercise 1 asks (None when it did)."""
    if config.max_retries:
        return (f"each call made up to {1 + config.max_retries} attempts, and every failed "
                "attempt counts against the breaker, retries included: with one attempt per "
                "call, one call is one failure")
    if config.failure_threshold != EX1_THRESHOLD:
        return (f"your breaker opens after {plural(config.failure_threshold, 'failure')}; "
                "exercise 1 asks for the third")
    wanted = first_opening(times, EX1_THRESHOLD, EX1_WINDOW_S)
    if not opened:
        return (f"your breaker never opened: with a window of {config.failure_window_s:g} s, "
                "three failures never fell inside it. Read the doc of failure_window_s")
    if opened[0] != wanted:
        return (f"your breaker opened at t={opened[0]:g} s: count the failures less than "
                f"{EX1_WINDOW_S:g} s old at each call, with your window of "
                f"{config.failure_window_s:g} s and with the one exercise 1 asks for")
    return None


def _opened_at_hint(answer: float, at: float, times: Sequence[float],
                    runs: list[RunResult]) -> str | None:
    """Where to look when ex1_opened_at is not when the breaker opened (None when it is)."""
    if math.isclose(answer, at, abs_tol=1e-6):
        return None
    refused = [t for t, r in zip(times, runs, strict=True) if run_outcome(r, AGENT) == "refused"]
    if refused and math.isclose(answer, refused[0], abs_tol=1e-6):
        return ("ex1_opened_at: the call at that time was refused, so the breaker was already "
                "open; which call's failure opened it?")
    return ("ex1_opened_at: find the run with the closed -> open circuit_state event, and "
            "its time in ex1_times")


# --- exercise 2: the half-open probe closes the breaker ---------------------------------


@self_check(given={"ex2_result": OrNone(Instance(RunResult, "the run whose probe closes the "
                                                 "breaker", kind=RUN))})
def probe_closes(ex2_result: RunResult | None) -> Verdict:
    """Exercise 2: the learner's run reached an open breaker after half_open_after_s, its
    probe call succeeded, and the breaker closed."""
    if ex2_result is None:
        return hint("keep your run as ex2_result (ex2_result = ex2_flow.run(...)) in the "
                    "answer cell")
    moves = transitions_of(ex2_result)
    if moves == [("open", "half_open"), ("half_open", "closed")] \
            and ex2_result.status is RunStatus.COMPLETED:
        return passed("your run found the breaker due to half-open, and its call was the probe: "
                      "it succeeded, so the breaker closed and forgot its failures "
                      "(open -> half_open -> closed)")
    return hint(_probe_hint(ex2_result, moves))


def _probe_hint(run: RunResult, moves: list[tuple[str, str]]) -> str:
    """Where to look when the run did not close the breaker with a probe."""
    if ("half_open", "open") in moves:
        return ("the probe went through and failed, so the breaker opened again: was the "
                "service back (ex2_service.down) when your run started?")
    if ("closed", "open") in moves:
        return ("your run opened the breaker itself: the breaker was closed when it started. "
                "Run the exercise's first cell again, then your steps")
    if run_outcome(run, AGENT) == "refused":
        return ("your run was refused without reaching the agent: the breaker was still open. "
                "It lets a probe through only half_open_after_s after it opened; read "
                "half_open_at in the snapshot above, and ex2_clock.now()")
    if breaker_of(run) is None:
        return "your run had no circuit breaker: run ex2_flow under EX2_POLICY"
    return ("your run never met an open breaker: run ex2_flow under EX2_POLICY, the policy "
            "whose breaker opened in the first cell (every Policy has breakers of its own), "
            "and do not re-run the first cell in between")


# --- exercise 3: max_retries for a given failure rate -----------------------------------


def fewest_retries(failure_rate: float, target: float) -> int:
    """The fewest retries with which an execution fails at most ``1 - target`` of the
    time, when each attempt fails independently at ``failure_rate``."""
    retries = 0
    while failure_rate ** (retries + 1) > 1 - target + 1e-12 and retries < 64:
        retries += 1
    return retries


@self_check(
    given={"ex3_failure_rate": Fraction("the share of calls that fail in exercise 3"),
           "ex3_target": Fraction("the share of executions that must succeed"),
           "ex3_runs": OrNone(Runs("the runs of exercise 3"))},
    answers={"ex3_max_retries": Count("how many retries the breaker allows per execution")})
def retries_chosen(ex3_failure_rate: float, ex3_target: float,
                   ex3_runs: list[RunResult] | None, ex3_max_retries: int) -> Verdict:
    """Exercise 3: the learner's max_retries is the fewest that meets the target, and
    their batch of runs shows it meeting the target."""
    if ex3_runs is None:
        return hint("run the cell after your answer: it runs the batch with your max_retries "
                    "(ex3_runs is None)")
    recorded = {(breaker_of(run) or {}).get("max_retries") for run in ex3_runs}
    if recorded != {ex3_max_retries}:
        return hint("ex3_runs were made with another max_retries than ex3_max_retries: run "
                    "the cell after your answer again")
    ok = sum(run.status is RunStatus.COMPLETED for run in ex3_runs)
    share = ok / len(ex3_runs)
    fewest = fewest_retries(ex3_failure_rate, ex3_target)
    if share < ex3_target:
        return hint(f"with max_retries={ex3_max_retries}, {ok} of {len(ex3_runs)} executions "
                    f"succeeded, below {ex3_target:.0%}. An execution fails only when all of "
                    f"its 1 + max_retries attempts fail: how likely is that at a failure rate "
                    f"of {ex3_failure_rate:g}?")
    if ex3_max_retries > fewest:
        return hint(f"{ok} of {len(ex3_runs)} succeeded, so it meets the target, but so would "
                    "fewer retries: each retry adds a backoff pause (read delay_s in the "
                    "node_retry events) and another call to a struggling service. Work out the "
                    "chance that all attempts fail for one retry fewer")
    if ex3_max_retries < fewest:
        return hint(f"{ok} of {len(ex3_runs)} succeeded in this batch, yet at a failure rate of "
                    f"{ex3_failure_rate:g} an execution with {1 + ex3_max_retries} attempts "
                    f"fails more than {1 - ex3_target:.0%} of the time: this batch was lucky. "
                    "Work out the chance that every attempt fails")
    needed_all = sum(run.status is RunStatus.COMPLETED and retries_of(run) == ex3_max_retries
                     for run in ex3_runs)
    return passed(f"max_retries={ex3_max_retries}: {ok} of {len(ex3_runs)} executions "
                  f"succeeded; {plural(needed_all, 'execution')} needed every retry. All "
                  f"{1 + ex3_max_retries} attempts fail with a chance of "
                  f"{ex3_failure_rate:g}^{1 + ex3_max_retries} = "
                  f"{ex3_failure_rate ** (1 + ex3_max_retries):.2%}, within "
                  f"{1 - ex3_target:.0%}; with one retry fewer it is "
                  f"{ex3_failure_rate ** ex3_max_retries:.2%}")


__all__ = ["Fraction", "Runs", "Seconds", "breaker_of", "breaker_opens", "fewest_retries",
           "first_opening", "probe_closes", "retries_chosen", "retries_of", "transitions_of"]
