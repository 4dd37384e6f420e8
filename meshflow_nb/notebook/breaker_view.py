"""A circuit breaker seen from a notebook: a fake clock, a flaky agent, a state diagram
and a plot of the breaker's state over time.

`FakeClock` moves only when told (a backoff pause moves it at once), so a lesson plays
minutes of retries and half-open timers in milliseconds, the same way every time.
`FlakyAgent` wraps an agent and fails on cue: while ``down``, or at a seeded rate.
`BreakerWatch` records, on the clock, every event of one agent's breaker and the outcome
of every run it is shown; `plot_breaker` draws that record and `draw_breaker` the three
states with a config's numbers on the arrows (the real ``dot`` program draws it).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import graphviz

from ..engine.results import RunResult
from ..errors import ConfigError, MeshflowError, shown
from ..events import EventType
from ..model.status import RunStatus
from ..policy.circuit import BreakerEvent, CircuitBreakerConfig
from ..policy.config import Policy
from ..policy.governor import policy_breakers
from .drawing import STATE_FILLS, STATE_TEXT, svg_of
from .run_events import notebook_figure

STATES = ("closed", "half_open", "open")
"""The breaker's states, bottom to top on the plot."""
STATE_COLOURS = {"closed": STATE_FILLS["done"], "half_open": STATE_FILLS["paused"],
                 "open": STATE_FILLS["failed"]}
OUTCOME_MARKS = {"completed": ("o", "#2e7d32"),
                 "failed": ("X", "#c62828"),
                 "refused": ("s", "#555555")}
"""How a run is marked on the plot: it completed, failed after reaching the agent, or was
refused by the open breaker without reaching it."""
FIGURE_WIDTH_IN = 9.5


class FakeClock:
    """A clock for breakers that never really sleeps: ``sleep`` moves it on at once."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = float(start_s)
        self.sleeps: list[float] = []
        """Every pause a breaker asked for, in order (its backoff)."""

    def now(self) -> float:
        """Seconds on this clock."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and note the pause; nothing waits."""
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> float:
        """Let ``seconds`` pass (between two runs, say); returns the new time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ConfigError(f"advance() takes seconds >= 0, not {shown(seconds)}",
                              argument="seconds", fix="pass a number such as 10")
        self.t += seconds
        return self.t

    def __repr__(self) -> str:
        return f"FakeClock(t={self.t:g})"


class ServiceUnavailable(MeshflowError, ConnectionError):
    """What a `FlakyAgent` raises when a call fails: a ConnectionError, as a real client's
    failure to reach its service is, so the breaker retries and counts it."""


@dataclass(frozen=True)
class Call:
    """One call a `FlakyAgent` got: when (on its clock) and whether it answered."""

    at_s: float
    ok: bool


class FlakyAgent:
    """An agent that fails on cue: its first ``fail_first`` calls, every call while
    ``down``, else at ``failure_rate`` (seeded, so the same calls fail every time). A failing
    call takes ``fail_after_s`` on ``clock``, as a call that waits for a dead service does;
    ``calls`` lists every call."""

    def __init__(self, agent: Callable[[Any], Awaitable[Any]], *, failure_rate: float = 0.0,
                 seed: int = 0, fail_first: int = 0, clock: FakeClock | None = None,
                 fail_after_s: float = 0.0) -> None:
        if isinstance(failure_rate, bool) or not isinstance(failure_rate, (int, float)) \
                or not 0.0 <= failure_rate <= 1.0:
            raise ConfigError(f"failure_rate must be between 0 and 1, not {shown(failure_rate)}",
                              argument="failure_rate", fix="pass a fraction such as 0.3")
        self.agent, self.failure_rate, self.clock = agent, float(failure_rate), clock
        self.fail_after_s, self.fail_first = float(fail_after_s), int(fail_first)
        self.down = False
        """While True, every call fails: the service behind the agent is down."""
        self.calls: list[Call] = []
        self._rng = random.Random(seed)

    async def __call__(self, ctx: Any) -> Any:
        """One call: `ServiceUnavailable` when it fails, the wrapped agent's answer if not."""
        failing = (self._rng.random() < self.failure_rate or self.down
                   or len(self.calls) < self.fail_first)
        at = self.clock.now() if self.clock is not None else 0.0
        self.calls.append(Call(at, not failing))
        if failing:
            if self.clock is not None and self.fail_after_s:
                self.clock.t += self.fail_after_s
            raise ServiceUnavailable("the service did not answer")
        return await self.agent(ctx)

    @property
    def failed(self) -> int:
        """How many of its calls failed."""
        return sum(not call.ok for call in self.calls)


