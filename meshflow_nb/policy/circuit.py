"""Retries with exponential backoff, and a circuit breaker per agent.

A `CircuitBreaker` wraps every execution of one agent. A failed attempt is retried up to
``max_retries`` times, with a growing pause between attempts. Every failed attempt also
counts against the breaker: ``failure_threshold`` failures within ``failure_window_s``
*open* it, and while it is open calls fail fast with `CircuitOpenError` instead of
reaching the agent. After ``half_open_after_s`` the breaker is *half-open*: one probe
call goes through; its success closes the breaker, its failure opens it again.

The breaker reads time from a `Clock`, so tests (and lessons) can use a fake clock that
never really sleeps. docs/circuit-breaker.md explains the states with a worked timeline.

An error may say how to be treated: ``retryable = False`` (a refused key, a retired
model) is raised at once, neither retried nor counted, since it says nothing about the
agent's health; ``retry_after_s`` (a server's ``retry-after``) lengthens the pause before
the next attempt, up to ``max_retry_after_s``.

Events. Every retry and every state change is a `BreakerEvent`, handed to two kinds of
listener, both optional:

* the breaker's standing listener, ``CircuitBreaker.on_event``: sees every event of that
  breaker (a notebook widget watching an agent);
* a per-call listener, ``call(..., on_event=...)``: sees the events *that call* caused (its
  retries, the transitions its attempts triggered). A runner passes its run's callback
  here, so two runs sharing one breaker each get their own events and nobody's callback
  is swapped out under another run's feet.

State changes are made under a lock and listeners are called after it is released, so a
breaker can be shared by runs on different threads and a listener may read the breaker.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from ..errors import MeshflowError, redacted
from ..validation import SECONDS_MAX, number, whole

T = TypeVar("T")

Listener = Callable[["BreakerEvent"], None]
Listeners = tuple["Listener | None", ...]


# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """How often to retry, how long to wait, and when to stop calling an agent at all."""

    max_retries: int = 2
    """Retries after a failed attempt: at most ``1 + max_retries`` attempts per execution."""
    failure_threshold: int = 3
    """This many failed attempts within ``failure_window_s`` open the breaker."""
    failure_window_s: float = 30.0
    """Length of the sliding window in which failures are counted."""
    half_open_after_s: float = 10.0
    """How long an open breaker fails fast before it lets one probe call through."""
    backoff_base_s: float = 0.5
    """Pause before retry n is ``backoff_base_s * 2**(n-1)``: 0.5, 1, 2, 4 ... seconds."""
    backoff_max_s: float = 8.0
    """No pause between attempts is longer than this."""
    jitter_s: float = 0.0
    """Up to this much is added to each pause, fixed per (agent, retry); 0 turns it off."""
    max_retry_after_s: float = 60.0
    """The longest pause a server's ``retry-after`` may ask for; a longer ask waits this."""

    def __post_init__(self) -> None:
        whole(self.max_retries, "CircuitBreakerConfig.max_retries", fix="use 0 for no retries")
        whole(self.failure_threshold, "CircuitBreakerConfig.failure_threshold", minimum=1,
              fix="use 1 to open the breaker on the first failure")
        for name, strict, fix in (
                ("failure_window_s", True, None), ("half_open_after_s", True, None),
                ("backoff_base_s", False, "use 0 to retry without pausing"),
                ("backoff_max_s", True, None), ("jitter_s", False, "use 0 for no jitter"),
                ("max_retry_after_s", False, "use 0 to ignore a server's retry-after")):
            number(getattr(self, name), f"CircuitBreakerConfig.{name}", strict=strict,
                   maximum=SECONDS_MAX, fix=fix or "pass a positive number of seconds, e.g. 10.0")


# --- states, errors, events, clocks --------------------------------------------------


