"""Deterministic answers shaped like each role's work, as Messages API Message dicts.

`role_answer` reads the role from the system prompt ("You are the writer of a governed
research workflow.") and the task from the last user message, and writes a short text
chosen by a `random.Random` seeded with a SHA-256 of model, system and messages: the
same request gets the same answer in any process. A forced tool call gets a
``tool_use`` block whose input fills the tool's JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Any

from ..errors import MeshflowError

__all__ = ["ROLES", "AnswerError", "bad_tool_answer", "count_usage", "prompt_chars",
           "prompt_text", "request_digest", "role_answer", "system_chars", "system_text"]

ROLES = ("researcher", "analyst", "writer", "critic", "publisher", "planner", "guardian")
CHARS_PER_TOKEN = 4
_ROLE_RE = re.compile(r"you are the ([^.\n]{1,60}?) of a governed research workflow", re.I)


class AnswerError(MeshflowError):
    """An answer function declines a request; the server sends it back as an API error
    with this ``status`` and ``error_type``, the message after ``prefix``."""

    status = 400
    error_type = "invalid_request_error"
    prefix = ""

    def api_message(self) -> str:
        """The ``error.message`` the client sees."""
        return f"{self.prefix}{self}"


# --- reading the request -----------------------------------------------------------


def system_text(body: dict[str, Any]) -> str:
    """The system prompt as one string: a plain string, or its text blocks joined."""
    return "\n".join(_texts(body.get("system")))


def prompt_text(body: dict[str, Any]) -> str:
    """All text of the system prompt and the messages, for matching a substring."""
    return "\n".join(_prompt_parts(body))


def system_chars(body: dict[str, Any]) -> int:
    """How many characters of text the system prompt has (its blocks' texts added up)."""
    return sum(len(t) for t in _texts(body.get("system")))


def prompt_chars(body: dict[str, Any]) -> int:
    """How many characters the input has: the texts of system and messages added up, and
    the tools as JSON."""
    tools = body.get("tools")
    return sum(len(t) for t in _prompt_parts(body)) + (len(json.dumps(tools)) if tools else 0)


def _prompt_parts(body: dict[str, Any]) -> list[str]:
    """The texts of the system prompt and of every message, in order."""
    parts = _texts(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            parts += _texts(message.get("content"))
    return parts


def _text_of(content: Any) -> str:
    """The texts of a content value as one string, a newline between blocks."""
    return "\n".join(_texts(content))


def _texts(content: Any) -> list[str]:
    """The texts in a content value: a string, or blocks (text, tool input, tool result)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            parts.append(json.dumps(block.get("input", {})))
        elif block.get("type") == "tool_result":
            parts += _texts(block.get("content"))
        elif isinstance(block.get("text"), str):
            parts.append(block["text"])
    return parts


def _task(body: dict[str, Any]) -> str:
    """The text of the last user message: the task this turn is about."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content")).strip()
    return ""


def _role(body: dict[str, Any]) -> str:
    """The role the system prompt names, or "" for one it does not."""
    found = _ROLE_RE.search(system_text(body))
    words = re.findall(r"[a-z]+", found.group(1).lower()) if found else []
    return next((w for w in words if w in ROLES), "")


def _rng(body: dict[str, Any]) -> random.Random:
    """A generator seeded by model, system and messages: same request, same answer."""
    seed = json.dumps([body.get("model"), body.get("system"), body.get("messages")],
                      sort_keys=True, default=str)
    return random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))


_ASK_RE = re.compile(
    r"^(?:task:\s*)?(?:please\s+)?(?:(?:write|draft|produce|prepare|research|analy[sz]e|assess"
    r"|revise|review|publish|plan|summari[sz]e|investigate|explore|check)\s+)?(?:(?:a|an|the)\s+)?"
    r"(?:(?:short|brief|concise)\s+)?(?:(?:report|draft|brief|article|summary|analysis|review"
    r"|plan|overview)\s+)?(?:(?:on|about|of|for)\s+)?", re.I)
"""The request around a subject: "Write a short report on ..." -> "..."."""


def _topic(task: str) -> str:
    """The subject on the task's first line, cut to about 70 characters on a word boundary."""
    first = next((ln.strip() for ln in task.splitlines() if ln.strip()), "")
    line = re.split(r": | using ", _ASK_RE.sub("", first, count=1), maxsplit=1)[0]
    line = line.rstrip(".!?:;") or first.rstrip(".!?:;") or "the task at hand"
    if len(line) > 70:
        line = line[:70].rsplit(" ", 1)[0] + "…"
    return line


