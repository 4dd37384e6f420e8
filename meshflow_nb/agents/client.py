"""Where a live agent's calls go: the Anthropic API, a local server, or a recorded run.

Read from the environment at call time, never from code or the ledger:

* ``MESHFLOW_REPLAY=cassette.json``: a replay server in this process answers from the
  recording; no key and no network (it works in a papermill kernel too, since the
  variable crosses the process boundary and the server starts where it is read);
* ``ANTHROPIC_API_KEY``: the real API, or ``ANTHROPIC_BASE_URL`` when that is set (the
  SDK reads it); a loopback base URL needs no key (``meshflow-nb serve-fake``);
* ``MESHFLOW_RECORD=cassette.json``: every exchange is also appended to that cassette.

The SDK's own retries are off (``max_retries=0``): retries belong to the circuit breaker,
so they are counted and shown. One client per event loop is shared by every agent.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..localapi.cassette import Cassette, replay_server
from .errors import BASE_URL_VAR, KEY_VAR, RECORD_VAR, REPLAY_VAR, MissingKeyError

if TYPE_CHECKING:
    import anthropic

LOCAL_PLACEHOLDER_KEY = "local-server-needs-no-key"
"""What a client sends to a loopback server or a replay server instead of a key."""
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

_clients: weakref.WeakKeyDictionary[Any, dict[tuple, anthropic.AsyncAnthropic]] = (
    weakref.WeakKeyDictionary())
_lock = threading.Lock()


def live_target(environ: Mapping[str, str] | None = None) -> str:
    """Where live calls would go, in words ("replay of x.json", "local server at ...")."""
    env = os.environ if environ is None else environ
    if env.get(REPLAY_VAR, "").strip():
        return f"replay of {env[REPLAY_VAR].strip()}"
    base = env.get(BASE_URL_VAR, "").strip()
    if base and _is_loopback(base):
        return f"local server at {base}"
    if not env.get(KEY_VAR, "").strip():
        raise MissingKeyError()
    return f"the Anthropic API at {base}" if base else "the Anthropic API"


def live_available(environ: Mapping[str, str] | None = None) -> bool:
    """True when live agents have somewhere to send their calls."""
    try:
        live_target(environ)
    except MissingKeyError:
        return False
    return True


def loop_client(given: anthropic.AsyncAnthropic | None = None) -> anthropic.AsyncAnthropic:
    """The async client to use on this event loop: the environment's, or a twin of the
    ``given`` one on a fresh connection pool (an httpx pool cannot outlive its loop, and
    every ``run()`` has a loop of its own)."""
    key: tuple = ("given", id(given)) if given is not None else _settings()
    loop = asyncio.get_running_loop()
    with _lock:
        per_loop = _clients.setdefault(loop, {})
        client = per_loop.get(key)
        if client is None:
            client = per_loop[key] = _new_client(given, key)
        return client


def _new_client(given: anthropic.AsyncAnthropic | None, key: tuple) -> anthropic.AsyncAnthropic:
    import anthropic

    pool = anthropic.DefaultAsyncHttpxClient(verify=_tls_context())
    if given is not None:
        return given.copy(http_client=pool)
    base_url, api_key = key
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key, max_retries=0,
                                    http_client=pool)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, made as the SDK's HTTP library makes its own: loading
    the CA bundle again for every run's new client cost about 30 ms a run."""
    import httpx2

    return httpx2.create_ssl_context()


def record(request: dict[str, Any], message: Any) -> None:
    """Append one exchange to the ``MESHFLOW_RECORD`` cassette, when recording."""
    path = os.environ.get(RECORD_VAR, "").strip()
    if not path:
        return
    Cassette.append_exchange(path, request, message.model_dump(mode="json", exclude_none=True),
                    recorded_against=_recorded_against())


def _settings() -> tuple[str | None, str]:
    """(base URL, key) for a new client; the key only ever comes from the environment."""
    replay = os.environ.get(REPLAY_VAR, "").strip()
    if replay:
        return replay_server(replay).url, LOCAL_PLACEHOLDER_KEY
    base = os.environ.get(BASE_URL_VAR, "").strip() or None
    key = os.environ.get(KEY_VAR, "").strip()
    if not key and base and _is_loopback(base):
        key = LOCAL_PLACEHOLDER_KEY
    if not key:
        raise MissingKeyError()
    return base, key


def _recorded_against() -> str:
    base = os.environ.get(BASE_URL_VAR, "").strip()
    if base and _is_loopback(base):
        return f"local fake server at {base} (meshflow-nb serve-fake), not a real model"
    return f"the Anthropic API ({base or 'api.anthropic.com'})"


def _is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in _LOOPBACK
