"""The local Messages API server, seen through the real ``anthropic`` SDK over real HTTP.

Every client here has ``max_retries=0`` (the SDK retries 429/529/5xx by itself), so a
fault shows up as the exception a user of the SDK would catch.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from meshflow_nb.errors import ConfigError
from meshflow_nb.localapi import (
    FAULT_KINDS,
    Fault,
    LocalApiError,
    LocalMessagesServer,
    closed_port,
    decode_events,
    role_answer,
)

KEY = "sk-ant-local-test-0123456789abcdef"
MODEL = "claude-haiku-4-5"
TASK = "Write a report on heat pumps in cold climates."
HI = [{"role": "user", "content": "hi"}]


def system(role: str, extra: str = "") -> str:
    return f"You are the {role} of a governed research workflow.{extra}"


REVIEW_TOOL = {
    "name": "submit_review",
    "description": "Score the draft and say what to change.",
    "input_schema": {
        "type": "object",
        "properties": {"quality_score": {"type": "number", "minimum": 0, "maximum": 1},
                       "feedback": {"type": "string"}},
        "required": ["quality_score", "feedback"],
    },
}


def ask(role: str = "writer", task: str = TASK, **extra: Any) -> dict[str, Any]:
    """The keyword arguments of one ``messages.create`` call."""
    return {"model": MODEL, "max_tokens": 1024, "system": system(role),
            "messages": [{"role": "user", "content": task}], **extra}


def review(draft: str = "# Heat pumps\n\nThey work.") -> dict[str, Any]:
    """A critic's forced tool call on ``draft``."""
    return ask("critic", f"Assess this draft:\n\n{draft}", tools=[REVIEW_TOOL],
               tool_choice={"type": "tool", "name": "submit_review"})


@pytest.fixture
def server() -> Iterator[LocalMessagesServer]:
    with LocalMessagesServer() as running:
        yield running


@pytest.fixture
def client(server: LocalMessagesServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0,
                             timeout=10) as sdk:
        yield sdk


def raw(server: LocalMessagesServer, method: str, path: str, body: Any = None, *,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request (a second client that is not the SDK)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=data, headers={
            "content-type": "application/json", **({"x-api-key": KEY} if headers is None
                                                    else headers)})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def schema_errors(value: Any, schema: dict[str, Any], where: str = "input") -> list[str]:
    """What makes ``value`` break a small JSON Schema (type, enum, range, required)."""
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{where}: {value!r} not in the enum"]
    types = {"number": (int, float), "integer": int, "string": str, "boolean": bool,
             "array": list, "object": dict}
    kind = schema.get("type")
    if kind in types and (not isinstance(value, types[kind]) or (
            kind in ("number", "integer") and isinstance(value, bool))):
        return [f"{where}: expected {kind}, got {value!r}"]
    errors = []
    if kind in ("number", "integer") and not (
            schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf)):
        errors.append(f"{where}: {value} out of range")
    if kind == "object":
        errors += [f"{where}.{k}: missing" for k in schema.get("required", []) if k not in value]
        errors += [e for k, sub in schema.get("properties", {}).items() if k in value
                   for e in schema_errors(value[k], sub, f"{where}.{k}")]
    if kind == "array":
        errors += [e for i, item in enumerate(value)
                   for e in schema_errors(item, schema.get("items", {}), f"{where}[{i}]")]
    return errors


def dumped(message: Any) -> dict[str, Any]:
    """An SDK message as plain data, without the fields the SDK adds as None."""
    return message.model_dump(exclude_none=True)


# --- JSON answers ------------------------------------------------------------------


