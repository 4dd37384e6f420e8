"""Faults a `LocalMessagesServer` can be told to inject, to see how a client copes.

A `Fault` hits the next ``times`` requests it applies to (those whose prompt contains
``match``, when given), first in, first out. The HTTP errors are the real API's status
codes and error types, so the SDK raises its real exception classes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import ConfigError, shown
from ..validation import optional_number, whole
from .answers import prompt_text

__all__ = ["FAULT_KINDS", "Fault", "FaultQueue", "closed_port"]

HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error",
                   "Number of request tokens has exceeded your per-minute rate limit"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "unauthorized": (401, "authentication_error", "invalid x-api-key"),
    "forbidden": (403, "permission_error",
                  "Your API key does not have permission to use the specified resource."),
    "not_found": (404, "not_found_error", "Not found"),
}
"""The faults answered with an HTTP error: status, error type, message."""

FAULT_KINDS = (*HTTP_FAULTS, "stream_error", "slow", "bad_tool_input")
MAX_DELAY_S = 600.0
MAX_TIMES = 10_000


@dataclass(frozen=True)
class Fault:
    """One fault: its ``kind``, how many requests it hits, and what it sends.

    ``retry_after_ms`` / ``retry_after_s`` become the ``retry-after-ms`` / ``retry-after``
    headers; ``delay_s`` is waited before answering (required for "slow"); ``match``
    limits the fault to requests whose system prompt or messages contain it.
    "stream_error" hits streaming requests only, "bad_tool_input" requests with tools.
    """

    kind: str
    times: int = 1
    retry_after_ms: int | None = None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    match: str | None = None

    def __post_init__(self) -> None:
        """Check every field now, so a bad fault fails where it is written."""
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"Fault.kind must be one of {', '.join(FAULT_KINDS)}, "
                              f"not {shown(self.kind)}", argument="Fault.kind",
                              fix="pass e.g. Fault('rate_limit')")
        whole(self.times, "Fault.times", minimum=1, maximum=MAX_TIMES)
        if self.retry_after_ms is not None:
            whole(self.retry_after_ms, "Fault.retry_after_ms", maximum=MAX_TIMES * 1000)
        optional_number(self.retry_after_s, "Fault.retry_after_s", maximum=MAX_DELAY_S)
        object.__setattr__(self, "delay_s", _delay(self.kind, self.delay_s))
        if self.match is not None and (not isinstance(self.match, str) or not self.match):
            raise ConfigError(f"Fault.match must be a non-empty string or None, not "
                              f"{shown(self.match)}", argument="Fault.match",
                              fix="pass a piece of the prompt, e.g. match='You are the critic'")

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        """A fault from its JSON form (``{"kind": "rate_limit", "times": 2}``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a fault must be a JSON object, not {shown(data)}",
                              argument="fault", fix='send e.g. {"kind": "rate_limit"}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown Fault field(s) {', '.join(map(str, unknown))}",
                              argument=f"Fault.{unknown[0]}",
                              fix=f"use only {', '.join(sorted(known))}")
        if "kind" not in data:
            raise ConfigError("a fault needs a kind", argument="Fault.kind",
                              fix=f"add \"kind\": one of {', '.join(FAULT_KINDS)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `from_dict` reads back."""
        return asdict(self)

    def applies_to(self, body: Mapping[str, Any]) -> bool:
        """Whether this fault hits the request ``body`` (kind and ``match`` allowing)."""
        if self.kind == "stream_error" and body.get("stream") is not True:
            return False
        if self.kind == "bad_tool_input" and not body.get("tools"):
            return False
        return self.match is None or self.match in prompt_text(dict(body))

    def http_error(self) -> tuple[int, str, str] | None:
        """(status, error type, message) for a fault answered with an HTTP error."""
        return HTTP_FAULTS.get(self.kind)

    def headers(self) -> dict[str, str]:
        """The retry headers this fault sends with its error."""
        found = {}
        if self.retry_after_ms is not None:
            found["retry-after-ms"] = str(self.retry_after_ms)
        if self.retry_after_s is not None:
            found["retry-after"] = f"{self.retry_after_s:g}"
        return found


def _delay(kind: str, delay_s: Any) -> float:
    """``delay_s`` checked: a number of seconds, above 0 for a "slow" fault."""
    delay = optional_number(delay_s, "Fault.delay_s", maximum=MAX_DELAY_S) or 0.0
    if kind == "slow" and delay <= 0:
        raise ConfigError("a 'slow' fault needs delay_s > 0", argument="Fault.delay_s",
                          fix="pass e.g. Fault('slow', delay_s=2.0)")
    return delay


class FaultQueue:
    """The faults waiting to hit requests, in order; safe to use from many threads."""

    def __init__(self) -> None:
        """An empty queue."""
        self._lock = threading.Lock()
        self._waiting: list[Fault] = []

    def push(self, faults: Iterable[Fault]) -> None:
        """Queue faults behind those already waiting."""
        faults = list(faults)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise ConfigError(f"inject() takes Fault objects, not {shown(fault)}",
                                  argument="faults", fix="pass e.g. Fault('rate_limit')")
        with self._lock:
            self._waiting += faults

    def take(self, body: Mapping[str, Any]) -> Fault | None:
        """The first waiting fault that hits ``body``, one of its ``times`` used up."""
        with self._lock:
            for index, fault in enumerate(self._waiting):
                if fault.applies_to(body):
                    if fault.times > 1:
                        self._waiting[index] = replace(fault, times=fault.times - 1)
                    else:
                        del self._waiting[index]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        """The waiting faults, each with the hits it has left as ``times``."""
        with self._lock:
            return list(self._waiting)

    def clear(self) -> None:
        """Drop every waiting fault."""
        with self._lock:
            self._waiting.clear()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: a "dead server" to point a client at."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
