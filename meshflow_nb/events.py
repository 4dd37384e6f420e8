"""One event model for the terminal stream, the notebook widgets and the ledger.

Every run emits a sequence of `MeshEvent`s numbered 1, 2, 3, ... per run. An `EventBus`
hands each event to its subscribers in order, synchronously, on the run's own thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class EventType(StrEnum):
    """Every kind of event a run can emit; the first seven are the course's."""

    RUN_START = "run_start"
    NODE_START = "node_start"
    NODE_COMPLETE = "node_complete"
    GATE_PAUSE = "gate_pause"
    GATE_RESUME = "gate_resume"
    LOOP_ITERATION = "loop_iteration"
    RUN_COMPLETE = "run_complete"
    PREFLIGHT_REJECTED = "preflight_rejected"
    NODE_FAILED = "node_failed"
    NODE_SKIPPED = "node_skipped"
    GATE_REJECT = "gate_reject"
    LOOP_EXHAUSTED = "loop_exhausted"
    GUARDIAN_FINDING = "guardian_finding"
    NODE_BLOCKED = "node_blocked"
    BUDGET_EXCEEDED = "budget_exceeded"
    UNCERTAINTY_ESCALATED = "uncertainty_escalated"
    NODE_RETRY = "node_retry"
    CIRCUIT_STATE = "circuit_state"
    AUDIT_FAILED = "audit_failed"
    NODE_PARTIAL = "node_partial"
    """A streaming agent's text so far (``payload["delta"]``): shown live, kept out of the
    ledger unless the policy sets ``record_partial_output``."""



@dataclass(frozen=True)
class MeshEvent:
    """One thing that happened in a run; JSON-serialisable through `to_dict`."""

    run_id: str
    seq: int
    ts: str
    type: EventType
    node_id: str | None = None
    role: str | None = None
    output: Any = None
    uncertainty: float | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    carbon_g: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int | None:
        """Input plus output tokens, or None for events that carry no tokens."""
        if self.tokens_in is None and self.tokens_out is None:
            return None
        return (self.tokens_in or 0) + (self.tokens_out or 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; `from_dict` reads it back into an equal event."""
        data = asdict(self)
        data["type"] = self.type.value
        data["tokens"] = self.tokens
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeshEvent:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["type"] = EventType(values["type"])
        return cls(**values)

    def describe(self) -> str:
        """One human-readable line with every short field: what a script prints per event."""
        where = f" {self.node_id}" if self.node_id else ""
        role = f" ({self.role})" if self.role else ""
        extras = " ".join(f"{k}={short_text(v)}" for k, v in self._headline().items()
                          if v is not None)
        tail = f"  {extras}" if extras else ""
        return f"#{self.seq:<3} {self.type.value:<18}{where}{role}{tail}"

    def _headline(self) -> dict[str, Any]:
        """The event's numbers, then its short payload items (a payload key of the same
        name wins: run_complete carries the run's sums there)."""
        return {
            "uncertainty": None if self.uncertainty is None else round(self.uncertainty, 3),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "tokens": self.tokens,
            **dict(headline(self.payload)),
        }


SHORT_CHARS = 60
"""Longest text a one-line rendering shows of a value before cutting it."""

BOOKKEEPING_KEYS = frozenset({"iteration", "duration_ms", "model", "text", "inputs",
                              "decided_at", "channel", "approved", "protects", "timeout_s"})
"""Payload keys that say how an event came about rather than what it says (counters,
timings, the full text, decision metadata): the terminal and the notebook table leave
them out of an event's headline."""


def is_short(value: Any) -> bool:
    """A number, a flag, or text of at most `SHORT_CHARS` characters: fit to show inline."""
    return isinstance(value, (int, float, bool)) or (
        isinstance(value, str) and len(value) <= SHORT_CHARS)


def short_text(value: Any, limit: int = SHORT_CHARS) -> str:
    """``value`` as text on one line (whitespace runs become one space), cut to ``limit``
    characters with an ellipsis, so that one long field never breaks a line or a table."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 entry``, ``2 entries``: the count and its noun (``nouns``, else ``noun + 's'``)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def headline(payload: Mapping[str, Any], skip: Collection[str] = ()) -> list[tuple[str, Any]]:
    """The payload items worth a glance, in order: short values whose key is not in ``skip``.

    `MeshEvent.describe`, the terminal's progress lines and the notebook's event table
    all pick an event's fields with it, so the three faces agree on what is news.
    """
    return [(k, v) for k, v in payload.items() if k not in skip and is_short(v)]


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds, the format every event uses."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


Subscriber = Callable[[MeshEvent], None]


class EventBus:
    """Delivers each event to every subscriber, in subscription order.

    A subscriber that raises is logged and kept: a broken display must not stop a run.
    Thread-safe, so widgets in the notebook's thread can subscribe to a running run.
    """

    def __init__(self, subscribers: list[Subscriber] | None = None) -> None:
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._history: list[MeshEvent] = []
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber, *, replay: bool = False) -> Callable[[], None]:
        """Add a subscriber; with ``replay`` it first receives the events so far.

        Returns a function that unsubscribes it.
        """
        with self._lock:
            if replay:
                for event in self._history:
                    _deliver(subscriber, event)
            self._subscribers.append(subscriber)
        return lambda: self._unsubscribe(subscriber)

    def _unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def publish(self, event: MeshEvent) -> None:
        with self._lock:
            self._history.append(event)
            for subscriber in list(self._subscribers):
                _deliver(subscriber, event)

    @property
    def history(self) -> list[MeshEvent]:
        with self._lock:
            return list(self._history)


def _deliver(subscriber: Subscriber, event: MeshEvent) -> None:
    try:
        subscriber(event)
    except Exception as err:  # a subscriber's failure must not break the run
        log.warning("event subscriber %s failed on %s: %s", _name(subscriber),
                    event.type.value, err)
        log.debug("subscriber traceback", exc_info=True)


def _name(subscriber: Subscriber) -> str:
    return getattr(subscriber, "__qualname__", None) or repr(subscriber)
