"""Trace export from the events of a run: spans, their parents and attributes, and the
settings around it, with the SDK's in-memory exporter behind a real TracerProvider."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from meshflow_nb import (
    CircuitBreakerConfig,
    ConfigError,
    Node,
    Policy,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.pipelines import build_capstone_pipeline
from meshflow_nb.pipelines.capstone import AGENT_IDS
from meshflow_nb.policy.guardian_corpus import ANTHROPIC_KEY
from meshflow_nb.telemetry import SEMCONV_VERSION, capture_content, traces_endpoint
from meshflow_nb.telemetry.current import tracer_provider

TASK = "Summarise the state of solid-state batteries"
KEY = ANTHROPIC_KEY
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_SDK_DISABLED", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def exported():
    """A real provider whose spans land in memory, synchronously."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def capstone(scores=(0.6, 0.85), **settings):
    """The capstone with zero-latency agents; the critic scores from ``scores``."""
    drafts = iter(scores)

    def agent(ctx):
        if ctx.node_id == "quality_gate":
            return {"quality_score": next(drafts), "feedback": "tighten it"}
        return f"{ctx.node_id} says: {ctx.task}"

    return build_capstone_pipeline(agents={a: agent for a in AGENT_IDS}, **settings)


def by_name(spans):
    return Counter(span.name for span in spans)


def one_node(agent, name="solo", **node_fields):
    return WorkflowDefinition(name).add_node(Node("only", agent, **node_fields))


def test_a_capstone_run_is_one_trace_of_a_workflow_span_and_a_span_per_node_execution(
        exported):
    provider, exporter = exported
    result = capstone().run(TASK, approver=fixed_approver(True, "ana"),
                            tracer_provider=provider)
    spans = exporter.get_finished_spans()
    assert result.ok and len(spans) == result.totals.node_executions + 1 == 10
    assert len({span.context.trace_id for span in spans}) == 1
    root = next(s for s in spans if s.parent is None)
    assert root.name == "invoke_workflow production_pipeline"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["meshflow.run_id"] == result.run_id
    assert root.attributes["meshflow.run.status"] == "completed"
    assert all(s.parent.span_id == root.context.span_id for s in spans if s is not root)
    assert by_name(spans)["invoke_agent writer"] == 2  # the loop's second pass
    writers = sorted((s for s in spans if s.name == "invoke_agent writer"),
                     key=lambda s: s.start_time)
    assert [w.attributes["meshflow.iteration"] for w in writers] == [1, 2]
    assert [e.name for e in root.events] == ["loop_iteration"]


def test_agent_spans_carry_the_genai_attributes_and_the_runs_accounting(exported):
    provider, exporter = exported
    result = capstone().run(TASK, approver=fixed_approver(True, "ana"),
                            tracer_provider=provider)
    spans = exporter.get_finished_spans()
    assert result.ok
    agents = [s for s in spans if s.name.startswith("invoke_agent ")]
    assert all(s.kind is SpanKind.INTERNAL for s in spans)
    for span in agents:
        node_id = span.name.removeprefix("invoke_agent ")
        assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert span.attributes["gen_ai.agent.name"] == node_id
        assert span.attributes["gen_ai.provider.name"] == "meshflow.local"
        assert span.attributes["meshflow.risk_tier"] == result_tier(node_id)
        assert isinstance(span.attributes["meshflow.seq"], int)
    critic = [s for s in agents if s.name == "invoke_agent quality_gate"]
    assert sorted(s.attributes["meshflow.variable.quality_score"] for s in critic) == [0.6, 0.85]
    assert "gen_ai.output.messages" not in str([s.attributes for s in spans])  # not opted in


def result_tier(node_id):
    return next(n.risk_tier.name for n in capstone().nodes if n.id == node_id)


def test_usage_tokens_include_the_cache_and_add_up_to_the_runs_totals(exported):
    provider, exporter = exported

    def cached(ctx):
        from meshflow_nb import AgentResult
        return AgentResult(text="done", tokens_in=120, tokens_out=30, cost_usd=0.002,
                           cache_write_tokens=80, cache_read_tokens=20, model="claude-haiku-4-5")

    result = one_node(cached).run(TASK, tracer_provider=provider)
    node, root = sorted(exporter.get_finished_spans(), key=lambda s: s.parent is None)
    assert node.attributes["gen_ai.usage.input_tokens"] == 120 == result.totals.tokens_in
    assert node.attributes["gen_ai.usage.output_tokens"] == 30
    assert node.attributes["gen_ai.usage.cache_creation.input_tokens"] == 80
    assert node.attributes["gen_ai.usage.cache_read.input_tokens"] == 20
    assert node.attributes["gen_ai.response.model"] == "claude-haiku-4-5"
    assert node.attributes["meshflow.cost_usd"] == pytest.approx(0.002)
    assert root.attributes["gen_ai.usage.input_tokens"] == 120