def test_a_json_answer_is_a_real_message_with_usage_counted_from_characters(server, client):
    response = client.messages.with_raw_response.create(**ask())
    data = json.loads(response.http_response.text)
    assert set(data) == {"id", "type", "role", "model", "content", "stop_reason",
                         "stop_sequence", "usage"}
    assert (data["type"], data["role"], data["model"]) == ("message", "assistant", MODEL)
    assert data["id"].startswith("msg_") and data["stop_reason"] == "end_turn"
    assert data["stop_sequence"] is None
    assert response.http_response.headers["request-id"].startswith("req_")
    text = data["content"][0]["text"]
    prompt_chars = len(system("writer")) + len(TASK)
    assert data["usage"] == {"input_tokens": math.ceil(prompt_chars / 4),
                             "output_tokens": math.ceil(len(text) / 4),
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    message = response.parse()
    assert message.content[0].text == text
    assert server.requests[-1]["messages"] == [{"role": "user", "content": TASK}]


@pytest.mark.parametrize(("role", "extra", "start", "inside"), [
    ("researcher", "", "Research brief: heat pumps in cold climates", "\n1. "),
    ("analyst", " Take the technical angle.", "Technical analysis: heat pumps", "\n- "),
    ("analyst", " Take the business angle.", "Business analysis: heat pumps", "\n- "),
    ("writer", "", "# Heat pumps in cold climates", "\n## Recommendations"),
    ("critic", "", "Review of the draft", "Quality score: 0."),
    ("publisher", "", "Published 'heat pumps in cold climates'", "review record"),
    ("planner", "", "Plan for: heat pumps", "\n1. "),
    ("guardian", "", "Guardian check: heat pumps", "policy"),
    ("navigator", "", "Response: heat pumps", "not from a real model"),
])
def test_each_role_answers_with_its_kind_of_text(client, role, extra, start, inside):
    message = client.messages.create(**{**ask(), "system": system(role, extra)})
    text = message.content[0].text
    assert text.startswith(start) and inside in text
    assert 40 <= len(text.split()) <= 250


def test_the_same_request_gets_the_same_answer_and_another_task_another(client):
    first = client.messages.create(**ask("researcher"))
    again = client.messages.create(**ask("researcher"))
    other = client.messages.create(**ask("researcher", "Research solid-state batteries."))
    assert dumped(first) == dumped(again)
    assert other.content[0].text != first.content[0].text and other.id != first.id
    assert "solid-state batteries" in other.content[0].text


def test_system_blocks_with_cache_control_name_the_role_too(client):
    blocks = [{"type": "text", "text": system("writer"), "cache_control": {"type": "ephemeral"}}]
    message = client.messages.create(**{**ask(), "system": blocks})
    assert message.content[0].text.startswith("# Heat pumps")


def test_a_revision_request_gets_a_changes_section(client):
    message = client.messages.create(**ask(task="Revise the draft on heat pumps using this "
                                               "feedback: name the sources."))
    assert "## Changes in revision" in message.content[0].text


def test_max_tokens_cuts_the_text_and_says_so(client):
    message = client.messages.create(**{**ask(), "max_tokens": 10})
    assert message.stop_reason == "max_tokens"
    assert len(message.content[0].text) == 40 and message.usage.output_tokens == 10


# --- streaming ---------------------------------------------------------------------


def test_a_stream_sends_the_real_event_order(server):
    status, headers, data = raw(server, "POST", "/v1/messages", {**ask(), "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = decode_events(data.decode())
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") == 1
    body = [n for n in names[1:-2] if n != "ping"]
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"} and len(body) > 4
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["input_tokens"] > 0
    pieces = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert all(len(p.split()) <= 4 for p in pieces)
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == math.ceil(len("".join(pieces)) / 4)


def test_the_sdk_stream_rebuilds_the_json_answer(client):
    answer = client.messages.create(**ask("researcher"))
    with client.messages.stream(**ask("researcher")) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) > 5 and "".join(deltas) == answer.content[0].text
    assert dumped(final)["content"] == dumped(answer)["content"]
    assert dumped(final.usage) == dumped(answer.usage)
    assert final.stop_reason == "end_turn" and final.id == answer.id


def test_the_async_sdk_streams_and_answers_too(server):
    async def run() -> tuple[Any, Any, list[str]]:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY,
                                            max_retries=0) as sdk:
            answer = await sdk.messages.create(**ask("analyst"))
            async with sdk.messages.stream(**ask("analyst")) as stream:
                deltas = [d async for d in stream.text_stream]
                final = await stream.get_final_message()
        return answer, final, deltas

    answer, final, deltas = asyncio.run(run())
    assert "".join(deltas) == answer.content[0].text
    assert dumped(final)["content"] == dumped(answer)["content"]
    assert dumped(final.usage) == dumped(answer.usage)


# --- tool use ----------------------------------------------------------------------


def test_a_forced_tool_call_fills_the_critics_schema(client):
    message = client.messages.create(**review())
    assert message.stop_reason == "tool_use" and len(message.content) == 1
    call = message.content[0]
    assert call.type == "tool_use" and call.name == "submit_review"
    assert call.id.startswith("toolu_")
    assert schema_errors(call.input, REVIEW_TOOL["input_schema"]) == []
    assert 0.55 <= call.input["quality_score"] <= 0.75
    assert len(call.input["feedback"].split()) >= 8
    assert message.usage.output_tokens == math.ceil(len(json.dumps(call.input)) / 4)


def test_a_revision_scores_higher_than_a_first_draft(client):
    drafts = [f"# Heat pumps, take {i}\n\nThey work in the cold." for i in range(6)]
    first = [client.messages.create(**review(d)).content[0].input["quality_score"]
             for d in drafts]
    revised = [client.messages.create(**review(d + "\n\n## Changes in revision\n\nMore."))
               .content[0].input["quality_score"] for d in drafts]
    assert all(0.55 <= s <= 0.75 for s in first) and len(set(first)) > 1
    assert all(0.82 <= s <= 0.93 for s in revised)


def test_any_tool_choice_fills_every_kind_of_schema_field(client):
    schema = {"type": "object", "required": ["count", "tags", "verdict"], "properties": {
        "count": {"type": "integer", "minimum": 3, "maximum": 5},
        "share": {"type": "number", "minimum": 10, "maximum": 20},
        "verdict": {"enum": ["accept", "revise", "reject"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "urgent": {"type": "boolean"},
        "note": {"type": "string"}}}
    tool = {"name": "classify", "description": "x", "input_schema": schema}
    message = client.messages.create(**ask(tools=[tool], tool_choice={"type": "any"}))
    call = message.content[0]
    assert call.name == "classify" and schema_errors(call.input, schema) == []
    assert set(call.input) == set(schema["properties"])


def test_the_sdk_stream_gives_the_parsed_tool_input(client):
    answer = client.messages.create(**review())
    with client.messages.stream(**review()) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert final.content[0].input == answer.content[0].input
    assert final.content[0].id == answer.content[0].id and final.stop_reason == "tool_use"


def test_auto_tool_choice_answers_with_text(client):
    message = client.messages.create(**ask(tools=[REVIEW_TOOL], tool_choice={"type": "auto"}))
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"


# --- faults ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "error", "status", "error_type"), [
    ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("overloaded", anthropic.InternalServerError, 529, "overloaded_error"),
    ("unauthorized", anthropic.AuthenticationError, 401, "authentication_error"),
    ("forbidden", anthropic.PermissionDeniedError, 403, "permission_error"),
    ("not_found", anthropic.NotFoundError, 404, "not_found_error"),
])
def test_each_http_fault_is_the_sdks_own_exception(server, client, kind, error, status,
                                                    error_type):
    server.inject(Fault(kind, retry_after_ms=1500, retry_after_s=2))
    with pytest.raises(error) as caught:
        client.messages.create(**ask())
    assert caught.value.status_code == status
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    assert caught.value.response.headers["retry-after"] == "2"
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == caught.value.request_id and body["request_id"].startswith("req_")
    assert client.messages.create(**ask()).stop_reason == "end_turn"  # used up: times=1


def test_a_fault_hits_as_many_requests_as_its_times(server, client):
    server.inject(Fault("overloaded", times=2), Fault("rate_limit"))
    assert server.faults_pending() == [Fault("overloaded", times=2), Fault("rate_limit")]
    seen = []
    for _ in range(4):
        try:
            client.messages.create(**ask())
            seen.append(200)
        except anthropic.APIStatusError as exc:
            seen.append(exc.status_code)
        if len(seen) == 1:
            assert server.faults_pending() == [Fault("overloaded"), Fault("rate_limit")]
    assert seen == [529, 529, 429, 200] and server.faults_pending() == []


def test_the_sdk_retries_a_rate_limit_after_retry_after_ms(server):
    server.inject(Fault("rate_limit", times=2, retry_after_ms=20))
    with anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=2) as sdk:
        started = time.monotonic()
        message = sdk.messages.create(**ask())
    assert message.stop_reason == "end_turn" and len(server.requests) == 3
    assert time.monotonic() - started < 2  # waited 20 ms twice, not the default backoff


