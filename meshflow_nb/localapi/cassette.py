"""Cassettes: recorded Messages API exchanges in a JSON file, replayed by the local server.

A cassette stores, per exchange, the fields a replay matches on (`request_key`: never
headers, never a key) and the Message that was answered. `ReplayAnswers` serves them as
the ``answer=`` of a `LocalMessagesServer`; a request with no recording fails with a
`ReplayMiss` that says which field differs from the nearest recording.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MeshflowError, redacted
from .answers import AnswerError
from .server import LocalMessagesServer

__all__ = ["CASSETTE_FORMAT", "DEFAULT_RECORDED_AGAINST", "KEY_FIELDS", "Cassette",
           "CassetteError", "Exchange", "ReplayAnswers", "ReplayMiss", "append_exchange",
           "replay_server", "request_key"]

CASSETTE_FORMAT = "meshflow-cassette/1"
DEFAULT_RECORDED_AGAINST = "local fake server (meshflow-nb serve-fake), not a real model"
KEY_FIELDS = ("model", "system", "messages", "tools", "tool_choice", "max_tokens")
"""What a replay matches on; ``stream``, ``temperature`` and ``metadata`` are not."""

_SHOWN = 60


class CassetteError(MeshflowError):
    """A cassette file that cannot be read or used; the message names the file."""


class ReplayMiss(CassetteError, AnswerError):
    """No recorded exchange matches a request; the server answers 400 "replay miss: ..."."""

    prefix = "replay miss: "


def request_key(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a request body a replay matches on (absent ones as None)."""
    return {name: body.get(name) for name in KEY_FIELDS}


def _canonical(value: Any) -> str:
    """Canonical JSON: equal values give equal text, whatever their key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Exchange:
    """One recorded request (its `request_key`) and the Message answered to it."""

    request: dict[str, Any]
    response: dict[str, Any]


@dataclass
class Cassette:
    """Recorded exchanges, with what they were recorded against and when."""

    exchanges: list[Exchange] = field(default_factory=list)
    recorded_against: str = DEFAULT_RECORDED_AGAINST
    recorded_at: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read a cassette file; `CassetteError` naming the file for anything wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CassetteError(f"no cassette at {path}: the file does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CassetteError(f"cannot read cassette {path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CassetteError(f"cassette {path} is not JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<data>") -> Cassette:
        """A cassette from its JSON form, checked: the format and every entry."""
        if not isinstance(data, dict) or data.get("format") != CASSETTE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CassetteError(f"cassette {source} is not a {CASSETTE_FORMAT} file "
                                f"(format: {found!r})")
        entries = data.get("exchanges")
        if not isinstance(entries, list):
            raise CassetteError(f"cassette {source} has no list of exchanges")
        return cls([_exchange(entry, index, source) for index, entry in enumerate(entries)],
                   recorded_against=str(data.get("recorded_against") or ""),
                   recorded_at=data.get("recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: format, provenance, and the exchanges."""
        return {"format": CASSETTE_FORMAT, "recorded_against": self.recorded_against,
                "recorded_at": self.recorded_at or _now(),
                "exchanges": [{"request": e.request, "response": e.response}
                              for e in self.exchanges]}

    def dumps(self) -> str:
        """Pretty JSON with sorted keys (readable diffs), the API key scrubbed out."""
        return redacted(json.dumps(self.to_dict(), indent=2, sort_keys=True,
                                ensure_ascii=False)) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically: a temporary file in the same folder, then a rename."""
        path = Path(path)
        text = self.dumps()
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def append_exchange(cls, path: str | os.PathLike[str], request_body: dict[str, Any],
                        response_message: dict[str, Any], *,
                        recorded_against: str = DEFAULT_RECORDED_AGAINST) -> Cassette:
        """Add one exchange to the cassette at ``path`` (made if missing), safely while
        other processes append too: under a lock file, re-read, append, save."""
        path = Path(path)
        with _locked(path):
            cassette = cls.load(path) if path.exists() else cls(
                recorded_against=recorded_against)
            cassette.exchanges.append(Exchange(request_key(request_body),
                                               copy.deepcopy(response_message)))
            cassette.recorded_at = _now()
            cassette.save(path)
        return cassette


append_exchange = Cassette.append_exchange


def _exchange(entry: Any, index: int, source: str) -> Exchange:
    """One entry of ``exchanges``, checked: a request object and a response object."""
    for part in ("request", "response"):
        if not isinstance(entry, dict) or not isinstance(entry.get(part), dict):
            raise CassetteError(f"cassette {source}: exchanges[{index}] has no {part} object")
    return Exchange(request_key(entry["request"]), entry["response"])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive `fcntl.flock` on ``<path>.lock`` (between processes too)."""
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- replay ------------------------------------------------------------------------