class BreakerState(StrEnum):
    """Closed: calls go through. Open: calls fail fast. Half-open: one probe goes through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"



class CircuitOpenError(MeshflowError):
    """A call refused without reaching the agent, because its breaker is open.

    ``retry_at`` is the clock time (``Clock.now()``) at which the breaker half-opens; when
    the breaker is already half-open and its probe is still running, it is the time it
    half-opened, and ``probing`` is true.
    """

    def __init__(self, agent: str, retry_at: float, *, wait_s: float,
                 last_error: str | None = None, probing: bool = False) -> None:
        self.agent, self.retry_at, self.wait_s = agent, retry_at, wait_s
        self.last_error, self.probing = last_error, probing
        if probing:
            message = (f"circuit breaker for agent '{agent}' is half-open and its one probe "
                       "call is still running; other calls fail fast while it runs")
        else:
            message = (f"circuit breaker for agent '{agent}' is open after repeated "
                       f"failures; the agent is not called until the breaker half-opens in "
                       f"{wait_s:.3g} s (clock {retry_at:.3f})")
        if last_error:
            message += f"; last error: {last_error}"
        super().__init__(message)


@dataclass(frozen=True)
class BreakerEvent:
    """One retry or one state change of one agent's breaker.

    ``kind == "retry"``: ``detail`` has ``attempt`` (the retry about to be made, 1 for the
    first), ``max_retries``, ``delay_s`` (the pause before it) and ``error``
    (``"Type: message"`` of the failure that caused it).

    ``kind == "circuit_state"``: ``detail`` has ``from_state`` and ``to_state`` (the
    `BreakerState` values as strings), ``failures`` (failures in the window at that
    moment) and ``reason`` (a sentence for a learner).
    """

    kind: str
    agent: str
    detail: dict[str, Any]


class Clock(Protocol):
    """Where a breaker gets time from; tests pass a fake one that never really sleeps."""

    def now(self) -> float:
        """Monotonic seconds (only differences matter)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Pause the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _describe(error: BaseException) -> str:
    """An error as a retry event and the open circuit name it, with any key redacted."""
    text = redacted(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _emit(listeners: Iterable[Listener | None], events: list[BreakerEvent]) -> None:
    """Hand each event to each listener, in order."""
    for event in events:
        for listener in listeners:
            if listener is not None:
                listener(event)


# --- one agent's breaker -------------------------------------------------------------


class CircuitBreaker:
    """One agent's breaker: retries and fail-fast around every execution of that agent."""

    def __init__(self, agent: str, config: CircuitBreakerConfig, clock: Clock | None = None,
                 on_event: Listener | None = None) -> None:
        self.agent = agent
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.on_event = on_event
        """Standing listener: receives every event of this breaker."""
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque(maxlen=config.failure_threshold)
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self._last_error: str | None = None

    # --- reading ---------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose time has come turns half-open here."""
        with self._lock:
            state, events = self._refresh()
        _emit([self.on_event], events)
        return state

    def snapshot(self) -> dict[str, Any]:
        """The breaker at a glance, for a table or widget.

        ``failures_in_window`` never exceeds ``failure_threshold``: only the newest
        failures are kept, as many as it takes to open the breaker.
        """
        state = self.state
        with self._lock:
            now = self.clock.now()
            half_open_at = self._half_open_at()
            return {
                "agent": self.agent,
                "state": state.value,
                "failures_in_window": self._count(now),
                "failure_threshold": self.config.failure_threshold,
                "failure_window_s": self.config.failure_window_s,
                "opened_at": self._opened_at,
                "half_open_at": half_open_at,
                "half_open_in_s": (max(0.0, half_open_at - now) if state is BreakerState.OPEN
                                   and half_open_at is not None else None),
                "probe_in_flight": self._probe_in_flight,
                "last_error": self._last_error,
            }

    def delay_for(self, retry: int) -> float:
        """Pause before retry number ``retry`` (1 for the first), capped at backoff_max_s."""
        config = self.config
        doubling = 2.0 ** min(retry - 1, 64)  # no float overflow for huge max_retries
        delay = config.backoff_base_s * doubling + self._jitter(retry)
        return min(config.backoff_max_s, delay)

    def _jitter(self, retry: int) -> float:
        """A fixed fraction of ``jitter_s`` per (agent, retry): reproducible, yet agents
        retrying at the same moment do not all wake at the same moment."""
        if not self.config.jitter_s:
            return 0.0
        fraction = zlib.crc32(f"{self.agent}:{retry}".encode()) / 2**32
        return self.config.jitter_s * fraction

    # --- the call --------------------------------------------------------------------

    async def call(self, make_call: Callable[[], Awaitable[T]], *,
                   on_event: Listener | None = None) -> T:
        """Run one execution of the agent: attempts, pauses, and the breaker around them.

        ``make_call`` must create a fresh awaitable each time (an awaitable can be awaited
        only once). Raises `CircuitOpenError` without calling the agent when the breaker
        refuses, or the last attempt's error when the attempts run out or a failure leaves
        the breaker open. Cancellation is passed straight through: never retried, never
        counted. ``on_event`` receives the events this call causes (see the module doc).
        """
        listeners: Listeners = (self.on_event, on_event)
        retry = 0
        last_error: Exception | None = None
        while True:
            try:
                probe = self._admit(listeners)
            except CircuitOpenError as refused:
                raise refused from last_error
            try:
                result = await make_call()
            except Exception as error:
                last_error = error
                if getattr(error, "retryable", True) is False:
                    self._abandon(probe)
                    raise
                if not self._failed(probe, error, listeners) or retry >= self.config.max_retries:
                    raise
                retry += 1
                await self._pause(retry, error, listeners)
            except BaseException:  # cancelled (or interrupted): not the agent's failure
                self._abandon(probe)
                raise
            else:
                self._succeeded(probe, listeners)
                return result

    async def _pause(self, retry: int, error: Exception, listeners: Listeners) -> None:
        """Announce retry number ``retry`` and wait before it."""
        delay = max(self.delay_for(retry), self._asked_pause(error))
        _emit(listeners, [BreakerEvent("retry", self.agent, {
            "attempt": retry, "max_retries": self.config.max_retries,
            "delay_s": delay, "error": _describe(error)})])
        await self.clock.sleep(delay)

    def _asked_pause(self, error: Exception) -> float:
        """The pause the failed call's server asked for (``retry_after_s``), capped."""
        asked = getattr(error, "retry_after_s", None)
        if not isinstance(asked, (int, float)) or not asked > 0:
            return 0.0
        return min(float(asked), self.config.max_retry_after_s)

    def _admit(self, listeners: Listeners) -> bool:
        """Let an attempt through or raise `CircuitOpenError`; True if it is the probe."""
        with self._lock:
            state, events = self._refresh()
            refused = self._refusal(state)
            probe = state is BreakerState.HALF_OPEN and refused is None
            if probe:
                self._probe_in_flight = True
        try:
            _emit(listeners, events)
        except BaseException:
            self._abandon(probe)
            raise
        if refused is not None:
            raise refused
        return probe

    def _refusal(self, state: BreakerState) -> CircuitOpenError | None:
        """The error for a refused attempt, or None to let it through (lock held)."""
        probing = state is BreakerState.HALF_OPEN and self._probe_in_flight
        if state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not probing):
            return None
        now = self.clock.now()
        half_open_at = self._half_open_at()
        retry_at = now if half_open_at is None else half_open_at
        return CircuitOpenError(self.agent, retry_at, wait_s=max(0.0, retry_at - now),
                                last_error=self._last_error, probing=probing)

    def _failed(self, probe: bool, error: Exception, listeners: Listeners) -> bool:
        """Count a failed attempt; True if the breaker is still closed (a retry may follow).

        Only the probe decides a half-open breaker; a failure of an attempt that started
        before the breaker opened is counted but changes nothing else.
        """
        with self._lock:
            now = self.clock.now()
            self._failures.append(now)
            self._last_error = _describe(error)
            events: list[BreakerEvent] = []
            if probe:
                self._probe_in_flight = False
                events.append(self._open(now, f"the probe call failed ({self._last_error})"))
            elif (self._state is BreakerState.CLOSED
                  and self._count(now) >= self.config.failure_threshold):
                events.append(self._open(now, f"{self._count(now)} failure(s) within "
                                              f"{self.config.failure_window_s:g} s"))
            closed = self._state is BreakerState.CLOSED
        _emit(listeners, events)
        return closed

    def _succeeded(self, probe: bool, listeners: Listeners) -> None:
        """A successful probe closes the breaker and forgets its failures."""
        if not probe:
            return
        with self._lock:
            self._probe_in_flight = False
            self._failures.clear()
            self._opened_at = None
            event = self._transition(BreakerState.CLOSED, "the probe call succeeded")
        _emit(listeners, [event])

    def _abandon(self, probe: bool) -> None:
        """A cancelled probe decides nothing: the next caller may probe instead."""
        if probe:
            with self._lock:
                self._probe_in_flight = False

    # --- state changes (lock held) ---------------------------------------------------

    def _refresh(self) -> tuple[BreakerState, list[BreakerEvent]]:
        """Turn open into half-open once ``half_open_after_s`` has passed."""
        half_open_at = self._half_open_at()
        if (self._state is BreakerState.OPEN and half_open_at is not None
                and self.clock.now() >= half_open_at):
            reason = (f"{self.config.half_open_after_s:g} s passed since it opened; "
                      "one probe call may go through")
            return BreakerState.HALF_OPEN, [self._transition(BreakerState.HALF_OPEN, reason)]
        return self._state, []

    def _open(self, now: float, reason: str) -> BreakerEvent:
        """Open (or re-open) the breaker; the half-open timer starts now."""
        self._opened_at = now
        return self._transition(BreakerState.OPEN, reason
                                + f"; half-opens in {self.config.half_open_after_s:g} s")

    def _transition(self, to_state: BreakerState, reason: str) -> BreakerEvent:
        from_state, self._state = self._state, to_state
        return BreakerEvent("circuit_state", self.agent, {
            "from_state": from_state.value, "to_state": to_state.value,
            "failures": self._count(self.clock.now()), "reason": reason})

    def _half_open_at(self) -> float | None:
        if self._opened_at is None:
            return None
        return self._opened_at + self.config.half_open_after_s

    def _count(self, now: float) -> int:
        """Failures less than ``failure_window_s`` old (only the newest few are kept)."""
        window = self.config.failure_window_s
        return sum(1 for at in self._failures if now - at < window)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.agent!r}, state={self._state.value})"


# --- all agents of one policy --------------------------------------------------------


class BreakerRegistry:
    """Breakers per agent name, shared across the runs of one policy (a breaker remembers
    across runs: an agent that failed in one run fails fast in the next)."""

    def __init__(self, config: CircuitBreakerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def breaker(self, agent: str, on_event: Listener | None = None) -> CircuitBreaker:
        """The one breaker of ``agent``, created on first use.

        ``on_event``, if given, becomes the breaker's standing listener (replacing an
        earlier one) and sees every event of that breaker. A run that wants only its own
        events passes its callback to ``call(..., on_event=...)`` instead.
        """
        with self._lock:
            found = self._breakers.get(agent)
            if found is None:
                found = self._breakers[agent] = CircuitBreaker(agent, self.config, self.clock)
            if on_event is not None:
                found.on_event = on_event
            return found

    def snapshot(self) -> list[dict[str, Any]]:
        """Every breaker at a glance, in order of first use."""
        with self._lock:
            breakers = list(self._breakers.values())
        return [breaker.snapshot() for breaker in breakers]

    def __contains__(self, agent: object) -> bool:
        return agent in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)
