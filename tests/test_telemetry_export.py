"""Trace export over real OTLP/HTTP: the environment's endpoint, the batch processor and a
real receiver on 127.0.0.1; a dead and a stalled collector; live mode against the local
Messages API server; and the export check that conformance calls."""

from __future__ import annotations

import socket

import pytest

from meshflow_nb import CircuitBreakerConfig, Policy, fixed_approver
from meshflow_nb.localapi.server import LocalMessagesServer
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline
from meshflow_nb.pipelines.capstone import AGENT_IDS
from meshflow_nb.telemetry import ExportCheck, OtlpReceiver, check_export

LIVE_VARS = ("MESHFLOW_MOCK", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MESHFLOW_REPLAY",
             "MESHFLOW_RECORD", "MESHFLOW_MODEL")
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_SDK_DISABLED", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
             "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
SPANS_PER_CAPSTONE = 10
"""The workflow span and nine node executions (one revision)."""


@pytest.fixture(autouse=True)
def otel_env(monkeypatch):
    """No endpoint but the test's own; batches leave after 50 ms, not 5 s."""
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    return monkeypatch


@pytest.fixture
def receiver(otel_env):
    with OtlpReceiver() as running:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
        yield running


def capstone():
    drafts = iter((0.6, 0.85))

    def agent(ctx):
        if ctx.node_id == "quality_gate":
            return {"quality_score": next(drafts), "feedback": "tighten it"}
        return f"{ctx.node_id} on {ctx.task}"

    return build_capstone_pipeline(agents={a: agent for a in AGENT_IDS})


def run_capstone(**options):
    return capstone().run(CAPSTONE_TASK, approver=fixed_approver(True, "ana"), **options)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_run_is_one_trace_at_the_environments_collector(receiver):
    first, second = run_capstone(), run_capstone()
    spans = receiver.wait_for(2 * SPANS_PER_CAPSTONE)
    traces = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    assert len(traces) == 2
    for result in (first, second):
        (mine,) = [t for t in traces.values()
                   if {s.attributes["meshflow.run_id"] for s in t} == {result.run_id}]
        (root,) = [s for s in mine if s.parent_span_id is None]
        assert root.name == "invoke_workflow production_pipeline" and root.kind == "INTERNAL"
        assert {s.parent_span_id for s in mine if s is not root} == {root.span_id}
        assert [s.attributes["meshflow.iteration"] for s in mine
                if s.name == "invoke_agent writer"] == [1, 2]
        assert root.attributes["gen_ai.usage.output_tokens"] == result.totals.tokens_out
        assert root.resource["service.name"] == "meshflow-nb"


def test_a_gate_and_a_retry_arrive_as_span_events(receiver):
    calls = []

    def flaky(ctx):
        calls.append(ctx.node_id)
        if ctx.node_id == "researcher" and calls.count("researcher") == 1:
            raise ConnectionError("the model went away")
        if ctx.node_id == "quality_gate":
            return {"quality_score": 0.9, "feedback": "fine"}
        return "text"

    policy = Policy("dev", circuit_breaker=CircuitBreakerConfig(max_retries=1, backoff_base_s=0))
    result = build_capstone_pipeline(agents={a: flaky for a in AGENT_IDS}, policy=policy).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "ana"))
    spans = {s.name: s for s in receiver.wait_for(result.totals.node_executions + 1)}
    assert result.ok
    assert [e.name for e in spans["invoke_agent researcher"].events] == ["node_retry"]
    gate = spans["human_gate hitl_gate"]
    assert [e.name for e in gate.events] == ["gate_pause", "gate_resume"]
    assert gate.events[1].attributes["meshflow.approved"] is True


def test_a_budget_stop_arrives_on_the_workflow_span(receiver):
    def spender(ctx):
        if ctx.node_id == "quality_gate":
            return {"quality_score": 0.9, "feedback": "fine", "cost_usd": 0.4}
        return {"text": "pricey", "cost_usd": 0.4}

    result = build_capstone_pipeline(agents={a: spender for a in AGENT_IDS},
                                     policy=Policy("dev", budget_usd=1.0)).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "ana"))
    spans = receiver.wait_for(result.totals.node_executions + 1)
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert result.status.value == "budget_exceeded"
    assert root.status.code == "ERROR" and root.attributes["error.type"] == "budget_exceeded"
    assert "budget_exceeded" in [e.name for e in root.events]