class ReplayAnswers:
    """An ``answer=`` for `LocalMessagesServer` that serves a cassette's messages.

    Exchanges with equal request keys are served in recorded order, the last one
    repeating. The server sends the messages as recorded (``verbatim``).
    """

    verbatim = True

    def __init__(self, cassette: Cassette) -> None:
        """Index the cassette's responses by request key; nothing is served yet."""
        if not isinstance(cassette, Cassette):
            raise CassetteError(f"ReplayAnswers needs a Cassette, not {type(cassette).__name__}"
                                "; use Cassette.load(path)")
        self.cassette = cassette
        self._by_key: dict[str, list[dict[str, Any]]] = {}
        for exchange in cassette.exchanges:
            self._by_key.setdefault(_canonical(exchange.request), []).append(exchange.response)
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        """The recorded message for ``body``; `ReplayMiss` when there is none."""
        key = _canonical(request_key(body))
        responses = self._by_key.get(key)
        if not responses:
            raise ReplayMiss(self._miss(request_key(body)))
        with self._lock:
            turn = self._served.get(key, 0)
            self._served[key] = turn + 1
        return copy.deepcopy(responses[min(turn, len(responses) - 1)])

    def _miss(self, wanted: dict[str, Any]) -> str:
        """What differs between the request and the nearest recording."""
        head = f"no recorded exchange for this request (model {wanted.get('model')!r})"
        if not self.cassette.exchanges:
            return f"{head}; the cassette has no exchanges"
        found = [(len(differences(e.request, wanted)), i, e.request)
                 for i, e in enumerate(self.cassette.exchanges)]
        _, index, nearest = min(found, key=lambda f: (f[0], f[1]))
        where, recorded, requested = differences(nearest, wanted)[0]
        start = _first_difference(recorded, requested)
        return (f"{head}; nearest recording #{index} differs in {where}"
                f"{f' from character {start}' if start else ''}: recorded "
                f"{_short(recorded, start)}, requested {_short(requested, start)}")


_ABSENT = object()


def differences(recorded: Any, requested: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf where two JSON values differ, as (path, recorded, requested), in order;
    a path reads like ``messages[0].content``."""
    if isinstance(recorded, dict) and isinstance(requested, dict):
        found = []
        for key in [*recorded, *(k for k in requested if k not in recorded)]:
            path = f"{where}.{key}" if where else str(key)
            found += differences(recorded.get(key, _ABSENT), requested.get(key, _ABSENT), path)
        return found
    if isinstance(recorded, list) and isinstance(requested, list):
        found = []
        for i in range(max(len(recorded), len(requested))):
            found += differences(recorded[i] if i < len(recorded) else _ABSENT,
                                 requested[i] if i < len(requested) else _ABSENT,
                                 f"{where}[{i}]")
        return found
    if recorded is not _ABSENT and requested is not _ABSENT and \
            _canonical(recorded) == _canonical(requested):
        return []
    return [(where or "request", recorded, requested)]


def _first_difference(recorded: Any, requested: Any) -> int:
    """Where two strings part (a little before, for context); 0 for anything else."""
    if not (isinstance(recorded, str) and isinstance(requested, str)):
        return 0
    same = next((i for i, (a, b) in enumerate(zip(recorded, requested, strict=False))
                 if a != b), min(len(recorded), len(requested)))
    return max(0, same - _SHOWN // 3)


def _short(value: Any, start: int = 0) -> str:
    """A value for a message: 60 characters of a string from ``start``, else its JSON
    cut short."""
    if value is _ABSENT:
        return "nothing"
    if isinstance(value, str):
        lead = "…" if start else ""
        part = value[start:start + _SHOWN]
        return repr(lead + part + ("…" if len(value) > start + _SHOWN else ""))
    text = _canonical(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


# --- one shared replay server per cassette and process -----------------------------

_SERVERS: dict[tuple[int, str], LocalMessagesServer] = {}
_SERVERS_LOCK = threading.Lock()


def replay_server(path: str | os.PathLike[str]) -> LocalMessagesServer:
    """A started server answering from the cassette at ``path``: one per process and
    file, shared by every caller (thread-safe)."""
    key = (os.getpid(), str(Path(path).resolve()))
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None or not server.running:
            server = LocalMessagesServer(ReplayAnswers(Cassette.load(key[1]))).start()
            _SERVERS[key] = server
        return server