def test_a_stream_error_breaks_off_the_stream_with_the_apis_error_event(server, client):
    server.inject(Fault("stream_error"))
    client.messages.create(**ask())  # a request that does not stream is not hit
    assert server.faults_pending() == [Fault("stream_error")]
    deltas: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, \
            client.messages.stream(**ask()) as stream:
        deltas.extend(stream.text_stream)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    whole = client.messages.create(**ask()).content[0].text
    assert deltas and len("".join(deltas)) < len(whole) and whole.startswith("".join(deltas))


def test_a_slow_fault_delays_the_answer_and_a_short_timeout_gives_up(server, client):
    server.inject(Fault("slow", delay_s=0.3))
    started = time.monotonic()
    assert client.messages.create(**ask()).stop_reason == "end_turn"
    assert time.monotonic() - started >= 0.3
    server.inject(Fault("slow", delay_s=2))
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.2).messages.create(**ask())


def test_bad_tool_input_breaks_the_schema(server, client):
    server.inject(Fault("bad_tool_input"))
    client.messages.create(**ask())  # no tools: not hit
    call = client.messages.create(**review()).content[0]
    problems = schema_errors(call.input, REVIEW_TOOL["input_schema"])
    assert problems == ["input.feedback: missing",
                        "input.quality_score: expected number, got 'not a number'"]
    assert schema_errors(client.messages.create(**review()).content[0].input,
                         REVIEW_TOOL["input_schema"]) == []


