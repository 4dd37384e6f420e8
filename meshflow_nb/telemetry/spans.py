"""One run's events as OpenTelemetry spans, following the GenAI semantic conventions.

`RunTracer` subscribes to the run's bus, so the trace is built from the one event
model, as the terminal, the widgets and the ledger are:

* ``run_start`` opens ``invoke_workflow {workflow}``, the root (kind INTERNAL);
* ``node_start`` opens ``invoke_agent {node}`` (INTERNAL) under it, or
  ``human_gate {node}`` for a human gate, and makes it the current span of the node's
  task, so whatever the agent instruments (the anthropic SDK's call) nests under it;
* ``node_complete`` sets usage, cost, carbon and uncertainty and ends it; ``node_failed``,
  ``node_blocked``, ``gate_reject`` and a ``budget_exceeded`` that refuses a node end it
  with ``error.type``;
* every other event (gate pauses and decisions, retries, circuit states, guardian
  findings, budget stops, loops) is a span event on the node's open span, else on the
  root;
* ``run_complete`` ends the root with the run's status, and any node span still open
  with that status as its ``error.type`` (the run stopped the node).

Attribute names are those of the semantic conventions `SEMCONV_VERSION` (GenAI:
Development status), plus ours under ``meshflow.``. Content is only set when
``capture`` is on, and only as the run recorded it (after the guardian's redaction),
passed through `errors.redacted` once more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from ..errors import redacted
from ..events import EventType, MeshEvent, short_text
from ..model.graph import Blueprint, Node
from ..version import __version__
from .current import use_tracer_provider
from .settings import SCHEMA_URL

SCOPE = "meshflow_nb"
"""The instrumentation scope of our spans."""

OPERATION = "gen_ai.operation.name"
WORKFLOW_NAME = "gen_ai.workflow.name"
AGENT_NAME = "gen_ai.agent.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
"""Every prompt token, cache writes and reads included (as the conventions ask)."""
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

RUN_ID = "meshflow.run_id"
SEQ = "meshflow.seq"
NODE_ID = "meshflow.node_id"
NODE_KIND = "meshflow.node.kind"
ROLE = "meshflow.role"
ITERATION = "meshflow.iteration"
RISK_TIER = "meshflow.risk_tier"
COST = "meshflow.cost_usd"
CARBON = "meshflow.carbon_g"
UNCERTAINTY = "meshflow.uncertainty"
STATUS = "meshflow.run.status"
VARIABLE = "meshflow.variable."

LOCAL_PROVIDER = "meshflow.local"
"""``gen_ai.provider.name`` of an agent that names no provider (a mock, a function)."""

ENDS_NODE = {EventType.NODE_FAILED: None, EventType.NODE_BLOCKED: "blocked",
             EventType.GATE_REJECT: "gate_rejected",
             EventType.BUDGET_EXCEEDED: "budget_exceeded"}
"""Events after which the node's execution is over, with their ``error.type`` (None: the
failure's own ``reason``, e.g. ``timeout`` or ``exception``)."""
COMPLETE_KEYS = frozenset({"iteration", "duration_ms", "model", "cache_write_tokens",
                           "cache_read_tokens", "text"})
"""Payload keys of ``node_complete`` that are not the node's exported variables."""
CONTENT_KEYS = frozenset({"text", "task", "inputs", "delta", "policy"})
"""Payload keys never copied onto a span event (content, or nested settings)."""
TEXT_LIMIT = 1000
"""Longest text an event attribute carries."""


