"""OpenTelemetry export of every run: spans built from the run's events.

Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or pass ``tracer_provider=`` to a run) and each run
is one trace: ``invoke_workflow {workflow}``, an ``invoke_agent {node}`` span per node
execution, span events for gates, retries, circuit states, guardian findings and budget
stops (docs/observability.md). The names below are loaded on first use: a run without
export never imports OpenTelemetry, and neither does ``import meshflow_nb``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .check import ExportCheck, check_export
from .settings import SEMCONV_VERSION, capture_content, traces_endpoint

_LAZY = {"OtlpReceiver": "receiver", "ReceivedSpan": "receiver", "ReceiverError": "receiver",
         "SpanEvent": "receiver", "SpanStatus": "receiver", "RunTracer": "spans"}

__all__ = [
    "SEMCONV_VERSION", "ExportCheck", "OtlpReceiver", "ReceivedSpan", "ReceiverError",
    "RunTracer", "SpanEvent", "SpanStatus", "capture_content", "check_export", "traces_endpoint",
]


def __getattr__(name: str) -> Any:
    """Load a public name's submodule on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