@dataclass(frozen=True)
class Moment:
    """One thing a `BreakerWatch` saw at ``at_s`` on the clock: a breaker event
    (``retry``, ``circuit_state``) or a run's ``outcome``."""

    at_s: float
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


class BreakerWatch:
    """Everything that happens to one agent's breaker under one policy, on its clock: the
    breaker's events (it becomes the breaker's standing listener) and the runs it `saw`."""

    def __init__(self, policy: Policy, agent: str, clock: FakeClock) -> None:
        if not isinstance(policy, Policy) or policy.circuit_breaker is None:
            raise ConfigError(f"BreakerWatch needs a Policy with a circuit breaker, not "
                              f"{shown(policy)}", argument="policy",
                              fix="pass Policy(circuit_breaker=CircuitBreakerConfig(...))")
        self.policy, self.agent, self.clock = policy, agent, clock
        self.moments: list[Moment] = []
        self.breaker = policy_breakers(policy, clock).breaker(agent, on_event=self._record)

    def _record(self, event: BreakerEvent) -> None:
        """The breaker's standing listener: note the event at the clock's time."""
        self.moments.append(Moment(self.clock.now(), event.kind, dict(event.detail)))

    def saw(self, run: RunResult) -> str:
        """Note how ``run`` ended for this agent (completed, failed or refused); returns it."""
        outcome = run_outcome(run, self.agent)
        self.moments.append(Moment(self.clock.now(), "outcome",
                                   {"outcome": outcome, "run_id": run.run_id}))
        return outcome

    def states(self) -> list[tuple[float, str]]:
        """(time, state) at the start and at every state change."""
        changes = [(m.at_s, m.detail["to_state"]) for m in self.moments
                   if m.kind == "circuit_state"]
        return [(0.0, "closed"), *changes]

    def text(self) -> str:
        """The record, one line per moment."""
        lines = [f"breaker of {self.agent!r}, on the fake clock:"]
        for m in self.moments:
            if m.kind == "circuit_state":
                said = f"{m.detail['from_state']} -> {m.detail['to_state']}: {m.detail['reason']}"
            elif m.kind == "retry":
                said = f"retry {m.detail['attempt']} after {m.detail['delay_s']:g} s"
            else:
                said = f"run {m.detail['outcome']}"
            lines.append(f"  t={m.at_s:7.2f} s  {m.kind:<13} {said}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def run_outcome(run: RunResult, agent: str) -> str:
    """``completed``, ``failed`` (the agent was reached and failed), or ``refused`` (the
    node started, and its open breaker stopped it before the agent was called)."""
    if run.status is RunStatus.COMPLETED:
        return "completed"
    ends = {EventType.NODE_COMPLETE, EventType.NODE_FAILED}
    started = any(e.type is EventType.NODE_START and e.node_id == agent for e in run.events)
    ended = any(e.type in ends and e.node_id == agent for e in run.events)
    return "refused" if started and not ended else "failed"


def plot_breaker(watch: BreakerWatch, *, title: str | None = None) -> Any:
    """The breaker's state over time as a step line, every retry and every run marked on
    it. Returns a matplotlib figure (PNG in a notebook, the record as text elsewhere)."""
    if not isinstance(watch, BreakerWatch):
        raise ConfigError(f"plot_breaker() draws a BreakerWatch, not {shown(watch)}",
                          argument="watch", fix="pass BreakerWatch(policy, 'agent', clock)")
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 3.2), layout="constrained")
    figure.printed = watch.text()
    ax = figure.subplots()
    steps = watch.states()
    end = max([watch.clock.now(), *(m.at_s for m in watch.moments), 1.0]) * 1.04
    level = {state: n for n, state in enumerate(STATES)}
    instants: list[tuple[float, str]] = []
    for (start, state), (stop, _) in zip(steps, [*steps[1:], (end, "")], strict=True):
        ax.plot([start, stop], [level[state]] * 2, color=STATE_COLOURS[state], linewidth=6,
                solid_capstyle="butt")
        if stop == start:
            instants.append((start, state))
    if instants:  # a state held for no time on the clock (a probe that answered at once)
        ax.scatter([t for t, _ in instants], [level[s] for _, s in instants], marker="D",
                   s=60, zorder=3, edgecolors="#333333",
                   color=[STATE_COLOURS[s] for _, s in instants], label="state for an instant")
    ax.step([t for t, _ in steps], [level[s] for _, s in steps], where="post",
            color="#999999", linewidth=0.8)
    _mark(ax, watch, level)
    ax.set_yticks(range(len(STATES)), [s.replace("_", "-") for s in STATES])
    ax.set_ylim(-0.6, len(STATES) - 0.4)
    ax.set_xlim(-end * 0.02, end)
    ax.set_xlabel("seconds on the fake clock")
    ax.set_title(title or f"Circuit breaker of {watch.agent!r}: state over time")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False,
              bbox_to_anchor=(0.0, -0.28))
    return figure