def test_faults_posted_over_http_hit_the_sdks_requests(server, client):
    status, _, data = raw(server, "POST", "/_faults", [
        {"kind": "rate_limit", "retry_after_s": 1}, {"kind": "forbidden", "match": "critic"}])
    assert status == 200 and [f["kind"] for f in json.loads(data)["pending"]] == [
        "rate_limit", "forbidden"]
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(**ask())
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(**review())
    raw(server, "POST", "/_faults", {"kind": "overloaded", "times": 5})
    status, _, data = raw(server, "DELETE", "/_faults")
    assert status == 200 and json.loads(data) == {"pending": []}
    assert client.messages.create(**ask()).stop_reason == "end_turn"


@pytest.mark.parametrize(("fault", "named"), [
    ({"kind": "meteor"}, "rate_limit, overloaded"),
    ({"kind": "slow"}, "delay_s"),
    ({"kind": "rate_limit", "times": 0}, "Fault.times"),
    ({"kind": "rate_limit", "colour": "red"}, "colour"),
    ({"times": 2}, "kind"),
    ("rate_limit", "JSON object"),
])
def test_a_bad_fault_over_http_is_a_400_naming_the_field(server, fault, named):
    status, _, data = raw(server, "POST", "/_faults", fault)
    error = json.loads(data)["error"]
    assert status == 400 and error["type"] == "invalid_request_error" and named in error["message"]
    assert server.faults_pending() == []


def test_match_limits_a_fault_to_the_requests_that_contain_it(server, client):
    server.inject(Fault("overloaded", match="You are the critic"))
    assert client.messages.create(**ask("writer")).stop_reason == "end_turn"
    assert client.messages.create(**ask("writer", "Ask the critic later.")).content
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(**review())
    assert server.faults_pending() == []


def test_a_closed_port_is_a_connection_error():
    with anthropic.Anthropic(base_url=f"http://127.0.0.1:{closed_port()}", api_key=KEY,
                             max_retries=0, timeout=5) as sdk, \
            pytest.raises(anthropic.APIConnectionError):
        sdk.messages.create(**ask())


def test_a_stopped_server_answers_no_one_even_on_a_kept_alive_connection(server, client):
    assert client.messages.create(**ask()).content
    server.stop()
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**ask())


# --- keys, checks and models -------------------------------------------------------


def _error(status_headers_data: tuple[int, dict[str, str], bytes]) -> tuple[int, str, str]:
    status, headers, data = status_headers_data
    body = json.loads(data)
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert headers["request-id"] == body["request_id"]
    return status, body["error"]["type"], body["error"]["message"]


