"""A real OTLP/HTTP trace receiver on 127.0.0.1, for tests and lessons.

    with OtlpReceiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        wf.run(task)
        spans = receiver.wait_for(10, timeout_s=5)

It decodes each ``POST /v1/traces`` body, an ``ExportTraceServiceRequest`` in protobuf,
with ``opentelemetry-proto``, and keeps the spans as plain dataclasses. `hold` makes it
stop answering (a slow collector) until `release`; ``status`` makes it refuse.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ..errors import MeshflowError
from ..validation import whole

TRACES_PATH = "/v1/traces"
HOLD_LIMIT_S = 60.0
"""Longest a held request waits for `OtlpReceiver.release` (then it is answered)."""


class ReceiverError(MeshflowError):
    """The receiver did not get what was waited for (the message says what it has)."""


@dataclass(frozen=True)
class SpanEvent:
    """One event of a received span."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SpanStatus:
    """A received span's status: ``UNSET``, ``OK`` or ``ERROR``, and its description."""

    code: str
    message: str = ""


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector saw it; ids are lower-case hex, no parent is None."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    """``INTERNAL``, ``CLIENT``, ``SERVER``, ``PRODUCER`` or ``CONSUMER``."""
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[SpanEvent]
    status: SpanStatus
    scope: str = ""
    """The instrumentation scope that made it (``meshflow_nb``, the anthropic SDK's)."""
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    """An OTLP/HTTP collector on ``http://127.0.0.1:PORT`` in a daemon thread."""

    def __init__(self, *, port: int = 0, status: int = 200) -> None:
        self._port = whole(port, "port", maximum=65535, fix="pass port=0 for a free port")
        self.status = whole(status, "status", minimum=100, maximum=599)
        """The HTTP status every export is answered with (200: accepted)."""
        self._spans: list[ReceivedSpan] = []
        self._requests = 0
        self._arrived = threading.Condition()
        self._open = threading.Event()
        self._open.set()
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> OtlpReceiver:
        """Listen and serve in a daemon thread (does nothing when already serving)."""
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
            self._httpd.daemon_threads = True
            self._httpd.receiver = self
            self._port = self._httpd.server_address[1]
            threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"otlp-receiver:{self._port}", daemon=True).start()
        return self

    def stop(self) -> None:
        """Answer what is held, stop serving and free the port."""
        httpd, self._httpd = self._httpd, None
        self.release()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: what to set ``OTEL_EXPORTER_OTLP_ENDPOINT`` to."""
        if self._httpd is None:
            raise ReceiverError("the receiver is not running: use it as "
                                "`with OtlpReceiver() as receiver:`")
        return f"http://127.0.0.1:{self._port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order (a copy)."""
        with self._arrived:
            return list(self._spans)

    @property
    def requests(self) -> int:
        """How many export requests arrived (answered or held)."""
        with self._arrived:
            return self._requests

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[ReceivedSpan]:
        """The spans once at least ``count`` have arrived; a `ReceiverError` after
        ``timeout_s`` seconds without them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._spans) >= count, timeout_s):
                names = sorted({s.name for s in self._spans})
                raise ReceiverError(f"{len(self._spans)} of {count} spans arrived within "
                                    f"{timeout_s:g} s: {names}")
            return list(self._spans)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> None:
        """Return once ``count`` export requests have arrived (held ones count)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._requests >= count, timeout_s):
                raise ReceiverError(f"{self._requests} of {count} export requests arrived "
                                    f"within {timeout_s:g} s")

    def hold(self) -> None:
        """Stop answering: each request waits (a slow collector) until `release`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._open.set()

    def clear(self) -> None:
        """Forget the spans received so far."""
        with self._arrived:
            self._spans.clear()

    def _arrive(self, body: bytes) -> None:
        """Count the request, then keep its spans (once released, when held), each once."""
        with self._arrived:
            self._requests += 1
            self._arrived.notify_all()
        self._open.wait(HOLD_LIMIT_S)
        spans = decode(body) if self.status == 200 else []
        with self._arrived:  # a batch sent again after a slow answer is kept once
            known = {(s.trace_id, s.span_id) for s in self._spans}
            self._spans.extend(s for s in spans if (s.trace_id, s.span_id) not in known)
            self._arrived.notify_all()


class _Handler(BaseHTTPRequestHandler):
    """``POST /v1/traces`` with a protobuf body; everything else is 404."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver: OtlpReceiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._answer(404, b"")
            return
        try:
            receiver._arrive(_inflated(body, self.headers.get("Content-Encoding", "")))
        except Exception:  # a body that is not an export request: what a collector says
            self._answer(400, b"")
            return
        reply = ExportTraceServiceResponse().SerializeToString() if receiver.status == 200 else b""
        self._answer(receiver.status, reply)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test's output is not the place for access logs."""


def _inflated(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one protobuf ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [_span(span, scoped.scope.name, _attributes(resource.resource.attributes))
            for resource in request.resource_spans for scoped in resource.scope_spans
            for span in scoped.spans]


def _span(span: Span, scope: str, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        events=[SpanEvent(e.name, e.time_unix_nano, _attributes(e.attributes))
                for e in span.events],
        status=SpanStatus(Status.StatusCode.Name(span.status.code).removeprefix(
            "STATUS_CODE_"), span.status.message),
        scope=scope, resource=resource)


def _attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it holds."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)