def test_a_dead_collector_changes_nothing_in_the_run(otel_env):
    untraced = run_capstone()
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    otel_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # the exit flush gives up soon
    traced = run_capstone()
    assert traced.status == untraced.status and traced.ok
    assert traced.output == untraced.output
    assert traced.totals.node_executions == untraced.totals.node_executions == 9
    assert [e.type for e in traced.events] == [e.type for e in untraced.events]


def test_a_stalled_collector_never_holds_up_a_run(receiver):
    receiver.hold()
    first = run_capstone()
    receiver.wait_for_requests(1)  # the exporter now waits on the collector's answer
    second = run_capstone()  # ... and this run still goes from start to end
    assert first.ok and second.ok
    assert receiver.spans == []  # nothing was answered while both runs ran,
    assert receiver.requests == 1  # and no run waited to send its own spans
    receiver.release()
    spans = receiver.wait_for(2 * SPANS_PER_CAPSTONE)
    assert len({s.trace_id for s in spans}) == 2


@pytest.fixture
def live(otel_env, receiver):
    """Live mode against the local Messages API server."""
    for name in LIVE_VARS:
        otel_env.delenv(name, raising=False)
    with LocalMessagesServer() as server:
        otel_env.setenv("ANTHROPIC_BASE_URL", server.url)
        yield server


def test_in_live_mode_each_model_call_nests_under_its_agent_span(live, receiver):
    policy = Policy("standard", budget_usd=5.0,
                    circuit_breaker=CircuitBreakerConfig(max_retries=2, backoff_base_s=0))
    result = build_capstone_pipeline(policy=policy).run(
        CAPSTONE_TASK, approver=fixed_approver(True, "ana"))
    agent_runs = result.totals.node_executions - 1  # the human gate calls no model
    spans = receiver.wait_for(result.totals.node_executions + 1 + agent_runs)
    assert result.ok, result.error
    by_id = {s.span_id: s for s in spans}
    calls = [s for s in spans if s.kind == "CLIENT"]
    assert len(calls) == agent_runs == len(live.requests)
    for call in calls:
        parent = by_id[call.parent_span_id]
        assert parent.name.startswith("invoke_agent ")
        assert parent.attributes["gen_ai.provider.name"] == "anthropic"
        assert call.attributes["gen_ai.provider.name"] == "anthropic"
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == parent.attributes[
            "gen_ai.request.model"]
        assert call.trace_id == parent.trace_id
        assert "gen_ai.input.messages" not in call.attributes  # content stays off there
    writer = next(s for s in spans if s.name == "invoke_agent writer")
    assert writer.attributes["gen_ai.usage.input_tokens"] > 0


def test_the_export_check_says_which_variable_to_set_when_there_is_none():
    check = check_export(env={})
    assert check == ExportCheck(False, False, None, check.detail)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in check.detail


def test_the_export_check_sends_one_probe_span_the_collector_accepts():
    with OtlpReceiver() as receiver:
        base = receiver.endpoint
        check = check_export(env={"OTEL_EXPORTER_OTLP_ENDPOINT": base})
        (span,) = receiver.spans  # sent synchronously: there when the check returns
    assert check.configured and check.ok and span.name == "meshflow.export_check"
    assert check.endpoint == f"{base}/v1/traces" and check.endpoint in check.detail


def test_the_export_check_names_a_refused_connection():
    endpoint = f"http://127.0.0.1:{free_port()}"
    check = check_export(timeout_s=2, env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint})
    assert check.configured and not check.ok and check.endpoint == endpoint
    assert "connection refused" in check.detail and endpoint in check.detail


def test_the_export_check_names_the_collectors_http_status():
    with OtlpReceiver(status=503) as receiver:
        check = check_export(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert not check.ok and "HTTP 503" in check.detail


def test_the_export_check_reports_a_malformed_endpoint_by_its_variable():
    check = check_export(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"})
    assert check.configured and not check.ok
    assert "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL" in check.detail


def test_a_batch_sent_again_after_a_slow_answer_is_kept_once(receiver):
    """An exporter that gave up waiting sends the batch again: the spans count once."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("test").start_as_current_span("invoke_workflow twice"):
        pass
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
    for _ in range(2):
        exporter.export(finished.get_finished_spans())
    receiver.wait_for_requests(2)
    assert [s.name for s in receiver.wait_for(1)] == ["invoke_workflow twice"]
