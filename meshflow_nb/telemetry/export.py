"""The tracer provider that exports to the environment's endpoint, one per process.

Spans leave through a `BatchSpanProcessor`: ending a span only queues it, and a worker
thread sends the batches. A dead or slow collector costs the run nothing; the SDK drops
what it cannot send (logging why) and, at exit, waits for the queue at most the
exporter's timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default).
"""

from __future__ import annotations

import functools
import os

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE = "meshflow-nb"
"""``service.name`` of our spans unless ``OTEL_SERVICE_NAME`` (or the resource
attributes) name one."""


def endpoint_provider(endpoint: str) -> TracerProvider:
    """The provider exporting to ``endpoint`` under the current exporter settings."""
    settings = tuple(sorted((k, v) for k, v in os.environ.items()
                            if k.startswith(("OTEL_EXPORTER_OTLP", "OTEL_BSP_"))))
    return _provider(endpoint, settings)


@functools.cache
def _provider(endpoint: str, settings: tuple[tuple[str, str], ...]) -> TracerProvider:
    """One provider (and one export thread) per endpoint and settings, kept for the
    process: a run must not start a thread, and the SDK flushes it at exit."""
    provider = TracerProvider(resource=resource())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def resource() -> Resource:
    """The environment's resource, named `SERVICE` when it names no service."""
    found = Resource.create()
    if str(found.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: SERVICE}))
    return found