def test_either_key_header_is_accepted_and_none_is_a_401(server):
    assert raw(server, "POST", "/v1/messages", ask(), headers={"x-api-key": KEY})[0] == 200
    assert raw(server, "POST", "/v1/messages", ask(),
               headers={"authorization": f"Bearer {KEY}"})[0] == 200
    assert _error(raw(server, "POST", "/v1/messages", ask(), headers={})) == (
        401, "authentication_error", "x-api-key header is required")


def test_a_server_given_a_key_refuses_another(server):
    with LocalMessagesServer(api_key=KEY) as guarded:
        good = anthropic.Anthropic(base_url=guarded.url, api_key=KEY, max_retries=0)
        assert good.messages.create(**ask()).content
        wrong = anthropic.Anthropic(base_url=guarded.url, api_key="sk-ant-wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.create(**ask())
    assert caught.value.body["error"]["message"] == "invalid x-api-key"


def test_the_key_is_never_kept(server, client):
    client.messages.create(**ask())
    raw(server, "POST", "/v1/messages", ask(), headers={"x-api-key": KEY})
    with LocalMessagesServer(api_key=KEY) as guarded:
        raw(guarded, "POST", "/v1/messages", ask(), headers={"x-api-key": KEY})
        kept = repr(vars(guarded)) + repr(guarded.requests) + repr(guarded.request_headers)
    kept += repr(vars(server)) + repr(server.requests) + repr(server.request_headers)
    assert KEY not in kept and KEY[-12:] not in kept
    assert "authorization" in server.request_headers[0]
    assert "x-api-key" in server.request_headers[1]


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": [], "max_tokens": 5}, "model: Field required"),
    ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
    ({"model": MODEL, "messages": []}, "max_tokens: Field required"),
    ({"model": MODEL, "messages": HI, "max_tokens": "ten"}, "max_tokens: Input should be"),
    ({"model": MODEL, "messages": "hi", "max_tokens": 5}, "messages: Input should be a list"),
    ({"model": MODEL, "messages": [], "max_tokens": 5}, "messages: Input should be a list"),
    ({"model": MODEL, "messages": HI, "max_tokens": 5, "stream": "yes"}, "stream: Input"),
    ({"model": MODEL, "messages": [{"content": "hi"}], "max_tokens": 5}, "messages.0.role"),
    ({"model": MODEL, "messages": [*HI, {"role": "assistant"}], "max_tokens": 5},
     "messages.1.content"),
    ({**ask(), "tools": [REVIEW_TOOL], "tool_choice": {"type": "tool", "name": "grade"}},
     "tool_choice.name: tool 'grade' is not in tools"),
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    ([1, 2], "must be a JSON object, not list"),
])
def test_a_bad_request_body_is_a_400_naming_what_is_wrong(server, body, message):
    status, kind, text = _error(raw(server, "POST", "/v1/messages", body))
    assert (status, kind) == (400, "invalid_request_error") and message in text


def test_the_sdk_shows_a_400_as_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=0, messages=HI)
    assert "max_tokens" in caught.value.body["error"]["message"]


def test_an_unknown_model_is_a_404_when_models_are_given():
    with LocalMessagesServer(models=[MODEL, "claude-sonnet-4-5"]) as server, \
            anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0) as sdk:
        assert sdk.messages.create(**ask()).model == MODEL
        with pytest.raises(anthropic.NotFoundError) as caught:
            sdk.messages.create(**{**ask(), "model": "claude-2.0"})
        assert [m.id for m in sdk.models.list()] == [MODEL, "claude-sonnet-4-5"]
        assert sdk.models.retrieve(MODEL).id == MODEL
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-2.0"}


def test_any_model_is_answered_when_models_are_not_given(client):
    assert client.messages.create(**{**ask(), "model": "claude-2.0"}).model == "claude-2.0"


# --- prompt caching ----------------------------------------------------------------


