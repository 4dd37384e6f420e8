"""A local stand-in for the Anthropic Messages API, for tests and offline lessons.

`LocalMessagesServer` listens on 127.0.0.1 and answers the real ``anthropic`` SDK over
real HTTP (``base_url=server.url``): JSON and streamed messages shaped like each role's
work, the API's errors, and `Fault`s injected on purpose. A `Cassette` holds recorded
exchanges that `ReplayAnswers` (or `replay_server`) serves back. Standard library only.
"""

from __future__ import annotations

from .answers import ROLES, AnswerError, role_answer
from .cassette import (
    CASSETTE_FORMAT,
    DEFAULT_RECORDED_AGAINST,
    Cassette,
    CassetteError,
    Exchange,
    ReplayAnswers,
    ReplayMiss,
    append_exchange,
    replay_server,
    request_key,
)
from .faults import FAULT_KINDS, Fault, closed_port
from .server import LocalApiError, LocalMessagesServer
from .sse import decode_events, encode_event, message_events

__all__ = [
    "CASSETTE_FORMAT",
    "DEFAULT_RECORDED_AGAINST",
    "FAULT_KINDS",
    "ROLES",
    "AnswerError",
    "Cassette",
    "CassetteError",
    "Exchange",
    "Fault",
    "LocalApiError",
    "LocalMessagesServer",
    "ReplayAnswers",
    "ReplayMiss",
    "append_exchange",
    "closed_port",
    "decode_events",
    "encode_event",
    "message_events",
    "replay_server",
    "request_key",
    "role_answer",
]