def _is_revision(body: dict[str, Any]) -> bool:
    """Whether the messages show a revised draft (a critic then scores it higher)."""
    return "revision" in prompt_text({"messages": body.get("messages")}).lower()


def _asks_for_revision(task: str) -> bool:
    """Whether the task asks the writer to revise a draft after feedback."""
    return bool(re.search(r"\b(feedback|revise|revision)\b", task, re.I))


# --- the role texts ----------------------------------------------------------------

_FINDINGS = (
    "Recent work on {t} agrees on the main mechanism but disagrees on how large the "
    "effect is.",
    "Two independent surveys on {t} report similar adoption figures, about one in three.",
    "The strongest evidence on {t} comes from controlled studies, not from case reports.",
    "For {t}, costs fall mostly on set-up; running costs are small once it is in place.",
    "Experts warn that results on {t} depend heavily on the quality of the input data.",
    "Regulation touching {t} is still forming, and guidance differs between regions.",
    "Open questions on {t} remain about long-term effects and about scale.",
    "Practitioners get the best results on {t} when human review is part of the process.",
)
_ANALYSIS = {
    "Technical": (
        "The approach is feasible with current tools; the hard part is reliable data.",
        "Failure modes cluster around edge cases that the test sets rarely cover.",
        "Latency and throughput are adequate for batch use, tight for interactive use.",
        "Monitoring must be designed in from the start, not added later.",
        "The main technical risk is silent degradation when the inputs drift.",
        "Integration with existing systems is the largest single item of work.",
    ),
    "Business": (
        "The business case rests on saved staff time rather than on new revenue.",
        "Payback is plausible within two years if adoption reaches the surveyed rates.",
        "The main risk is reputational: a visible error costs more than the savings.",
        "Competitors are moving, so waiting carries a cost of its own.",
        "A staged roll-out keeps the investment small until the value is shown.",
        "Training and change management cost more than the technology itself.",
    ),
}
_SECTIONS = (
    "The evidence is consistent on the main point, though estimates of size vary.",
    "Costs are front-loaded; the benefits grow as the practice matures.",
    "Human review remains essential where errors are costly or hard to see.",
    "Regulation is still forming, so flexible designs age better than rigid ones.",
    "A small pilot with clear measures is the safest way to start.",
    "Results depend heavily on the quality of the data that goes in.",
    "Adoption is uneven: early users report gains, late ones mostly report costs.",
)
_REVIEW_FIRST = (
    "The draft covers the main points but needs concrete evidence for its central claim.",
    "The structure is clear, but the recommendations are too vague to act on.",
    "A good summary, but the risks section is thin and the sources are not named.",
)
_REVIEW_REVISED = (
    "The revision addresses the earlier feedback; the argument is now well supported.",
    "Clear and well structured; the revised recommendations are concrete. Minor polish only.",
)
_STRENGTHS = ("a clear structure", "a readable summary", "a sensible order of sections",
              "recommendations that follow from the findings")
_LOCAL = "This answer comes from a local fake server, not from a real model."


def _researcher(topic: str, rng: random.Random) -> str:
    """A research brief: scope, five numbered findings, confidence."""
    findings = rng.sample(_FINDINGS, 5)
    lines = [f"{i}. {f.format(t=topic)}" for i, f in enumerate(findings, 1)]
    return (f"Research brief: {topic}\n\nScope: what is known about {topic}, what is "
            "disputed, and where the evidence is thin.\n\nKey findings:\n" + "\n".join(lines)
            + f"\n\nConfidence: {rng.choice(('moderate', 'fair', 'good'))}. Sources to check "
              "before publication: recent surveys, controlled studies and official guidance.")


def _analyst(topic: str, rng: random.Random, system: str) -> str:
    """An analysis from the technical or business angle the system prompt asks for."""
    lowered = system.lower()
    angle = ("Technical" if "technical" in lowered else "Business" if "business" in lowered
             else rng.choice(("Technical", "Business")))
    points = rng.sample(_ANALYSIS[angle], 4)
    verdict = rng.choice(("promising", "viable", "worth a pilot"))
    return (f"{angle} analysis: {topic}\n\nThis analysis reads the research brief from the "
            f"{angle.lower()} side and weighs what matters most for a decision.\n\n"
            + "\n".join(f"- {p}" for p in points)
            + f"\n\nOverall assessment: {verdict}, provided the risks above are managed "
              "explicitly and progress is measured against a baseline agreed in advance.")