class RunTracer:
    """Builds one trace from one run's events; a subscriber of that run's bus."""

    def __init__(self, definition: Blueprint, provider: TracerProvider, *,
                 capture: bool = False) -> None:
        self.provider = provider
        self.capture = capture
        self._tracer = provider.get_tracer(SCOPE, __version__, schema_url=SCHEMA_URL)
        self._workflow = definition.name
        self._nodes = {node.id: node for node in definition.nodes}
        self._root: Span | None = None
        self._root_context: otel_context.Context | None = None
        self._ended = False
        self._open: dict[str, Span] = {}
        self._task = ""
        self._recorded: dict[str, str] = {}  # each node's latest output, when capturing
        self._usage = [0, 0]
        self._carbon: float | None = None  # None: no node reported carbon
        self._handlers: dict[EventType, Callable[[MeshEvent], None]] = {
            EventType.RUN_START: self._start_run, EventType.NODE_START: self._start_node,
            EventType.NODE_COMPLETE: self._complete_node, EventType.RUN_COMPLETE: self._end_run,
            EventType.NODE_PARTIAL: _ignore}

    def __call__(self, event: MeshEvent) -> None:
        """One event's part of the trace; after ``run_complete`` there is none."""
        if self._ended:
            return
        self._handlers.get(event.type, self._mark)(event)

    # --- the run ---------------------------------------------------------------------

    def _start_run(self, event: MeshEvent) -> None:
        self._task = str(event.payload.get("task", ""))
        self._open_root(event)

    def _open_root(self, event: MeshEvent) -> None:
        """The root span; a resumed run (no ``run_start`` here) opens it on its first event."""
        attributes = {OPERATION: "invoke_workflow", WORKFLOW_NAME: self._workflow,
                      RUN_ID: event.run_id, SEQ: event.seq}
        if self.capture and self._task:
            attributes[INPUT_MESSAGES] = _messages("user", [self._task])
        self._root = self._tracer.start_span(f"invoke_workflow {self._workflow}",
                                             kind=SpanKind.INTERNAL, attributes=attributes)
        self._root_context = trace.set_span_in_context(self._root)

    def _end_run(self, event: MeshEvent) -> None:
        if self._root is None:
            self._open_root(event)
        payload = event.payload
        status = str(payload.get("status", ""))
        for span in self._open.values():  # stopped with the run (a circuit that opened,
            _fail(span, status, payload.get("error"))  # a cancel, a failed sibling)
            span.end()
        self._open.clear()
        self._root.set_attributes(_present({
            STATUS: status, INPUT_TOKENS: self._usage[0], OUTPUT_TOKENS: self._usage[1],
            COST: payload.get("cost_usd"), CARBON: self._carbon,
            "meshflow.node_executions": payload.get("node_executions"),
            "meshflow.loop_iterations": payload.get("loop_iterations")}))
        if self.capture and event.output is not None:
            self._root.set_attribute(OUTPUT_MESSAGES, _messages("assistant", [_text(event.output)]))
        if status != "completed":
            _fail(self._root, status, payload.get("error"))
        self._root.end()
        self._ended = True

    # --- nodes -----------------------------------------------------------------------

    def _start_node(self, event: MeshEvent) -> None:
        """Open the node's span and make it current in the node's task (the event is
        emitted there), with our provider for the agent's own spans."""
        if self._root is None:
            self._open_root(event)
        node = self._nodes.get(event.node_id)
        gate = bool(getattr(node, "is_gate", False))
        attributes = {RUN_ID: event.run_id, SEQ: event.seq, NODE_KIND: "human_gate" if gate
                      else "agent", ITERATION: event.payload.get("iteration", 1),
                      **_present({ROLE: event.role, RISK_TIER: _tier(node)})}
        if not gate:
            attributes.update(_agent_attributes(event.node_id, node))
        if self.capture and not gate:
            inputs = [self._recorded.get(n, "") for n in event.payload.get("inputs", ())]
            attributes[INPUT_MESSAGES] = _messages("user", [self._task, *inputs])
        kind = "human_gate" if gate else "invoke_agent"
        span = self._tracer.start_span(f"{kind} {event.node_id}", context=self._root_context,
                                       kind=SpanKind.INTERNAL, attributes=attributes)
        self._open[event.node_id] = span
        otel_context.attach(trace.set_span_in_context(span, self._root_context))
        use_tracer_provider(self.provider)

    def _complete_node(self, event: MeshEvent) -> None:
        span = self._open.pop(event.node_id, None)
        if span is None:  # a gate decided in another process, resumed here
            self._mark(event)
            return
        payload = event.payload
        if not getattr(self._nodes.get(event.node_id), "is_gate", False):
            span.set_attributes(self._usage_of(event))
        if self.capture:
            text = _text(payload.get("text", event.output))
            self._recorded[event.node_id] = text
            span.set_attribute(OUTPUT_MESSAGES, _messages("assistant", [text]))
        span.end()

    def _usage_of(self, event: MeshEvent) -> dict[str, Any]:
        """A completed agent's usage, cost, carbon and numeric variables; added to the run's."""
        payload = event.payload
        tokens_in, tokens_out = event.tokens_in or 0, event.tokens_out or 0
        self._usage[0] += tokens_in
        self._usage[1] += tokens_out
        if event.carbon_g is not None:
            self._carbon = (self._carbon or 0.0) + event.carbon_g
        variables = {f"{VARIABLE}{k}": v for k, v in payload.items()
                     if k not in COMPLETE_KEYS and isinstance(v, (int, float, bool))}
        return _present({
            INPUT_TOKENS: tokens_in, OUTPUT_TOKENS: tokens_out,
            CACHE_WRITE_TOKENS: payload.get("cache_write_tokens"),
            CACHE_READ_TOKENS: payload.get("cache_read_tokens"),
            RESPONSE_MODEL: payload.get("model"), COST: event.cost_usd, CARBON: event.carbon_g,
            UNCERTAINTY: event.uncertainty, **variables})

    # --- everything else: span events ----------------------------------------------------

    def _mark(self, event: MeshEvent) -> None:
        """The event on its node's open span, else on the root; an event that ends a node
        sets the span's error and ends it."""
        if self._root is None:
            self._open_root(event)
        span = self._open.get(event.node_id) if event.node_id else None
        attributes = {SEQ: event.seq, **_event_attributes(event.payload),
                      **_present({UNCERTAINTY: event.uncertainty})}
        if span is None and event.node_id:
            attributes[NODE_ID] = event.node_id
        (span or self._root).add_event(event.type.value, attributes)
        if span is not None and event.type in ENDS_NODE:
            error = ENDS_NODE[event.type] or str(event.payload.get("reason", "_OTHER"))
            _fail(span, error, event.payload.get("error") or event.payload.get("message"))
            span.end()
            del self._open[event.node_id]


