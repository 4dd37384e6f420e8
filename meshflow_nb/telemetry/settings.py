"""What the environment says about trace export: where spans go, and whether content may.

Standard library only, so that a run without export pays an environment look-up and
nothing more. The names follow the OpenTelemetry specification: the OTLP exporter's
endpoint variables, the SDK's off switch and the GenAI instrumentations' content switch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError, shown

SEMCONV_VERSION = "1.41.0"
"""The OpenTelemetry semantic conventions our spans follow. Their GenAI part (Development
status) changes between releases; 1.41.0 is the last release that holds it together with
the ``invoke_workflow`` span, before the GenAI conventions moved to their own repository."""
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""The collector's base URL; the exporter sends traces to it plus ``/v1/traces``."""
TRACES_ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
"""The traces URL itself, used as it is; wins over `ENDPOINT_VAR`."""
SDK_DISABLED_VAR = "OTEL_SDK_DISABLED"
"""``true`` switches export off whatever the endpoint says."""
CAPTURE_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""``true`` (or ``SPAN_ONLY``, ``SPAN_AND_EVENT``) puts message content on the spans."""
CAPTURE_ON = frozenset({"true", "1", "span_only", "span_and_event"})
TRACES_PATH = "v1/traces"


def traces_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The URL spans are exported to, or None when no endpoint is set (or the SDK is off).

    A malformed URL is a `ConfigError` naming the variable, raised here rather than deep
    inside the exporter on its first batch.
    """
    env = os.environ if env is None else env
    if env.get(SDK_DISABLED_VAR, "").strip().lower() == "true":
        return None
    if traces := env.get(TRACES_ENDPOINT_VAR, "").strip():
        return _checked(traces, TRACES_ENDPOINT_VAR)
    if base := env.get(ENDPOINT_VAR, "").strip():
        return f"{_checked(base, ENDPOINT_VAR).removesuffix('/')}/{TRACES_PATH}"
    return None


def capture_content(env: Mapping[str, str] | None = None) -> bool:
    """Whether message content (redacted as the run records it) goes on the spans."""
    env = os.environ if env is None else env
    return env.get(CAPTURE_VAR, "").strip().lower() in CAPTURE_ON


def _checked(url: str, variable: str) -> str:
    """``url`` when it is an http(s) URL with a host (and a valid port), else a ConfigError."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{variable} must be an http(s) URL, not {shown(url)}",
                          argument=variable,
                          fix="set it like http://127.0.0.1:4318 (an OTLP/HTTP collector), or "
                              "unset it to switch trace export off")
    return url
