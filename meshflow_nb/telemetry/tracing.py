"""Whether a run is traced, and with which tracer provider: the engine's one entry here.

`run_tracer` answers None, after two environment look-ups, when no endpoint is set and
no provider is given, so an untraced run never loads OpenTelemetry.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, shown
from ..events import Subscriber
from ..model.graph import Blueprint
from .settings import capture_content, traces_endpoint

EXTRA = "pip install 'meshflow-nb[otel]'"


def run_tracer(definition: Blueprint, tracer_provider: Any = None) -> Subscriber | None:
    """The subscriber that turns one run's events into spans, or None when not traced.

    ``tracer_provider``: an OpenTelemetry ``TracerProvider`` to use; None exports to the
    endpoint of the environment when one is set (`settings.traces_endpoint`).
    """
    if tracer_provider is None:
        endpoint = traces_endpoint()
        if endpoint is None:
            return None
        from .export import endpoint_provider

        tracer_provider = endpoint_provider(endpoint)
    else:
        check_provider(tracer_provider)
    from .spans import RunTracer

    return RunTracer(definition, tracer_provider, capture=capture_content())


def check_provider(value: Any, argument: str = "tracer_provider") -> Any:
    """``value`` when it is an OpenTelemetry tracer provider, else a `ConfigError`."""
    try:
        from opentelemetry.trace import TracerProvider
    except ImportError:
        raise ConfigError(f"{argument}= needs OpenTelemetry, which is not installed",
                          argument=argument, fix=EXTRA) from None
    if not isinstance(value, TracerProvider):
        raise ConfigError(f"{argument} must be an OpenTelemetry TracerProvider, not "
                          f"{shown(value)}", argument=argument,
                          fix="pass opentelemetry.sdk.trace.TracerProvider(...) with a span "
                              "processor, or leave it out to export to "
                              "OTEL_EXPORTER_OTLP_ENDPOINT")
    return value
