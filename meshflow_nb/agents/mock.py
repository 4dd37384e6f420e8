"""Deterministic mock agents, so every lesson runs offline with ``MESHFLOW_MOCK=1``.

A `MockAgent` writes text shaped like its role's work on ``ctx.task`` from template
fragments, and reports tokens, cost, uncertainty and latency like a real LLM call.
Every choice comes from a `random.Random` seeded with a SHA-256 of the seed, node,
task, iteration and inputs, so the same run gives the same output in any process.
`MockCritic` reviews the draft, exports ``quality_score`` and ``feedback`` and passes
the draft on. Environment: MESHFLOW_MOCK, MESHFLOW_MOCK_SEED, MESHFLOW_MOCK_LATENCY.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..model.roles import Role
from .base import AgentResult, NodeContext
from .pricing import DEFAULT_MODEL, cost_usd
from .prompts import role_kind

MOCK_VAR = "MESHFLOW_MOCK"
SEED_VAR = "MESHFLOW_MOCK_SEED"
LATENCY_VAR = "MESHFLOW_MOCK_LATENCY"
DEFAULT_SEED = 16
DEFAULT_LATENCY_S = 0.08
DEFAULT_THRESHOLD = 0.8

_TRUTHY = {"1", "true", "yes", "on"}
_CHARS_PER_TOKEN = 4
_OUTPUT_SCALE = 3
"""Real calls write (and think) more than these short texts; scales tokens_out."""


# --- environment -------------------------------------------------------------------


def _env_value(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def mock_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when MESHFLOW_MOCK is 1, true, yes or on (any case)."""
    return (_env_value(MOCK_VAR, environ) or "").lower() in _TRUTHY


def mock_seed(environ: Mapping[str, str] | None = None) -> int:
    """MESHFLOW_MOCK_SEED as an integer (default 16)."""
    raw = _env_value(SEED_VAR, environ)
    if raw is None:
        return DEFAULT_SEED
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{SEED_VAR} must be an integer, got {raw!r}") from None


def mock_latency_s(environ: Mapping[str, str] | None = None) -> float:
    """MESHFLOW_MOCK_LATENCY in seconds (default 0.08); each role scales it."""
    raw = _env_value(LATENCY_VAR, environ)
    if raw is None:
        return DEFAULT_LATENCY_S
    try:
        latency = float(raw)
    except ValueError:
        latency = math.nan
    if not (math.isfinite(latency) and latency >= 0):
        raise ConfigError(
            f"{LATENCY_VAR} must be a number of seconds >= 0 (0 = no delay), got {raw!r}"
        )
    return latency


# --- reading the context -----------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _upstream(ctx: NodeContext) -> list[tuple[str, str]]:
    """(node id, text) of each input, leaving out the loop feedback."""
    return [
        (node_id, _as_text(value))
        for node_id, value in ctx.inputs.items()
        if ctx.feedback is None or value != ctx.feedback
    ]


def _prompt_chars(ctx: NodeContext) -> int:
    texts = [ctx.task] + [text for _, text in _upstream(ctx)]
    if ctx.feedback is not None:
        texts.append(_as_text(ctx.feedback))
    return sum(len(text) for text in texts)


_LEAD_IN = re.compile(  # "Assess the ...", "Write a brief on the ..."
    r"^(?:please\s+)?(?:research|analy[sz]e|assess|evaluate|investigate|explore|"
    r"summari[sz]e|explain|review|compare|describe|write|draft|produce|prepare)\s+"
    r"(?:(?:a|an|the)\s+(?:short\s+)?(?:report|brief|briefing|summary|article|"
    r"overview|note)\s+(?:on|about|of)\s+)?",
    re.IGNORECASE,
)
_FOLLOW_ON = re.compile(  # "... and produce a publishable brief"
    r"\s+(?:and|then)\s+(?:produce|write|draft|prepare|publish|create)\b.*$",
    re.IGNORECASE,
)


def _subject(task: str) -> str:
    """The topic of a task: "Assess X and write a brief." -> "X"."""
    sentence = re.split(r"(?<=[.!?])\s", task.strip(), maxsplit=1)[0]
    subject = _FOLLOW_ON.sub("", _LEAD_IN.sub("", sentence)).rstrip(".!? ")
    return _clip(subject or task.strip() or "the task", 12)


