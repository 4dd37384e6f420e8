"""Cassettes: recorded exchanges saved safely and replayed through the real SDK."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import anthropic
import pytest

from meshflow_nb.errors import MeshflowError
from meshflow_nb.localapi import (
    CASSETTE_FORMAT,
    Cassette,
    CassetteError,
    Exchange,
    LocalMessagesServer,
    ReplayAnswers,
    ReplayMiss,
    append_exchange,
    replay_server,
    request_key,
    role_answer,
)

KEY = "sk-ant-local-test-0123456789abcdef"
MODEL = "claude-haiku-4-5"


def ask(role: str = "writer", task: str = "Write a report on heat pumps.",
        **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 800,
            "system": f"You are the {role} of a governed research workflow.",
            "messages": [{"role": "user", "content": task}], **extra}


def said(text: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A recorded Message with this text."""
    return {"id": f"msg_{abs(hash(text))}", "type": "message", "role": "assistant",
            "model": MODEL, "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 3,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def sdk(server: LocalMessagesServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0, timeout=10)


@pytest.fixture
def replaying():
    """Start replay servers for a test and stop them afterwards."""
    started: list[LocalMessagesServer] = []

    def start(path: Path) -> LocalMessagesServer:
        started.append(replay_server(path))
        return started[-1]

    yield start
    for server in started:
        server.stop()


# --- the file ----------------------------------------------------------------------


def test_a_saved_cassette_loads_back_equal_and_reads_well(tmp_path):
    path = tmp_path / "run.json"
    cassette = Cassette([Exchange(request_key(ask()), said("A")),
                         Exchange(request_key(ask("critic")), said("B"))],
                        recorded_against="a test", recorded_at="2026-01-02T03:04:05Z")
    cassette.save(path)
    assert Cassette.load(path) == cassette
    text = path.read_text()
    data = json.loads(text)
    assert data["format"] == CASSETTE_FORMAT and data["recorded_against"] == "a test"
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert list(data["exchanges"][0]) == ["request", "response"]


def test_only_the_matched_fields_of_a_request_are_stored(tmp_path):
    path = tmp_path / "run.json"
    body = {**ask(), "stream": True, "temperature": 0.3, "metadata": {"user_id": "u1"}}
    append_exchange(path, body, said("A"))
    stored = json.loads(path.read_text())["exchanges"][0]["request"]
    assert stored == {"model": MODEL, "system": body["system"], "messages": body["messages"],
                      "tools": None, "tool_choice": None, "max_tokens": 800}
    data = json.loads(path.read_text())
    assert data["recorded_against"].startswith("local fake server")
    assert data["recorded_at"].endswith("Z") and data["recorded_at"][:2] == "20"


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    Cassette([Exchange(request_key(ask()), said("old"))]).save(path)
    before = path.read_text()

    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        Cassette([Exchange(request_key(ask()), said("new" * 1000))]).save(path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temp file left


def test_four_processes_appending_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.json")
    tasks = [(path, ask(task=f"task {w}-{i}"), said(f"answer {w}-{i}"))
             for i in range(10) for w in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(append_exchange, tasks, chunksize=1)
    texts = [e.response["content"][0]["text"] for e in Cassette.load(path).exchanges]
    assert sorted(texts) == sorted(f"answer {w}-{i}" for w in range(4) for i in range(10))
    assert len(set(texts)) == 40


@pytest.mark.parametrize(("content", "words"), [
    ("", "is not JSON"),
    ("{not json", "is not JSON"),
    ("[]", "is not a meshflow-cassette/1 file"),
    ('{"format": "vcr/2", "exchanges": []}', "(format: 'vcr/2')"),
    (f'{{"format": "{CASSETTE_FORMAT}"}}', "has no list of exchanges"),
    (f'{{"format": "{CASSETTE_FORMAT}", "exchanges": [{{"request": {{}}, "response": {{}}}},'
     f' {{"request": {{}}}}]}}', "exchanges[1] has no response object"),
    (f'{{"format": "{CASSETTE_FORMAT}", "exchanges": ["x"]}}', "exchanges[0] has no request"),
])
def test_a_junk_cassette_is_an_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / "junk.json"
    path.write_text(content)
    with pytest.raises(CassetteError) as caught:
        Cassette.load(path)
    assert str(path) in str(caught.value) and words in str(caught.value)
    assert isinstance(caught.value, MeshflowError)


def test_a_missing_cassette_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(CassetteError, match="does not exist") as caught:
        Cassette.load(tmp_path / "nowhere.json")
    assert "nowhere.json" in str(caught.value)


def test_the_api_key_is_scrubbed_from_a_cassette(tmp_path, monkeypatch):
    secret = "sk-ant-api03-very-secret-value"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    path = tmp_path / "run.json"
    append_exchange(path, ask(task=f"my key is {secret}"), said(f"You said {secret}."))
    text = path.read_text()
    assert secret not in text and text.count("[redacted]") == 2
    assert Cassette.load(path).exchanges[0].response["content"][0]["text"] == \
        "You said [redacted]."


def test_a_short_key_is_not_scrubbed_from_ordinary_words(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the")
    path = tmp_path / "run.json"
    append_exchange(path, ask(), said("the end"))
    assert "the end" in path.read_text()


# --- replay ------------------------------------------------------------------------


def _record(path: Path, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """Ask a role-answering server for each body over HTTP, and record the exchanges."""
    recorded = []
    with LocalMessagesServer() as server, sdk(server) as client:
        for body in bodies:
            message = json.loads(client.messages.with_raw_response.create(**body).text())
            append_exchange(path, body, message)
            recorded.append(message)
    return recorded


def test_a_replay_returns_the_recorded_message_as_json_and_as_a_stream(tmp_path, replaying):
    path = tmp_path / "run.json"
    writer, critic = _record(path, ask(), ask("critic", "Assess the draft."))
    with sdk(replaying(path)) as client:
        again = client.messages.with_raw_response.create(**ask(), metadata={"user_id": "u7"},
                                                         extra_body={"temperature": 0.9})
        with client.messages.stream(**ask("critic", "Assess the draft.")) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert json.loads(again.text()) == writer
    assert text == critic["content"][0]["text"] and final.id == critic["id"]
    assert final.model_dump(exclude_none=True)["content"] == critic["content"]
    assert final.usage.model_dump(exclude_none=True) == critic["usage"]


def test_a_replay_does_not_recount_cache_tokens(tmp_path, replaying):
    blocks = [{"type": "text", "text": "You are the writer of a governed research workflow.",
               "cache_control": {"type": "ephemeral"}}]
    path = tmp_path / "run.json"
    recorded = _record(path, {**ask(), "system": blocks})[0]
    with sdk(replaying(path)) as client:
        usages = [client.messages.create(**{**ask(), "system": blocks}).usage.model_dump(
            exclude_none=True) for _ in range(2)]
    assert usages == [recorded["usage"]] * 2
    assert recorded["usage"]["cache_creation_input_tokens"] > 0


def test_equal_requests_are_served_in_recorded_order_the_last_repeating(tmp_path, replaying):
    path = tmp_path / "loop.json"
    for text in ("first draft", "second draft"):
        append_exchange(path, ask(), said(text))
    with sdk(replaying(path)) as client:
        texts = [client.messages.create(**ask()).content[0].text for _ in range(3)]
    assert texts == ["first draft", "second draft", "second draft"]


def test_a_miss_through_the_sdk_is_a_bad_request_naming_the_difference(tmp_path, replaying):
    path = tmp_path / "run.json"
    append_exchange(path, ask("critic", "Assess " + "the draft carefully. " * 10), said("A"))
    append_exchange(path, ask(), said("B"))
    with sdk(replaying(path)) as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**ask(task="Write a report on wind power."))
    message = caught.value.body["error"]["message"]
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert message.startswith("replay miss: no recorded exchange for this request "
                              f"(model '{MODEL}'); nearest recording #1 differs in "
                              "messages[0].content: recorded 'Write a report on heat pumps.'"
                              ", requested 'Write a report on wind power.'")


def test_a_miss_names_the_nearest_recording_and_shortens_long_values():
    long_task = "Assess " + "the draft carefully. " * 10
    replay = ReplayAnswers(Cassette([Exchange(request_key(ask()), said("A")),
                                     Exchange(request_key(ask("critic", long_task)), said("B"))]))
    with pytest.raises(ReplayMiss) as caught:
        replay(ask("critic", long_task.upper()))
    text = str(caught.value)
    assert "nearest recording #1 differs in messages[0].content" in text
    assert f"recorded {long_task[:60]!r}"[:-1] + "…'" in text
    with pytest.raises(ReplayMiss, match=r"#0 differs in max_tokens: recorded 800, requested 9"):
        replay({**ask(), "max_tokens": 9})
    with pytest.raises(ReplayMiss, match=r"differs in tools: recorded null, requested \[\{"):
        replay({**ask(), "tools": [{"name": "t", "input_schema": {"type": "object"}}]})
    with pytest.raises(ReplayMiss, match="has no exchanges"):
        ReplayAnswers(Cassette())(ask())


def test_a_recorded_tool_call_replays_with_its_input(tmp_path, replaying):
    tool = {"name": "submit_review", "description": "x", "input_schema": {
        "type": "object", "properties": {"quality_score": {"type": "number", "minimum": 0,
                                                           "maximum": 1},
                                         "feedback": {"type": "string"}},
        "required": ["quality_score", "feedback"]}}
    body = ask("critic", "Assess the draft.", tools=[tool],
               tool_choice={"type": "tool", "name": "submit_review"})
    path = tmp_path / "run.json"
    append_exchange(path, body, role_answer(body))
    with sdk(replaying(path)) as client, client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == role_answer(body)["content"][0]["input"]


def test_one_replay_server_per_process_and_file_shared_by_threads(tmp_path, replaying):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    append_exchange(one, ask(), said("one"))
    append_exchange(two, ask(), said("two"))
    seen: list[LocalMessagesServer] = []
    threads = [threading.Thread(target=lambda: seen.append(replaying(one))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(s) for s in seen}) == 1
    assert replaying(tmp_path / "." / "one.json") is seen[0]
    other = replaying(two)
    assert other is not seen[0] and other.port != seen[0].port
    with sdk(other) as client:
        assert client.messages.create(**ask()).content[0].text == "two"


def test_a_replay_server_for_a_junk_cassette_fails_at_once(tmp_path):
    path = tmp_path / "junk.json"
    path.write_text("{}")
    with pytest.raises(CassetteError, match=r"junk\.json"):
        replay_server(path)


def test_replay_answers_needs_a_cassette(tmp_path):
    with pytest.raises(CassetteError, match=r"Cassette\.load"):
        ReplayAnswers(str(tmp_path / "run.json"))  # type: ignore[arg-type]