def _writer(topic: str, rng: random.Random, revising: bool) -> str:
    """A Markdown draft with sections; a revision adds what changed."""
    body = rng.sample(_SECTIONS, 5)
    text = (f"# {topic[:1].upper()}{topic[1:]}\n\n## Summary\n\n{body[0]} {body[1]}\n\n"
            f"## Findings\n\n{body[2]} {body[3]}\n\n## Risks\n\n{body[4]} Errors that "
            "are hard to see are the costliest ones.\n\n## Recommendations\n\n"
            "Start with a small pilot, measure the outcome against a baseline, and keep a "
            "human in the loop until the results are stable.")
    if revising:
        text += ("\n\n## Changes in revision\n\nAdded evidence for the central claim and "
                 "made the recommendations concrete, as the review asked.")
    return text


def _critic(body: dict[str, Any], rng: random.Random) -> str:
    """A review in prose: strengths, feedback, what to improve, a score."""
    score = _score(body, rng)
    strengths = rng.sample(_STRENGTHS, 2)
    return (f"Review of the draft\n\nStrengths: {strengths[0]} and {strengths[1]}.\n\n"
            f"Feedback: {_feedback(body, rng)}\n\nTo improve: name the sources behind each "
            "finding, quantify the main claim where the evidence allows it, and say who "
            "should act on each recommendation and by when.\n\n"
            f"Quality score: {score:.2f}")


def _publisher(topic: str, rng: random.Random) -> str:
    """The line that says where the approved draft was published, and how."""
    channel = rng.choice(("the course site", "the team wiki", "the project report"))
    return (f"Published '{topic}' to {channel}.\n\nThe approved draft was formatted, its "
            "headings and links were checked, and it was released together with its review "
            "record and the approvals it received. Readers can find the sources in the "
            "research brief attached to the same entry. No changes were made to the approved "
            "text apart from formatting.")


def _planner(topic: str, rng: random.Random) -> str:
    """A numbered plan of the workflow's steps for the task."""
    steps = ("Gather sources and recent evidence on the subject",
             "Analyse them from a technical and a business angle",
             "Write a short draft with findings, risks and recommendations",
             "Review the draft against the quality threshold and revise it",
             "Check the result against policy, then publish the approved version")
    return (f"Plan for: {topic}\n\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
            + "\n\nEach step passes its output to the next; a human approves before "
              "publication, and the loop of review and revision stops at the threshold "
              "or after three rounds.")


def _guardian(topic: str, rng: random.Random) -> str:
    """A policy check that finds nothing to escalate."""
    return (f"Guardian check: {topic}\n\nChecked for personal data, secrets, unsafe "
            "instructions and claims presented without a source. None found: the content "
            "stays within the workflow's policy and no escalation is needed. The check covers "
            "the text as given; attached files and links were not opened.")


def _generic(topic: str, rng: random.Random) -> str:
    """An answer for a role the system prompt does not name."""
    points = rng.sample(_SECTIONS, 3)
    return f"Response: {topic}\n\n" + " ".join(points) + f"\n\n{_LOCAL}"


def _role_text(body: dict[str, Any]) -> str:
    """The text the role named in the system prompt would write for the task."""
    rng, task, role = _rng(body), _task(body), _role(body)
    topic = _topic(task)
    if role == "writer":
        return _writer(topic, rng, _asks_for_revision(task))
    if role == "analyst":
        return _analyst(topic, rng, system_text(body))
    if role == "critic":
        return _critic(body, rng)
    writers = {"researcher": _researcher, "publisher": _publisher, "planner": _planner,
               "guardian": _guardian}
    return writers.get(role, _generic)(topic, rng)


def _score(body: dict[str, Any], rng: random.Random) -> float:
    """A critic's score: 0.55-0.75 for a first draft, 0.82-0.93 for a revision."""
    low, high = (0.82, 0.93) if _is_revision(body) else (0.55, 0.75)
    return round(low + rng.random() * (high - low), 2)


def _feedback(body: dict[str, Any], rng: random.Random) -> str:
    """A sentence or two of review, kinder to a revision."""
    return rng.choice(_REVIEW_REVISED if _is_revision(body) else _REVIEW_FIRST)