def test_a_human_gate_is_a_gate_span_with_its_pause_and_decision_as_events(exported):
    provider, exporter = exported
    capstone().run(TASK, approver=fixed_approver(True, "ana", "looks right"),
                   tracer_provider=provider)
    gate = next(s for s in exporter.get_finished_spans() if s.name == "human_gate hitl_gate")
    assert gate.attributes["meshflow.node.kind"] == "human_gate"
    assert "gen_ai.operation.name" not in gate.attributes
    pause, resume = gate.events
    assert (pause.name, resume.name) == ("gate_pause", "gate_resume")
    assert pause.attributes["meshflow.reason"] == "gate"
    assert resume.attributes["meshflow.approved"] is True
    assert resume.attributes["meshflow.reviewer"] == "ana"


def test_a_rejected_gate_ends_its_span_and_the_run_in_error(exported):
    provider, exporter = exported
    result = capstone().run(TASK, approver=fixed_approver(False, "ana", "no"),
                            tracer_provider=provider)
    spans = exporter.get_finished_spans()
    gate = next(s for s in spans if s.name == "human_gate hitl_gate")
    root = next(s for s in spans if s.parent is None)
    assert result.status.value == "rejected_at_gate"
    assert gate.attributes["error.type"] == "gate_rejected"
    assert gate.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "rejected_at_gate"
    assert "invoke_agent publisher" not in by_name(spans)


def test_a_failing_agent_sets_error_type_and_a_redacted_description(exported):
    provider, exporter = exported

    def broken(ctx):
        raise RuntimeError(f"upstream refused key {KEY}")

    result = one_node(broken).run(TASK, tracer_provider=provider)
    node, root = sorted(exporter.get_finished_spans(), key=lambda s: s.parent is None)
    assert result.status.value == "failed"
    assert node.attributes["error.type"] == "exception"
    assert node.status.status_code is StatusCode.ERROR
    assert "RuntimeError" in node.status.description and KEY not in node.status.description
    assert [e.name for e in node.events] == ["node_failed"]
    assert root.attributes["error.type"] == "failed"
    assert KEY not in str([(s.status.description, s.attributes, [e.attributes for e in s.events])
                           for s in (node, root)])


def test_a_retry_and_the_circuits_state_are_events_on_the_node_span(exported):
    provider, exporter = exported
    calls = []

    def flaky(ctx):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the model went away")
        return "second time lucky"

    policy = Policy("dev", circuit_breaker=CircuitBreakerConfig(max_retries=2, backoff_base_s=0))
    result = one_node(flaky).run(TASK, policy=policy, tracer_provider=provider)
    node = next(s for s in exporter.get_finished_spans() if s.parent is not None)
    assert result.ok and len(calls) == 2
    retry = next(e for e in node.events if e.name == "node_retry")
    assert retry.attributes["meshflow.attempt"] == 1
    assert "ConnectionError" in retry.attributes["meshflow.error"]
    assert node.status.status_code is StatusCode.UNSET


def test_a_circuit_that_opens_is_an_event_on_the_node_span(exported):
    provider, exporter = exported

    def down(ctx):
        raise ConnectionError("the model is down")

    policy = Policy("dev", circuit_breaker=CircuitBreakerConfig(
        max_retries=3, failure_threshold=2, backoff_base_s=0))
    result = WorkflowDefinition("breaker").add_node("flaky_only", down).run(
        TASK, policy=policy, tracer_provider=provider)
    node = next(s for s in exporter.get_finished_spans() if s.parent is not None)
    states = [e for e in node.events if e.name == "circuit_state"]
    assert result.status.value == "failed"
    assert states and states[0].attributes["meshflow.to_state"] == "open"
    assert node.status.status_code is StatusCode.ERROR
    assert node.attributes["error.type"] == "exception"
    assert "ConnectionError" in node.status.description


def test_a_node_the_run_stopped_ends_with_the_runs_status(exported):
    provider, exporter = exported
    started = threading.Event()

    async def slow(ctx):
        started.set()
        await asyncio.sleep(60)

    handle = one_node(slow).start(TASK, tracer_provider=provider)
    assert started.wait(10)
    handle.cancel()
    result = handle.result(10)
    node = next(s for s in exporter.get_finished_spans() if s.parent is not None)
    assert result.status.value == "cancelled"
    assert node.attributes["error.type"] == "cancelled"
    assert node.status.status_code is StatusCode.ERROR


def test_a_budget_stop_marks_the_workflow_span(exported):
    provider, exporter = exported

    def spender(ctx):
        return {"text": "expensive", "cost_usd": 1.0}

    wf = (WorkflowDefinition("spend").add_node("first", spender).add_node("second", spender)
          .add_edge("first", "second"))
    result = wf.run(TASK, policy=Policy("dev", budget_usd=0.5), tracer_provider=provider)
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    assert result.status.value == "budget_exceeded"
    stop = next(e for e in root.events if e.name == "budget_exceeded")
    assert stop.attributes["meshflow.node_id"] == "first"
    assert stop.attributes["meshflow.budget"] == "cost"
    assert root.attributes["error.type"] == "budget_exceeded"
    assert "invoke_agent second" not in by_name(spans)


