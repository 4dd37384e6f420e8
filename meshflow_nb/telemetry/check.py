"""Does the configured collector accept our spans? One probe span, sent and answered.

`check_export` is what ``meshflow conformance`` asks: it exports one span synchronously,
past the batch processor, and reports the collector's answer in a sentence.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError, redacted
from .settings import ENDPOINT_VAR, TRACES_ENDPOINT_VAR, traces_endpoint

PROBE_SPAN = "meshflow.export_check"
HEADERS_VARS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
"""Where the exporter's extra headers (a collector's key, say) come from, first wins."""


@dataclass(frozen=True)
class ExportCheck:
    """What `check_export` found: is export configured, and did the collector accept."""

    configured: bool
    ok: bool
    endpoint: str | None
    detail: str


def check_export(timeout_s: float = 5.0, env: Mapping[str, str] | None = None) -> ExportCheck:
    """Export one probe span to the environment's endpoint and report the answer.

    ``env``: the variables to read (default ``os.environ``). Without an endpoint it says
    which variable to set; a malformed one, or no OpenTelemetry installed, is not ok.
    """
    env = os.environ if env is None else env
    try:
        endpoint = traces_endpoint(env)
    except ConfigError as err:
        return ExportCheck(True, False, None, str(err))
    if endpoint is None:
        return ExportCheck(False, False, None, f"trace export is off: set {ENDPOINT_VAR} (e.g. "
                           f"http://127.0.0.1:4318) or {TRACES_ENDPOINT_VAR} to a collector")
    try:
        body = probe_request()
    except ImportError:
        return ExportCheck(True, False, endpoint, "OpenTelemetry is not installed: "
                           "pip install 'meshflow-nb[otel]'")
    return _send(endpoint, body, _headers(env), timeout_s)


def probe_request() -> bytes:
    """One ended probe span, encoded as the OTLP exporter encodes a batch."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider

    from .export import resource

    span = TracerProvider(resource=resource(), shutdown_on_exit=False).get_tracer(
        "meshflow_nb").start_span(PROBE_SPAN)
    span.end()
    return encode_spans([span]).SerializeToString()


def _send(endpoint: str, body: bytes, headers: dict[str, str], timeout_s: float) -> ExportCheck:
    request = urllib.request.Request(endpoint, data=body, method="POST", headers={
        **headers, "Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status = answer.status
    except urllib.error.HTTPError as err:
        return ExportCheck(True, False, endpoint, f"the collector at {endpoint} refused the "
                           f"probe span: HTTP {err.code} {err.reason}")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return ExportCheck(True, False, endpoint,
                           f"no collector answered at {endpoint}: {_said(reason, timeout_s)}")
    return ExportCheck(True, True, endpoint,
                       f"the collector at {endpoint} accepted a probe span (HTTP {status})")


def _said(reason: object, timeout_s: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return redacted(str(reason))


def _headers(env: Mapping[str, str]) -> dict[str, str]:
    """The exporter's extra headers from the environment, parsed as the SDK parses them."""
    from opentelemetry.util.re import parse_env_headers

    for name in HEADERS_VARS:
        if value := env.get(name, "").strip():
            return dict(parse_env_headers(value, liberal=True))
    return {}