def _title(task: str) -> str:
    subject = _subject(task)
    return subject[:1].upper() + subject[1:]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _end_sentence(text: str) -> str:
    return text if text.endswith(("…", ".", "!", "?")) else text + "."


def _clip(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + "…"


_LIST_ITEM = re.compile(r"\s*(?:[-*]|\d+\.)\s+(.+)")


def _points(text: str) -> list[str]:
    """The items of a text's first list (or its first sentence), clipped for quoting."""
    items: list[str] = []
    for line in text.splitlines():
        match = _LIST_ITEM.match(line)
        if match:
            items.append(match.group(1))
        elif items:
            break
    items = items or [text.strip().split(". ")[0]]
    return [_clip(item.rstrip("."), 18) for item in items]


def _heading(text: str) -> str | None:
    match = re.search(r"^# (.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _find_draft(ctx: NodeContext) -> str | None:
    """The latest upstream text that looks like a draft (has a '# ' title)."""
    candidates = [text for _, text in _upstream(ctx)]
    candidates += [_as_text(value) for value in reversed(list(ctx.outputs.values()))]
    return next((text for text in candidates if _heading(text)), None)


def _analysis_label(node_id: str, text: str) -> str:
    """'technical analysis' from a 'Technical analysis: ...' first line, else node id."""
    match = re.match(r"\s*([\w -]{1,40}?) analysis\b", text, re.IGNORECASE)
    return f"{match.group(1).lower()} analysis" if match else f"{node_id} input"


# --- template helpers --------------------------------------------------------------


def _pick(rng: random.Random, options: Sequence[str], **fields: str) -> str:
    return rng.choice(options).format(**fields)


def _pick_many(rng: random.Random, options: Sequence[str], count: int, **fields: str) -> list[str]:
    return [option.format(**fields) for option in rng.sample(options, count)]


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{n}. {line}" for n, line in enumerate(lines, start=1))


def _in_band(band: tuple[float, float], position: float) -> float:
    """The point at ``position`` (0..1) between a band's low and high ends."""
    low, high = band
    return round(low + (high - low) * position, 3)


@dataclass
class _Work:
    """What a composer produces: text, uncertainty, variables and (if not the text) output."""

    text: str
    uncertainty: float
    variables: dict[str, Any]
    output: Any = None


# --- researcher --------------------------------------------------------------------

_FINDINGS = (
    "Most published material on {subject} is recent and comes from practitioners; "
    "independent evaluations are still scarce.",
    "Reported results vary widely, mostly with scale, input quality and how success is measured.",
    "The same three constraints recur across sources: integration effort, operating "
    "cost and the skills needed to run it.",
    "Early adopters report clear gains in narrow, well-defined uses and weaker "
    "results in broader ones.",
    "Regulation and governance questions are unsettled and differ by jurisdiction.",
    "Ongoing operation, not the initial build, dominates total cost in most of the "
    "cases described.",
    "Sources disagree on timelines: vendor estimates run well ahead of independent forecasts.",
)
_SOURCES = (
    "peer-reviewed studies from the last three years",
    "industry analyst reports (check who funded them)",
    "vendor documentation and public pricing pages",
    "case studies from teams running it in production",
    "official statistics and regulator guidance",
    "practitioner post-mortems and incident reports",
)
_OPEN_QUESTIONS = {
    "How much of the reported benefit survives outside pilot conditions?": (
        "Partly: the benefits hold in narrow uses, and a staged rollout is how to measure the rest."
    ),
    "Which costs are missing from the published figures?": (
        "Mostly operational ones (monitoring, upkeep, training), so the "
        "recommendation budgets for them."
    ),
    "What would change the recommendation within the next 12 months?": (
        "Independent results from production use; the review point is set to catch them."
    ),
}
_GENERIC_ANSWER = "The evidence gives a partial answer; a staged rollout can settle it."


def _compose_research(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    subject = _subject(ctx.task)
    return "\n".join(
        [
            f"Research brief: {subject}",
            "",
            "Key findings:",
            _numbered(_pick_many(rng, _FINDINGS, 3, subject=subject)),
            "",
            "Sources to check:",
            _bullets(_pick_many(rng, _SOURCES, 3)),
            "",
            f"Open question: {rng.choice(list(_OPEN_QUESTIONS))}",
        ]
    )


# --- analysts ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Angle:
    """Template fragments for one analysis angle."""

    points: tuple[str, ...]
    risks: tuple[str, ...]
    recommendations: tuple[str, ...]


_ANGLES = {
    "technical": _Angle(
        points=(
            "Feasibility: the core technology works in controlled settings; the hard "
            "part is integrating it with existing systems and processes.",
            "Scalability: results hold at pilot scale, but the sources say little "
            "about volume production or full load.",
            "Reliability: failure modes need monitoring and a fallback path before "
            "anything customer-facing depends on it.",
            "Inputs: results depend heavily on input quality, so the supply chain "
            "deserves as much attention as the core technology.",
            "Safety: each new integration widens the risk surface; controls and "
            "audit trails are needed from day one.",
            "Maintainability: upkeep (updates, testing, degradation checks) is the "
            "cost most plans underestimate.",
        ),
        risks=(
            "the integration work is larger than the pilot suggests",
            "performance degrades silently unless testing is in place",
        ),
        recommendations=(
            "run a time-boxed pilot with explicit success metrics",
            "build testing and monitoring in before scaling up",
        ),
    ),
    "business": _Angle(
        points=(
            "Value: the clearest returns are in narrow uses where the savings can be measured.",
            "Cost: operating cost, not build cost, decides the business case, so "
            "budget for it explicitly.",
            "Market: competitors are experimenting, so waiting has a cost, but being "
            "first brings little advantage on its own.",
            "People: adoption depends on training and changed workflows, not just on "
            "buying the technology.",
            "Reputation: visible mistakes cost more trust than they cost money.",
            "Timing: a staged rollout lets the organisation stop early if the numbers "
            "do not hold up.",
        ),
        risks=(
            "vendor case studies overstate the benefits",
            "hidden operating costs erode the return after the first year",
        ),
        recommendations=(
            "fund a staged rollout tied to measured savings",
            "start where the value is easiest to measure",
        ),
    ),
}
_OTHER_ANGLE = _Angle(
    points=(
        "The {angle} picture turns mainly on the constraints the research identified.",
        "Evidence from the {angle} side is thinner than for the headline claims.",
        "The {angle} assessment should be repeated once pilot data is available.",
        "Stakeholders on the {angle} side have not yet been consulted.",
    ),
    risks=("the {angle} impact is judged on too little evidence",),
    recommendations=("collect {angle} evidence during a small pilot",),
)


def _compose_analysis(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    angle = angle or "general"
    template = _ANGLES.get(angle.lower(), _OTHER_ANGLE)
    upstream = _upstream(ctx)
    if upstream:
        node_id, text = upstream[0]
        quote = rng.choice(_points(text))
        basis = f'Building on the {node_id}\'s findings, notably "{quote}":'
    else:
        basis = "No upstream findings were provided, so this rests on the task alone:"
    return "\n".join(
        [
            f"{angle.capitalize()} analysis: {_subject(ctx.task)}",
            "",
            basis,
            _bullets(_pick_many(rng, template.points, 3, angle=angle)),
            "",
            f"Main risk: {_pick(rng, template.risks, angle=angle)}.",
            f"Recommendation: {_pick(rng, template.recommendations, angle=angle)}.",
        ]
    )


# --- critic's rubric (also read by the writer when revising) -----------------------


@dataclass(frozen=True)
class _Criterion:
    """One rubric line: how the critic judges it and how the writer answers it."""

    name: str
    weak: str
    strong: str
    request: str
    """Feedback when this line holds the draft back."""
    polish: str
    """Optional suggestion when the draft passes."""
    fix: str
    """The writer's note once it has acted on the request."""


_RUBRIC = (
    _Criterion(
        "coverage",
        weak="leaves the researcher's open question unanswered",
        strong="covers both analyses and the open question",
        request="answer the researcher's open question directly; the draft "
        "currently leaves it out.",
        polish="one sentence on what would change the recommendation would help.",
        fix="Coverage: added a section answering the researcher's open question.",
    ),
    _Criterion(
        "evidence",
        weak="key claims are not tied to sources",
        strong="claims are traceable to the research",
        request="tie each key claim to one of the researcher's sources to check; "
        "the recommendation rests on assertion.",
        polish="name the strongest source next to the headline claim.",
        fix="Evidence: added a section tying the claims to the research sources.",
    ),
    _Criterion(
        "clarity",
        weak="the opening is dense for a non-specialist",
        strong="plain, readable language",
        request="rewrite the opening in plain language for a non-specialist.",
        polish="a few long sentences could be split.",
        fix="Clarity: rewrote the opening in plain language.",
    ),
    _Criterion(
        "structure",
        weak="the recommendation is buried at the end",
        strong="clear sections; the recommendation is easy to find",
        request="lead with the recommendation and keep the analysis below it.",
        polish="the section headings could be more specific.",
        fix="Structure: moved the recommendation to the top.",
    ),
)


# --- writer ------------------------------------------------------------------------

_OPENINGS = (
    "This brief brings together the {labels} on {subject}.",
    "What follows combines the {labels} into one view of {subject}.",
    "The {labels} agree more than they differ on {subject}; this draft sets out where.",
)
_PLAIN_OPENINGS = (
    "In short: {subject} is worth pursuing, but in small, measured steps.",
    "The short version: the opportunity in {subject} is real, and so are the costs.",
)
_AGREEMENTS = (
    "Both analyses point to integration and operating cost as the deciding factors, "
    "and both warn that pilot results may not carry over to production.",
    "The analyses agree that the value is real but narrow: clearest in well-defined "
    "uses, least certain where quality is hard to measure.",
    "Both views converge on a staged approach: prove value on a small scope, put "
    "measurement in place, then decide whether to scale.",
)
_RECOMMENDATIONS = (
    "Proceed with a time-boxed pilot, judged against the costs and risks both analyses raise.",
    "Approve a limited rollout with a review point after the first quarter of measured results.",
    "Invest first in testing and monitoring, then expand where the numbers hold.",
)
_EVIDENCE_NOTES = (
    "Cost and adoption claims now cite the case studies and analyst reports from "
    "the research brief; vendor figures are marked as such.",
    "Each finding above now names its source from the research brief, and claims "
    "that rest on a single source are flagged.",
)


def _requests_in(feedback: Any) -> str:
    """The requests in a review (its "Feedback" part if it has one)."""
    text = _as_text(feedback)
    part = re.search(r"^Feedback.*?$(.*?)(?:^Verdict|\Z)", text, re.M | re.S)
    return part.group(1) if part else text


def _is_revision(ctx: NodeContext) -> bool:
    return ctx.iteration > 1 or ctx.feedback is not None


def _critic_feedback(ctx: NodeContext) -> str:
    """On a revision: the critic's exported ``feedback``, else the loop's feedback."""
    if not _is_revision(ctx):
        return ""
    exported = ctx.variables.get("feedback")
    if isinstance(exported, str) and exported:
        return exported
    return "" if ctx.feedback is None else _requests_in(ctx.feedback)


def _flagged(feedback: str) -> list[_Criterion]:
    """The rubric lines the critic's feedback asks the writer to fix."""
    return [c for c in _RUBRIC if re.search(rf"\b{c.name}\b", feedback, re.I)]


def _answer_open_question(ctx: NodeContext) -> str:
    """The researcher's open question (found in the run's outputs) and an answer."""
    for value in ctx.outputs.values():
        match = re.search(r"^Open question: (.+)$", _as_text(value), re.MULTILINE)
        if match:
            question = match.group(1).strip()
            return f"{question} {_OPEN_QUESTIONS.get(question, _GENERIC_ANSWER)}"
    return _GENERIC_ANSWER


def _change_notes(ctx: NodeContext, feedback: str, flagged: list[_Criterion]) -> str:
    """What the revision changed, one line per flagged criterion."""
    score = ctx.variables.get("quality_score")
    scored = f" (scored {score:.2f})" if isinstance(score, (int, float)) else ""
    if flagged:
        notes = [criterion.fix for criterion in flagged]
    elif feedback:
        notes = [f'Reworked the draft to address the review: "{_points(feedback)[0]}"']
    else:
        notes = ["Tightened the wording and rechecked every claim."]
    return f"In response to the quality review{scored}:\n{_bullets(notes)}"


def _analyses(ctx: NodeContext) -> list[tuple[str, str]]:
    """(label, text) of each upstream analysis, e.g. ("technical analysis", ...)."""
    return [(_analysis_label(node, text), text) for node, text in _upstream(ctx)]


def _draft_sections(
    ctx: NodeContext, rng: random.Random, flagged: set[str]
) -> list[tuple[str, str]]:
    """(heading, body) pairs; the critic's flagged criteria add or move sections."""
    found = [
        _end_sentence(f"The {label} stresses {_lower_first(_points(text)[0])}")
        for label, text in _analyses(ctx)
    ]
    sections = [
        ("What the analyses found", _bullets(found or ["No analyses were provided."])),
        ("Where they agree", rng.choice(_AGREEMENTS)),
    ]
    if "coverage" in flagged:
        sections.append(("Open question", _answer_open_question(ctx)))
    if "evidence" in flagged:
        sections.append(("Evidence", rng.choice(_EVIDENCE_NOTES)))
    recommendation = ("Recommendation", rng.choice(_RECOMMENDATIONS))
    at = 0 if "structure" in flagged else len(sections)
    return [*sections[:at], recommendation, *sections[at:]]


LESSONS_HEADING = "Lessons from earlier runs"
"""The section a first draft adds when it acted on lessons; the mock critic looks for it."""


def _learned(ctx: NodeContext) -> list[_Criterion]:
    """Rubric lines that reviewers asked about on similar tasks (``ctx.lessons``)."""
    return _flagged(" ".join(ctx.lessons)) if not _is_revision(ctx) else []


def _compose_draft(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    """A titled draft from the analyses; it acts on the critic's feedback and on lessons."""
    feedback = _critic_feedback(ctx)
    flagged = _flagged(feedback)
    learned = _learned(ctx)
    names = {criterion.name for criterion in [*flagged, *learned]}
    sections = _draft_sections(ctx, rng, names)
    if learned:
        sections.append((LESSONS_HEADING, _bullets([c.fix for c in learned])))
    if _is_revision(ctx):
        notes = _change_notes(ctx, feedback, flagged)
        sections.append((f"Changes in revision {ctx.iteration}", notes))
    labels = " and the ".join(label for label, _ in _analyses(ctx)) or "notes"
    openings = _PLAIN_OPENINGS if "clarity" in names else _OPENINGS
    opening = _pick(rng, openings, labels=labels, subject=_subject(ctx.task))
    blocks = [f"# {_title(ctx.task)}", opening]
    return "\n\n".join(blocks + [f"## {head}\n{body}" for head, body in sections])


# --- publisher, planner, guardian, others ------------------------------------------

_CHANNELS = ("the team knowledge base", "the research newsletter", "the internal wiki")


def _compose_publication(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    draft = _find_draft(ctx)
    title = _heading(draft) if draft else _title(ctx.task)
    words = len(draft.split()) if draft else 0
    score = ctx.variables.get("quality_score")
    scored = f", quality score {score:.2f}" if isinstance(score, (int, float)) else ""
    publication_id = f"pub-{rng.getrandbits(32):08x}"
    return (
        f'Published "{title}" to {rng.choice(_CHANNELS)} as {publication_id}.\n'
        f"Summary: a {words}-word brief on {_subject(ctx.task)}{scored}."
    )


_PLAN_STEPS = (
    ("Gather the key facts and sources", "Collect evidence and list sources"),
    (
        "Analyse from a technical and a business angle in parallel",
        "Split the analysis into technical and business branches",
    ),
    ("Draft a synthesis of both analyses", "Write one draft that combines the views"),
    ("Review the draft against the rubric", "Score the draft and revise below 0.8"),
    ("Get human approval, then publish", "Publish only after a human signs off"),
)


def _compose_plan(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    steps = [rng.choice(variants) + "." for variants in _PLAN_STEPS]
    return f"Plan: {_subject(ctx.task)}\n{_numbered(steps)}"


_SCREEN_NOTES = (
    "no personal data found",
    "no prohibited content found",
    "claims are framed as findings, not guarantees",
    "no credentials or secrets in the text",
)


def _compose_screen(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    screened = ", ".join(node for node, _ in _upstream(ctx)) or "the task"
    header = f"Guardian screen of {screened} on {_subject(ctx.task)}: no blocking issues."
    return header + "\n" + _bullets(_pick_many(rng, _SCREEN_NOTES, 2))


_REVIEW_NOTES = (
    "approved as written",
    "approved; keep the sources list with the published version",
    "approved, with a note to revisit the figures next quarter",
)


def _compose_note(ctx: NodeContext, rng: random.Random, angle: str | None) -> str:
    count = len(_upstream(ctx))
    return (
        f"Reviewed {count} upstream output(s) on {_subject(ctx.task)}: {rng.choice(_REVIEW_NOTES)}."
    )


# --- critic ------------------------------------------------------------------------


def _default_score(iteration: int, rng: random.Random, applied_lessons: bool = False) -> float:
    """A first draft scores 0.55-0.75; one that applied lessons, or a revision, 0.82-0.93."""
    low, high = (0.55, 0.75) if iteration <= 1 and not applied_lessons else (0.82, 0.93)
    return round(rng.uniform(low, high), 2)


def _applied_lessons(ctx: NodeContext) -> bool:
    """True when the draft under review has the writer's lessons section."""
    draft = _find_draft(ctx) or ""
    return f"## {LESSONS_HEADING}" in draft


def _rubric_scores(score: float, rng: random.Random) -> list[tuple[_Criterion, float]]:
    """Per-criterion scores spread around the overall score."""
    offsets = [rng.uniform(-0.1, 0.1) for _ in _RUBRIC]
    mean = sum(offsets) / len(offsets)
    return [
        (criterion, round(min(1.0, max(0.0, score + offset - mean)), 2))
        for criterion, offset in zip(_RUBRIC, offsets, strict=True)
    ]


def _review_uncertainty(
    score: float, threshold: float, iteration: int, rng: random.Random
) -> float:
    """Most unsure near the threshold and on a first draft; sure on clear cases."""
    closeness = 1.0 - min(abs(score - threshold) / 0.25, 1.0)
    first_draft = 1.0 if iteration <= 1 else 0.0
    position = 0.5 * first_draft + 0.35 * closeness + 0.15 * rng.random()
    return _in_band(_PROFILES["critic"].uncertainty_band, position)


def _feedback_for(rubric: list[tuple[_Criterion, float]], passed: bool) -> list[str]:
    """Concrete feedback: fix the two weakest lines, or one optional polish on a pass."""
    weakest = [criterion for criterion, _ in sorted(rubric, key=lambda item: item[1])]
    if passed:
        return [f"{weakest[0].name} (optional): {weakest[0].polish}"]
    return [f"{criterion.name}: {criterion.request}" for criterion in weakest[:2]]


def _review(ctx: NodeContext, rng: random.Random, score: float, threshold: float) -> _Work:
    """The critic's review text, its exported variables and its uncertainty."""
    draft = _find_draft(ctx)
    title = (_heading(draft) if draft else None) or "the draft"
    passed = score >= threshold
    rubric = _rubric_scores(score, rng)
    requests = _feedback_for(rubric, passed)
    rubric_lines = [
        f"{c.name} {s:.2f}: {c.weak if s < threshold and not passed else c.strong}"
        for c, s in rubric
    ]
    verdict = "passes; ready for human review" if passed else "revise; back to the writer"
    text = "\n".join(
        [
            f'Quality review of "{title}" (review {ctx.iteration})',
            f"Score: {score:.2f} (threshold {threshold:.2f})",
            "Rubric:",
            _bullets(rubric_lines),
            "Feedback:",
            _bullets(requests),
            f"Verdict: {verdict}.",
        ]
    )
    uncertainty = _review_uncertainty(score, threshold, ctx.iteration, rng)
    variables = {"quality_score": score, "feedback": "\n".join(requests)}
    return _Work(text, uncertainty, variables)


def _compose_default_review(ctx: NodeContext, rng: random.Random, angle: str | None) -> _Work:
    score = _default_score(ctx.iteration, rng, _applied_lessons(ctx))
    return _review(ctx, rng, score, DEFAULT_THRESHOLD)


# --- profiles ----------------------------------------------------------------------

_Composer = Callable[[NodeContext, random.Random, str | None], str | _Work]


@dataclass(frozen=True)
class _Profile:
    """How one kind of mock agent writes, how long it takes and what it costs."""

    compose: _Composer
    latency_factor: float
    system_prompt_tokens: int
    uncertainty_band: tuple[float, float]


_PROFILES: dict[str, _Profile] = {
    "researcher": _Profile(_compose_research, 1.5, 600, (0.10, 0.30)),
    "analyst": _Profile(_compose_analysis, 1.5, 450, (0.15, 0.35)),
    "writer": _Profile(_compose_draft, 2.0, 700, (0.10, 0.25)),
    "critic": _Profile(_compose_default_review, 1.0, 550, (0.05, 0.40)),
    "publisher": _Profile(_compose_publication, 0.5, 300, (0.02, 0.10)),
    "planner": _Profile(_compose_plan, 1.0, 400, (0.10, 0.25)),
    "guardian": _Profile(_compose_screen, 0.5, 500, (0.03, 0.12)),
    "human": _Profile(_compose_note, 0.5, 200, (0.00, 0.05)),
}
def _rng_for(seed: int, role: Role, angle: str | None, ctx: NodeContext) -> random.Random:
    """A generator that depends only on the call's content, in any process."""
    parts = [seed, role.value, angle, ctx.node_id, ctx.task, ctx.iteration]
    parts += [dict(ctx.inputs), ctx.feedback]
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --- agents ------------------------------------------------------------------------


@dataclass
class MockAgent:
    """Deterministic stand-in for an LLM agent playing `role`."""

    role: Role
    angle: str | None = None
    """Executors only: "technical", "business", ... analyse; None or "writer" drafts."""
    model: str = DEFAULT_MODEL
    seed: int | None = None
    """None: read MESHFLOW_MOCK_SEED at call time."""
    latency_s: float | None = None
    """None: MESHFLOW_MOCK_LATENCY times this role's factor, read at call time."""

    def __post_init__(self) -> None:
        self.role = Role.of(self.role, "MockAgent.role")
        if self.latency_s is not None and not self.latency_s >= 0:
            raise ConfigError(f"latency_s must be >= 0, got {self.latency_s!r}")

    @property
    def _profile(self) -> _Profile:
        return _PROFILES[role_kind(self.role, self.angle)]

    async def __call__(self, ctx: NodeContext) -> AgentResult:
        seed = mock_seed() if self.seed is None else self.seed
        work = self._work(ctx, _rng_for(seed, self.role, self.angle, ctx))
        tokens_in = self._profile.system_prompt_tokens + _prompt_chars(ctx) // _CHARS_PER_TOKEN
        tokens_out = round(len(work.text) / _CHARS_PER_TOKEN * _OUTPUT_SCALE)
        await self._wait()
        return AgentResult(
            text=work.text,
            variables=work.variables,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd(self.model, tokens_in, tokens_out),
            uncertainty=work.uncertainty,
            model=self.model,
            output=work.output,
        )

    def _work(self, ctx: NodeContext, rng: random.Random) -> _Work:
        composed = self._profile.compose(ctx, rng, self.angle)
        if isinstance(composed, _Work):
            return composed
        uncertainty = _in_band(self._profile.uncertainty_band, rng.random())
        return _Work(composed, uncertainty, {})

    async def _wait(self) -> None:
        latency = self.latency_s
        if latency is None:
            latency = mock_latency_s() * self._profile.latency_factor
        if latency > 0:
            await asyncio.sleep(latency)


@dataclass
class MockCritic(MockAgent):
    """Scores the upstream draft; exports `quality_score` (0..1) and `feedback` (text).

    The result's text is the review; its output is the draft, passed on unchanged, so a
    human gate and the publisher downstream see the draft rather than the review.
    """

    role: Role = Role.CRITIC
    scores: Sequence[float] | None = None
    """Score for iteration 1, 2, ...; the last repeats. None: seeded default."""
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scores is not None:
            self.scores = tuple(self.scores)
            if not self.scores or not all(0.0 <= s <= 1.0 for s in self.scores):
                raise ConfigError(f"scores must be 0..1 and not empty, got {self.scores}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be 0..1, got {self.threshold!r}")

    def _work(self, ctx: NodeContext, rng: random.Random) -> _Work:
        score = self._score(ctx.iteration, rng, _applied_lessons(ctx))
        return _review(ctx, rng, score, self.threshold)

    def _score(self, iteration: int, rng: random.Random, applied_lessons: bool = False) -> float:
        if self.scores is None:
            return _default_score(iteration, rng, applied_lessons)
        return self.scores[min(iteration, len(self.scores)) - 1]