def _mark(ax: Any, watch: BreakerWatch, level: dict[str, int]) -> None:
    """Retries as small ticks and runs by outcome, on the state the breaker was in."""
    retries = [m.at_s for m in watch.moments if m.kind == "retry"]
    if retries:
        ax.scatter(retries, [level["closed"] - 0.3] * len(retries), marker="|", s=80,
                   color="#333333", label="failed attempt, retried")
    for outcome, (marker, colour) in OUTCOME_MARKS.items():
        at = [m.at_s for m in watch.moments
              if m.kind == "outcome" and m.detail["outcome"] == outcome]
        ys = [level[_state_at(watch.states(), t)] + 0.3 for t in at]
        if at:
            ax.scatter(at, ys, marker=marker, s=55, color=colour, zorder=3,
                       label=f"run {outcome}")


def _state_at(steps: list[tuple[float, str]], at_s: float) -> str:
    """The state the breaker was in at ``at_s`` (after every change made by then)."""
    return [state for t, state in steps if t <= at_s][-1]


@dataclass(frozen=True)
class BreakerDrawing:
    """The breaker's three states and the arrows between them (``dot`` is the graph)."""

    config: CircuitBreakerConfig
    state: str | None
    dot: graphviz.Digraph

    def svg(self) -> str:
        """The drawing as SVG text (needs the Graphviz ``dot`` program)."""
        return svg_of(self.dot)

    def _repr_svg_(self) -> str:
        return self.svg()

    def __str__(self) -> str:
        return "\n".join(f"{a} -> {b}: {label}" for a, b, label in transitions(self.config))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def transitions(config: CircuitBreakerConfig) -> list[tuple[str, str, str]]:
    """Every arrow of the state diagram: (from, to, when), in the config's numbers."""
    return [
        ("closed", "closed", f"a failure, fewer than {config.failure_threshold} "
                             f"in {config.failure_window_s:g} s: retry (up to "
                             f"{config.max_retries})"),
        ("closed", "open", f"{config.failure_threshold} failures within "
                           f"{config.failure_window_s:g} s"),
        ("open", "open", "a call: refused at once (fail fast)"),
        ("open", "half_open", f"{config.half_open_after_s:g} s passed"),
        ("half_open", "closed", "the probe succeeds"),
        ("half_open", "open", "the probe fails"),
    ]


def draw_breaker(config: CircuitBreakerConfig, state: str | None = None) -> BreakerDrawing:
    """The state diagram of a breaker with ``config``'s numbers on its arrows; ``state``
    (closed, open or half_open), if given, is filled in."""
    if not isinstance(config, CircuitBreakerConfig):
        raise ConfigError(f"draw_breaker() needs a CircuitBreakerConfig, not {shown(config)}",
                          argument="config", fix="pass CircuitBreakerConfig(...)")
    if state is not None and state not in STATES:
        raise ConfigError(f"state must be one of {', '.join(STATES)}, not {shown(state)}",
                          argument="state", fix="pass 'closed', 'open' or 'half_open'")
    dot = graphviz.Digraph("breaker", graph_attr={"rankdir": "LR", "fontsize": "11"},
                           node_attr={"shape": "circle", "fontname": "Helvetica",
                                      "fontsize": "12", "width": "1.1", "fixedsize": "true"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for name in STATES:
        filled = name == state
        dot.node(name, name.replace("_", "-"), style="filled" if filled else "solid",
                 fillcolor=STATE_COLOURS[name], color=STATE_COLOURS[name], penwidth="2",
                 fontcolor=STATE_TEXT["failed"])
    for source, target, label in transitions(config):
        dot.edge(source, target, label=label)
    return BreakerDrawing(config, state, dot)


__all__ = ["BreakerDrawing", "BreakerWatch", "Call", "FakeClock", "FlakyAgent", "Moment",
           "ServiceUnavailable", "draw_breaker", "plot_breaker", "policy_breakers", "run_outcome",
           "transitions"]