def _agent_attributes(node_id: str, node: Node | None) -> dict[str, Any]:
    """What the conventions want on an agent span when it starts (for samplers)."""
    agent = getattr(node, "agent", None)
    model = getattr(agent, "model", None)
    return {OPERATION: "invoke_agent", AGENT_NAME: node_id,
            PROVIDER: getattr(agent, "provider_name", None) or LOCAL_PROVIDER,
            **({REQUEST_MODEL: model} if isinstance(model, str) else {})}


def _tier(node: Node | None) -> str | None:
    tier = getattr(node, "risk_tier", None)
    return getattr(tier, "name", None)


def _fail(span: Span, error_type: str, message: Any) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, redacted(str(message)) if message else None))


def _event_attributes(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload's plain values as event attributes (text redacted and cut short); lists
    of text too; nested values and content (`CONTENT_KEYS`) left out."""
    attributes = {}
    for key, value in payload.items():
        if key in CONTENT_KEYS or value is None:
            continue
        if isinstance(value, (bool, int, float)):
            attributes[f"meshflow.{key}"] = value
        elif isinstance(value, str):
            attributes[f"meshflow.{key}"] = redacted(short_text(value, TEXT_LIMIT))
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            attributes[f"meshflow.{key}"] = [redacted(v) for v in value]
    return attributes


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _text(value: Any) -> str:
    """Recorded content as text, redacted once more."""
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)
    return redacted(text)


def _messages(role: str, texts: list[str]) -> str:
    """One message of text parts, as the conventions' message JSON schema has it."""
    parts = [{"type": "text", "content": text} for text in texts if text]
    message = {"role": role, "parts": parts, **({"finish_reason": "stop"}
                                                 if role == "assistant" else {})}
    return json.dumps([message], ensure_ascii=False)


def _ignore(event: MeshEvent) -> None:
    """Streamed pieces of text: the completed node's span carries the whole."""
