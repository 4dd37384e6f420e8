"""A local HTTP server that speaks the Anthropic Messages API on a loopback address.

Point the real ``anthropic`` SDK at `LocalMessagesServer.url` (``base_url=`` or
``ANTHROPIC_BASE_URL``) and it talks real HTTP to a server that checks requests the way
the API does, answers with deterministic role-shaped messages (or a cassette's), streams
real event sequences, and injects the faults it is told to: no key, no network.

The key a client sends is checked and forgotten: the server keeps header names only,
and of its own ``api_key`` only a SHA-256 digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ConfigError, MeshflowError, shown
from ..validation import whole
from .answers import (
    CHARS_PER_TOKEN,
    AnswerError,
    bad_tool_answer,
    count_usage,
    prompt_chars,
    request_digest,
    role_answer,
    system_chars,
    system_text,
)
from .faults import Fault, FaultQueue
from .sse import Event, encode_event, error_event, message_events

__all__ = ["LocalApiError", "LocalMessagesServer", "Reply"]

Answer = Callable[[dict[str, Any]], dict[str, Any]]
MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body read (the real API's limit)."""

MODEL_CREATED_AT = "2025-01-01T00:00:00Z"
_REQUIRED = ("model", "messages", "max_tokens")


class LocalApiError(MeshflowError):
    """The local server cannot do what was asked (not started, port taken, ...)."""


