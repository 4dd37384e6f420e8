"""Server-sent events of the Messages API: a Message dict as the stream of events the
real API sends for ``"stream": true``, and their wire format.

The order is the real one: ``message_start``, ``ping``, per content block a start, its
deltas and a stop, then ``message_delta`` (stop reason, output tokens) and
``message_stop``. Streaming the events of a message and accumulating them (as the SDK
does) gives the same message back.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["decode_events", "encode_event", "error_event", "message_events"]

WORDS_PER_DELTA = 4
"""How many words one ``text_delta`` carries."""

JSON_CHARS_PER_DELTA = 24
"""How many characters of tool input one ``input_json_delta`` carries."""

Event = tuple[str, dict[str, Any]]


def message_events(message: dict[str, Any], *, partial_blocks: int | None = None) -> list[Event]:
    """The events that stream ``message``; with ``partial_blocks``, only the first deltas
    of the first block (what a stream that breaks off has sent)."""
    events: list[Event] = [("message_start", _message_start(message)), ("ping", {"type": "ping"})]
    for index, block in enumerate(message.get("content") or []):
        deltas = _deltas(block)
        if partial_blocks is not None:
            return [*events, _block_start(index, block),
                    *[_delta(index, d) for d in deltas[:partial_blocks]]]
        events += [_block_start(index, block), *[_delta(index, d) for d in deltas],
                   ("content_block_stop", {"type": "content_block_stop", "index": index})]
    return [*events, _message_delta(message), ("message_stop", {"type": "message_stop"})]


def error_event(error_type: str, message: str) -> Event:
    """The ``error`` event the API sends when a stream fails after it started."""
    return "error", {"type": "error", "error": {"type": error_type, "message": message}}


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """One event on the wire: ``event:`` and ``data:`` lines and a blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def decode_events(text: str) -> list[Event]:
    """The (event, data) pairs of an event stream (for tests and for reading a capture)."""
    events = []
    for chunk in re.split(r"\r?\n\r?\n", text):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data") or "{}")))
    return events


def _message_start(message: dict[str, Any]) -> dict[str, Any]:
    """The message as it starts: no content, no stop reason, one output token so far."""
    usage = {**message.get("usage", {}), "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": usage}
    return {"type": "message_start", "message": start}


def _block_start(index: int, block: dict[str, Any]) -> Event:
    """A block as it starts: empty text, or a tool call with empty input."""
    if block.get("type") == "text":
        empty = {**block, "text": ""}
    elif block.get("type") == "tool_use":
        empty = {**block, "input": {}}
    else:
        empty = block
    return "content_block_start", {"type": "content_block_start", "index": index,
                                   "content_block": empty}


def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A block's content cut into deltas: a few words of text, or pieces of the JSON input."""
    if block.get("type") == "text":
        return [{"type": "text_delta", "text": piece} for piece in _word_chunks(block["text"])]
    if block.get("type") == "tool_use":
        raw = json.dumps(block.get("input", {}))
        pieces = [raw[i:i + JSON_CHARS_PER_DELTA] for i in range(0, len(raw),
                                                                   JSON_CHARS_PER_DELTA)]
        return [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    return []


def _delta(index: int, delta: dict[str, Any]) -> Event:
    """One ``content_block_delta`` event."""
    return "content_block_delta", {"type": "content_block_delta", "index": index,
                                   "delta": delta}


def _word_chunks(text: str) -> list[str]:
    """``text`` as pieces of a few words each, whose concatenation is exactly ``text``."""
    words = [w for w in re.split(r"(?<=\s)(?=\S)", text) if w]
    return ["".join(words[i:i + WORDS_PER_DELTA])
            for i in range(0, len(words), WORDS_PER_DELTA)] or [""]


def _message_delta(message: dict[str, Any]) -> Event:
    """The closing facts: why the message stopped and its output tokens in all."""
    output = message.get("usage", {}).get("output_tokens", 0)
    return "message_delta", {"type": "message_delta",
                             "delta": {"stop_reason": message.get("stop_reason"),
                                       "stop_sequence": message.get("stop_sequence")},
                             "usage": {"output_tokens": output}}