# --- tool calls --------------------------------------------------------------------


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the model calls: the one ``tool_choice`` of type ``tool`` (by name) or
    ``any`` forces, or, under ``auto``, one the prompt asks for by name (as a model on
    which forced tool choice is refused is asked to in words)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    if choice.get("type") == "any":
        return tools[0]
    asked = prompt_text(body)
    if choice.get("type") == "auto":
        return next((t for t in tools if f"calling the {t.get('name')} tool" in asked), None)
    return None


def _fill(schema: dict[str, Any], name: str, body: dict[str, Any], rng: random.Random) -> Any:
    """A value that satisfies one JSON Schema (object, number, string, enum, ...)."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "string")
    if kind == "object":
        return {key: _fill(sub, key, body, rng)
                for key, sub in (schema.get("properties") or {}).items()}
    if kind in ("number", "integer"):
        return _fill_number(schema, name, body, rng)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_fill(schema.get("items") or {}, name, body, rng) for _ in range(2)]
    if name == "feedback":
        return _feedback(body, rng)
    return f"{name.replace('_', ' ')} for {_topic(_task(body))}"


def _fill_number(schema: dict[str, Any], name: str, body: dict[str, Any],
                 rng: random.Random) -> float | int:
    """A number within ``minimum``/``maximum``; a 0..1 score is the critic's score."""
    low, high = schema.get("minimum", 0), schema.get("maximum")
    if high is None:
        high = low + 100
    if schema.get("type") == "integer":
        return rng.randint(math.ceil(low), math.floor(high))
    if name.endswith("score") and low >= 0 and high <= 1:
        return min(max(_score(body, rng), low), high)
    return round(low + rng.random() * (high - low), 2)


def _tool_block(body: dict[str, Any], tool: dict[str, Any], tool_input: Any) -> dict[str, Any]:
    """A ``tool_use`` block with a deterministic id."""
    return {"type": "tool_use", "id": f"toolu_{request_digest(body)}", "name": tool.get("name"),
            "input": tool_input}


def bad_tool_answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """A tool call whose input breaks the tool's schema (a string for a number, the last
    required key missing), or None when the request offers no tool."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    tool = _forced_tool(body) or (tools[0] if tools else None)
    if tool is None:
        return None
    schema = tool.get("input_schema") or {}
    wrong = {"number": "not a number", "integer": "seven", "string": 42, "boolean": "yes",
             "array": "not a list", "object": "not an object"}
    bad = {key: wrong.get(sub.get("type"))
           for key, sub in (schema.get("properties") or {}).items()}
    for key in (schema.get("required") or [])[-1:]:
        bad.pop(key, None)
    return _message(body, [_tool_block(body, tool, bad)], "tool_use")


# --- the message -------------------------------------------------------------------


def role_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Message a model playing the system prompt's role would send for ``body``."""
    tool = _forced_tool(body)
    if tool is not None:
        tool_input = _fill(tool.get("input_schema") or {"type": "object"}, "", body,
                           _rng(body))
        return _message(body, [_tool_block(body, tool, tool_input)], "tool_use")
    text, stop = _role_text(body), "end_turn"
    limit = int(body.get("max_tokens") or 0) * CHARS_PER_TOKEN
    if limit and len(text) > limit:
        text, stop = text[:limit], "max_tokens"
    return _message(body, [{"type": "text", "text": text}], stop)


def _message(body: dict[str, Any], content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    """A complete Message dict with a deterministic id and usage counted from characters."""
    return {"id": f"msg_{request_digest(body)}", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": content, "stop_reason": stop,
            "stop_sequence": None, "usage": count_usage(body, content)}


def count_usage(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens as characters / 4, rounded up: the prompt in, the text or tool JSON out."""
    out = sum(len(b.get("text", "")) if b.get("type") == "text"
              else len(json.dumps(b.get("input", {}))) for b in content)
    return {"input_tokens": _tokens(prompt_chars(body)), "output_tokens": _tokens(out),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def _tokens(chars: int) -> int:
    """Characters as tokens, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def request_digest(body: dict[str, Any]) -> str:
    """24 hex digits of a SHA-256 of what makes a request what it is (not ``stream``):
    the same request gets the same message and tool ids, streamed or not."""
    fields = ("model", "system", "messages", "tools", "tool_choice", "max_tokens")
    text = json.dumps([body.get(f) for f in fields], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