class _ApiError(MeshflowError):
    """Internal: a request answered with an API error body."""

    def __init__(self, status: int, error_type: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = dict(headers or {})


@dataclass
class Reply:
    """What the handler writes: a JSON body, or a stream of events (``broken``: the stream
    ends with an error and the connection closes)."""

    status: int
    body: Any = None
    events: list[Event] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    broken: bool = False


class LocalMessagesServer:
    """The Messages API on ``http://127.0.0.1:PORT``, in a daemon thread.

    ``answer(body) -> Message dict`` makes the answers (default: `role_answer`);
    ``models``, when given, are the only model ids accepted; ``api_key``, when given, is
    the only key accepted (any key is, otherwise). Use it as a context manager, or call
    `start` and `stop`.
    """

    def __init__(self, answer: Answer | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, models: Collection[str] | None = None,
                 api_key: str | None = None) -> None:
        if answer is not None and not callable(answer):
            raise ConfigError(f"answer must be a function body -> Message dict, not "
                              f"{shown(answer)}", argument="answer",
                              fix="pass e.g. answer=role_answer, or leave it out")
        self.answer: Answer = answer or role_answer
        self.host = _loopback(host)
        self._port = whole(port, "port", maximum=65535, fix="pass port=0 for a free port")
        self.models = _model_ids(models)
        self._key_digest = _key_digest(api_key)
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[list[str]] = []
        self._cached: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> LocalMessagesServer:
        """Bind the port and serve in a daemon thread (does nothing when running)."""
        if self._httpd is not None:
            return self
        kind = _HTTPServer6 if ":" in self.host else _HTTPServer
        try:
            httpd = kind((self.host, self._port), _Handler)
        except OSError as exc:
            raise LocalApiError(f"cannot listen on {self.host}:{self._port}: {exc}; pass "
                                "port=0 for a free port") from exc
        httpd.app = self
        self._httpd, self._port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval":
                                        0.05}, name=f"localapi:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (does nothing when stopped)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            _shut(connection)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalMessagesServer:
        """Start serving for the ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving when the ``with`` block ends."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether it is serving now."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The port it listens on (chosen at `start` when constructed with port=0)."""
        if self._httpd is None and self._port == 0:
            raise LocalApiError("the server has no port yet: call start() first, or use "
                                "it as `with LocalMessagesServer() as server:`")
        return self._port

    @property
    def url(self) -> str:
        """What to pass as ``base_url``: ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- what tests look at --------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the message requests received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[list[str]]:
        """The header names (lower case, never values) of each API request received."""
        with self._lock:
            return [list(names) for names in self._headers]

    def inject(self, *faults: Fault) -> None:
        """Queue faults to hit the next matching requests, first in, first out."""
        self._faults.push(faults)

    def faults_pending(self) -> list[Fault]:
        """The faults still waiting, each with the hits it has left as ``times``."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every waiting fault."""
        self._faults.clear()

    # --- answering -----------------------------------------------------------------

    def respond(self, method: str, path: str, headers: Mapping[str, str],
                raw: bytes) -> Reply:
        """The reply to one HTTP request; errors become the API's error bodies."""
        request_id = f"req_{secrets.token_hex(12)}"
        try:
            reply = self._route(method, path.split("?", 1)[0].rstrip("/"), headers, raw)
        except _ApiError as exc:
            reply = Reply(exc.status, _error_body(exc.error_type, exc.message, request_id),
                          headers=exc.headers)
        except Exception as exc:  # a bug here must still reach the client as an API error
            reply = Reply(500, _error_body("api_error", f"local server error: "
                                           f"{type(exc).__name__}: {exc}", request_id))
        reply.headers["request-id"] = request_id
        return reply

    def _route(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """Dispatch by method and path; the ``/v1/`` routes need a key."""
        if path == "/_faults":
            return self._fault_control(method, raw)
        if path.startswith("/v1/"):
            with self._lock:
                self._headers.append([name.lower() for name in headers])
            self._check_key(headers)
        if (method, path) == ("POST", "/v1/messages"):
            return self._messages(raw)
        if (method, path) == ("POST", "/v1/messages/count_tokens"):
            counted = self._parse(raw, record=False)
            return Reply(200, {"input_tokens": _tokens(prompt_chars(counted))})
        if method == "GET" and path == "/v1/models":
            return Reply(200, self._model_list())
        if method == "GET" and path.startswith("/v1/models/"):
            return Reply(200, self._model_info(path.removeprefix("/v1/models/")))
        raise _ApiError(404, "not_found_error", f"Not found: {method} {path}")

    def _check_key(self, headers: Mapping[str, str]) -> None:
        """401 without a key, or with another key than the one the server was given."""
        sent = headers.get("x-api-key") or _bearer(headers.get("authorization"))
        if not sent:
            raise _ApiError(401, "authentication_error", "x-api-key header is required")
        if self._key_digest is not None and not hmac.compare_digest(
                _sha256(sent), self._key_digest):
            raise _ApiError(401, "authentication_error", "invalid x-api-key")

    def _parse(self, raw: bytes, *, record: bool = True) -> dict[str, Any]:
        """The request body as a JSON object (recorded in `requests`); else 400 saying
        what is wrong."""
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _ApiError(400, "invalid_request_error",
                            f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "invalid_request_error",
                            f"request body must be a JSON object, not {type(body).__name__}")
        if record:
            with self._lock:
                self._requests.append(body)
        return body

    def _messages(self, raw: bytes) -> Reply:
        """``POST /v1/messages``: checks, faults, then the answer as JSON or events."""
        body = self._parse(raw)
        _check_fields(body)
        if self.models is not None and body["model"] not in self.models:
            raise _ApiError(404, "not_found_error", f"model: {body['model']}")
        fault = self._faults.take(body)
        if fault is not None:
            time.sleep(fault.delay_s)
            if (error := fault.http_error()) is not None:
                raise _ApiError(*error, headers=fault.headers())
        message = self._answer(body, fault)
        if body.get("stream") is not True:
            return Reply(200, message)
        if fault is not None and fault.kind == "stream_error":
            events = [*message_events(message, partial_blocks=2),
                      error_event("overloaded_error", "Overloaded")]
            return Reply(200, events=events, broken=True)
        return Reply(200, events=message_events(message))

    def _answer(self, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        """The answer function's Message, completed; its refusals become API errors."""
        broken = bad_tool_answer(body) if fault and fault.kind == "bad_tool_input" else None
        if broken is not None:
            return self._complete(body, broken, verbatim=False)
        try:
            message = self.answer(body)
        except AnswerError as exc:
            raise _ApiError(exc.status, exc.error_type, exc.api_message()) from None
        except Exception as exc:  # a broken answer function is the server's 500
            raise _ApiError(500, "api_error", f"the answer function failed: "
                            f"{type(exc).__name__}: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise _ApiError(500, "api_error", "the answer function must return a Message "
                            f"dict with a content list, not {shown(message)}")
        return self._complete(body, message, verbatim=getattr(self.answer, "verbatim", False))

    def _complete(self, body: dict[str, Any], message: dict[str, Any], *,
                  verbatim: bool) -> dict[str, Any]:
        """The message with the fields an answer left out filled in; unless ``verbatim``
        (a recording), prompt caching is accounted for."""
        stop = "tool_use" if any(b.get("type") == "tool_use" for b in message["content"]
                                 if isinstance(b, dict)) else "end_turn"
        full = {"id": f"msg_{request_digest(body)}", "type": "message", "role": "assistant",
                "model": body["model"], "stop_reason": stop, "stop_sequence": None,
                **message}
        full.setdefault("usage", count_usage(body, full["content"]))
        return full if verbatim else self._account_cache(body, full)

    def _account_cache(self, body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        """With ``cache_control`` on a system block, the system prompt's tokens are
        written to the cache the first time this server sees it and read afterwards."""
        blocks = body.get("system")
        if not isinstance(blocks, list) or not any(
                isinstance(b, dict) and b.get("cache_control") for b in blocks):
            return message
        key = _sha256(system_text(body))
        with self._lock:
            seen = key in self._cached
            self._cached.add(key)
        chars = system_chars(body)
        tokens = _tokens(chars)
        usage = {**message.get("usage", {}),
                 "input_tokens": _tokens(max(prompt_chars(body) - chars, 0)),
                 "cache_creation_input_tokens": 0 if seen else tokens,
                 "cache_read_input_tokens": tokens if seen else 0}
        return {**message, "usage": usage}

    # --- models and fault control --------------------------------------------------

    def _model_list(self) -> dict[str, Any]:
        """``GET /v1/models`` in the API's list format (the ``models`` given, if any)."""
        data = [_model(m) for m in self.models or ()]
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    def _model_info(self, model_id: str) -> dict[str, Any]:
        """``GET /v1/models/{id}``: one model, 404 for an unknown one."""
        if self.models is not None and model_id not in self.models:
            raise _ApiError(404, "not_found_error", f"model: {model_id}")
        return _model(model_id)

    def _fault_control(self, method: str, raw: bytes) -> Reply:
        """``POST /_faults`` queues one fault object or a list, ``DELETE`` clears them,
        ``GET`` lists them: so a notebook or another process can inject faults."""
        if method == "POST":
            self.inject(*_faults_from_json(raw))
        elif method == "DELETE":
            self.clear_faults()
        elif method != "GET":
            raise _ApiError(404, "not_found_error", f"Not found: {method} /_faults")
        return Reply(200, {"pending": [f.to_dict() for f in self.faults_pending()]})

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        """Remember open connections, so that `stop` can close idle keep-alive ones."""
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


# --- checks ------------------------------------------------------------------------


def _loopback(host: Any) -> str:
    """``host`` if it is a loopback address (or "localhost"): the server never listens
    on a network another machine can reach."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ok = isinstance(host, str) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"host must be a loopback address, not {shown(host)}",
                          argument="host", fix="leave it out (host='127.0.0.1') or pass '::1'")
    return host


def _model_ids(models: Any) -> tuple[str, ...] | None:
    """The accepted model ids, in order, or None for "any model"."""
    if models is None:
        return None
    if isinstance(models, str) or not isinstance(models, Collection) or not all(
            isinstance(m, str) and m for m in models):
        raise ConfigError(f"models must be a collection of model ids, not {shown(models)}",
                          argument="models", fix="pass e.g. models=['claude-haiku-4-5']")
    return tuple(dict.fromkeys(models))


def _key_digest(api_key: Any) -> str | None:
    """A SHA-256 of the key: what the server keeps instead of the key itself."""
    if api_key is None:
        return None
    if not isinstance(api_key, str) or not api_key:
        raise ConfigError("api_key must be a non-empty string or None", argument="api_key",
                          fix="pass the key clients must send, or leave it out to accept any")
    return _sha256(api_key)


def _sha256(text: str) -> str:
    """The hex SHA-256 of a text (a key is compared by it, never kept)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _check_fields(body: dict[str, Any]) -> None:
    """400 for a missing or ill-typed required field, named as the API names it."""
    for name in _REQUIRED:
        if name not in body:
            raise _ApiError(400, "invalid_request_error", f"{name}: Field required")
    problems = {
        "model": not isinstance(body["model"], str) or not body["model"],
        "messages": not isinstance(body["messages"], list) or not body["messages"],
        "max_tokens": isinstance(body["max_tokens"], bool)
        or not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1,
        "stream": "stream" in body and not isinstance(body["stream"], bool),
    }
    wanted = {"model": "a non-empty string", "messages": "a list of at least one message",
              "max_tokens": "an integer >= 1", "stream": "a boolean"}
    for name, bad in problems.items():
        if bad:
            raise _ApiError(400, "invalid_request_error",
                            f"{name}: Input should be {wanted[name]}")
    for index, message in enumerate(body["messages"]):
        _check_message(index, message)
    _check_tool_choice(body)


def _check_message(index: int, message: Any) -> None:
    """400 for a message without a user/assistant role or without content."""
    where = f"messages.{index}"
    if not isinstance(message, dict):
        raise _ApiError(400, "invalid_request_error", f"{where}: Input should be an object")
    if message.get("role") not in ("user", "assistant"):
        raise _ApiError(400, "invalid_request_error",
                        f"{where}.role: Input should be 'user' or 'assistant'")
    if not isinstance(message.get("content"), (str, list)):
        raise _ApiError(400, "invalid_request_error",
                        f"{where}.content: Input should be a string or a list of blocks")


def _check_tool_choice(body: dict[str, Any]) -> None:
    """400 for a forced tool that ``tools`` does not define (the API refuses it too)."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    if choice.get("name") not in names:
        raise _ApiError(400, "invalid_request_error",
                        f"tool_choice.name: tool {choice.get('name')!r} is not in tools")


def _faults_from_json(raw: bytes) -> list[Fault]:
    """The faults a ``POST /_faults`` body describes; 400 with the problem otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"))
        return [Fault.from_dict(item) for item in (data if isinstance(data, list) else [data])]
    except (UnicodeDecodeError, ValueError) as exc:  # ConfigError is a ValueError
        raise _ApiError(400, "invalid_request_error", f"bad fault: {exc}") from None


def _bearer(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if it is one."""
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def _model(model_id: str) -> dict[str, Any]:
    """One model in the format of ``GET /v1/models``."""
    return {"type": "model", "id": model_id, "display_name": model_id,
            "created_at": MODEL_CREATED_AT}


def _error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """An error exactly as the API writes it."""
    return {"type": "error", "error": {"type": error_type, "message": message},
            "request_id": request_id}


def _tokens(chars: int) -> int:
    """Characters as tokens, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def _shut(connection: socket.socket) -> None:
    """Close a connection another thread may be waiting on."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


# --- HTTP --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that skips the reverse DNS look-up of its own address."""

    app: LocalMessagesServer
    daemon_threads = True

    def server_bind(self) -> None:
        """Bind, and name the server by its address rather than a DNS name."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]


class _HTTPServer6(_HTTPServer):
    """The same, on an IPv6 loopback address (``::1``)."""
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the app for the reply, and writes it (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "meshflow-localapi"
    timeout = 60
    server: _HTTPServer

    def setup(self) -> None:
        """Register the connection so that `stop` can close it, and send small replies at
        once (without TCP_NODELAY a reply's body waits for the client's delayed ACK,
        about 40 ms, on one call in four)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        """Forget the connection; a client that went away is no error."""
        self.server.app._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve("POST")

    def do_DELETE(self) -> None:
        """Serve a DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        """Read the body (within the size limit), get the reply, write it."""
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            reply = Reply(413, _error_body("request_too_large", "Request exceeds the maximum "
                                           "allowed number of bytes, or has no valid length.",
                                           "req_none"))
        else:
            raw = self.rfile.read(length) if length > 0 else b""
            reply = self.server.app.respond(method, self.path, self.headers, raw)
        try:
            self._write(reply)
        except OSError:  # the client went away (a timeout, a closed stream)
            self.close_connection = True

    def _write(self, reply: Reply) -> None:
        """Write a JSON body with its length, or the events as a chunked stream."""
        if reply.events is None:
            payload = json.dumps(reply.body).encode()
            self._head(reply, {"content-type": "application/json",
                               "content-length": str(len(payload))})
            self.wfile.write(payload)
            return
        self._head(reply, {"content-type": "text/event-stream; charset=utf-8",
                           "cache-control": "no-cache", "transfer-encoding": "chunked"})
        for event, data in reply.events:
            chunk = encode_event(event, data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        if reply.broken:
            self.close_connection = True

    def _head(self, reply: Reply, headers: dict[str, str]) -> None:
        """The status line and headers, the reply's own headers last."""
        self.send_response(reply.status)
        for name, value in {**headers, **reply.headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a test run or a notebook should not fill with access logs."""