def test_a_guardian_finding_is_an_event_without_the_matched_text(exported):
    provider, exporter = exported
    result = one_node(lambda ctx: f"here is the key {KEY}").run(
        TASK, policy=Policy("standard"), tracer_provider=provider)
    node = next(s for s in exporter.get_finished_spans() if s.parent is not None)
    finding = next(e for e in node.events if e.name == "guardian_finding")
    assert result.ok and finding.attributes["meshflow.category"] == "secret"
    assert KEY not in str(finding.attributes)


@pytest.mark.parametrize("plain", [True, False], ids=["thread_agent", "async_agent"])
def test_the_agent_span_is_current_while_the_agent_runs(exported, plain):
    """What the agent instruments nests under its node's span, in a worker thread too,
    and it is handed the run's tracer provider."""
    provider, exporter = exported
    seen = {}

    def work(ctx):
        seen["parent"] = trace.get_current_span().get_span_context().span_id
        seen["provider"] = tracer_provider()
        with provider.get_tracer("inside").start_as_current_span("tool call"):
            pass
        return "ok"

    async def coroutine(ctx):
        await asyncio.sleep(0)
        return work(ctx)

    one_node(work if plain else coroutine).run(TASK, tracer_provider=provider)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    node = spans["invoke_agent only"]
    assert seen == {"parent": node.context.span_id, "provider": provider}
    assert spans["tool call"].parent.span_id == node.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing leaks to the caller


def test_content_goes_on_spans_only_when_asked_and_only_as_recorded(exported, monkeypatch):
    provider, exporter = exported
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    result = one_node(lambda ctx: f"draft with {KEY} inside").run(
        TASK, policy=Policy("standard"), tracer_provider=provider)
    node, root = sorted(exporter.get_finished_spans(), key=lambda s: s.parent is None)
    assert result.ok
    output = node.attributes["gen_ai.output.messages"]
    assert "draft with" in output and KEY not in output
    assert TASK in root.attributes["gen_ai.input.messages"]
    assert TASK in node.attributes["gen_ai.input.messages"]


def test_content_capture_reads_the_conventions_switch():
    assert capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True"})
    assert capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"})
    assert not capture_content({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"})
    assert not capture_content({})


@pytest.mark.parametrize("start", ["run", "stream", "start"])
def test_a_wrong_tracer_provider_is_refused_at_the_call(start):
    wf = one_node(lambda ctx: "ok")
    with pytest.raises(ConfigError, match="tracer_provider must be an OpenTelemetry") as err:
        getattr(wf, start)(TASK, tracer_provider="http://127.0.0.1:4318")
    assert err.value.argument == "tracer_provider"


def test_the_async_ways_refuse_it_at_the_call_too():
    wf = one_node(lambda ctx: "ok")
    with pytest.raises(ConfigError, match="tracer_provider"):
        wf.astream(TASK, tracer_provider=object())
    with pytest.raises(ConfigError, match="tracer_provider"):
        asyncio.run(wf.arun(TASK, tracer_provider=42))


@pytest.mark.parametrize("value", ["127.0.0.1:4318", "ftp://collector:4318", "http://",
                                   "http://collector:port"])
def test_a_malformed_endpoint_is_a_config_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT must be an http") as err:
        one_node(lambda ctx: "ok").run(TASK)
    assert err.value.argument == "OTEL_EXPORTER_OTLP_ENDPOINT"


def test_the_endpoint_follows_the_otlp_rules():
    assert traces_endpoint({}) is None
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert traces_endpoint(base) == "http://127.0.0.1:4318/v1/traces"
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/otlp/"}) == (
        "http://c:4318/otlp/v1/traces")
    exact = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c.example/custom"}
    assert traces_endpoint(exact) == "https://c.example/custom"  # as is, and it wins
    assert traces_endpoint({**base, "OTEL_SDK_DISABLED": "true"}) is None


def test_the_pinned_conventions_are_the_schema_of_our_spans(exported):
    provider, exporter = exported
    one_node(lambda ctx: "ok").run(TASK, tracer_provider=provider)
    scopes = {s.instrumentation_scope for s in exporter.get_finished_spans()}
    assert {(s.name, s.schema_url) for s in scopes} == {
        ("meshflow_nb", f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}")}


def test_a_run_without_endpoint_or_provider_never_loads_opentelemetry():
    code = ("import sys\nfrom meshflow_nb import WorkflowDefinition\n"
            "r = WorkflowDefinition('w').add_node('a', lambda ctx: 'ok').run('t')\n"
            "assert r.ok\nprint(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.strip() == "[]"