def test_a_cached_system_prompt_is_written_once_then_read(server, client):
    text = system("analyst", " " + "Background the analyst must keep in mind. " * 40)
    blocks = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(**{**ask("analyst"), "system": blocks}).usage
    second = client.messages.create(**{**ask("analyst", "Another task."), "system": blocks}).usage
    cached = math.ceil(len(text) / 4)
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (cached, 0)
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, cached)
    assert second.input_tokens == math.ceil(len("Another task.") / 4)
    assert first.input_tokens == math.ceil(len(TASK) / 4)  # the system is not in it
    plain = client.messages.create(**{**ask("analyst"), "system": text}).usage
    assert plain.cache_read_input_tokens == plain.cache_creation_input_tokens == 0
    assert plain.input_tokens > cached
    with LocalMessagesServer() as fresh, \
            anthropic.Anthropic(base_url=fresh.url, api_key=KEY, max_retries=0) as sdk:
        again = sdk.messages.create(**{**ask("analyst"), "system": blocks}).usage
    assert again.cache_creation_input_tokens == cached  # the cache is per server


# --- the server itself -------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"host": "0.0.0.0"}, "host"),
    ({"host": "192.168.1.10"}, "host"),
    ({"host": "example.com"}, "host"),
    ({"port": 70000}, "port"),
    ({"port": -1}, "port"),
    ({"models": MODEL}, "models"),
    ({"models": [MODEL, ""]}, "models"),
    ({"api_key": ""}, "api_key"),
    ({"answer": "role_answer"}, "answer"),
])
def test_bad_server_arguments_fail_at_construction(kwargs, argument):
    with pytest.raises(ConfigError) as caught:
        LocalMessagesServer(**kwargs)
    assert caught.value.argument == argument and caught.value.fix


@pytest.mark.parametrize(("kwargs", "argument", "words"), [
    ({"kind": "meteor"}, "Fault.kind", ", ".join(FAULT_KINDS)),
    ({"kind": "rate_limit", "times": 0}, "Fault.times", "whole number"),
    ({"kind": "rate_limit", "times": True}, "Fault.times", "whole number"),
    ({"kind": "rate_limit", "retry_after_ms": -5}, "Fault.retry_after_ms", "whole number"),
    ({"kind": "rate_limit", "retry_after_s": "soon"}, "Fault.retry_after_s", "number"),
    ({"kind": "slow"}, "Fault.delay_s", "delay_s > 0"),
    ({"kind": "slow", "delay_s": -1}, "Fault.delay_s", "number"),
    ({"kind": "rate_limit", "match": ""}, "Fault.match", "non-empty"),
])
def test_bad_fault_fields_fail_at_construction(kwargs, argument, words):
    with pytest.raises(ConfigError) as caught:
        Fault(**kwargs)
    assert caught.value.argument == argument and words in str(caught.value)


def test_inject_takes_faults_only(server):
    with pytest.raises(ConfigError, match="Fault objects"):
        server.inject("rate_limit")  # type: ignore[arg-type]


def test_a_server_not_started_has_no_url_and_a_taken_port_is_an_error(server):
    with pytest.raises(LocalApiError, match="start"):
        _ = LocalMessagesServer().url
    with pytest.raises(LocalApiError, match="port=0"):
        LocalMessagesServer(port=server.port).start()
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_an_answer_function_is_completed_into_a_message_and_its_failure_is_a_500():
    def terse(body: dict[str, Any]) -> dict[str, Any]:
        if "fail" in body["messages"][0]["content"]:
            raise RuntimeError("no answer today")
        return {"content": [{"type": "text", "text": "Yes."}]}

    with LocalMessagesServer(terse) as server, \
            anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0) as sdk:
        message = sdk.messages.create(**ask())
        with pytest.raises(anthropic.InternalServerError) as caught:
            sdk.messages.create(**ask(task="fail please"))
    assert message.content[0].text == "Yes." and message.model == MODEL
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 1
    assert "no answer today" in caught.value.body["error"]["message"]


def test_many_threads_are_answered_at_once(server, client):
    server.inject(Fault("slow", delay_s=0.3, times=8))
    results: list[str] = []

    def one(i: int) -> None:
        results.append(client.messages.create(**ask(task=f"Task {i}")).content[0].text)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 8 and len(server.requests) == 8
    assert time.monotonic() - started < 2  # concurrently, not 8 x 0.3 s in a row


def test_role_answer_is_a_plain_function_of_the_body():
    body = ask("critic")
    assert role_answer(body) == role_answer(json.loads(json.dumps(body)))
    assert role_answer({**body, "stream": True})["id"] == role_answer(body)["id"]
