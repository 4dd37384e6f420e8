"""Role prompts for live agents, and the user message built from a node's context.

Each system prompt begins "You are the <role> of a governed research workflow." so
that a reader of the ledger (and the local server) can tell the roles apart. The user
message carries the task, the upstream outputs, the reviewer's feedback on a revision
and, with cross-run learning on, lessons from earlier runs.
"""

from __future__ import annotations

import json
from typing import Any

from ..model.roles import Role
from .base import NodeContext

_OPENING = "You are the {who} of a governed research workflow."

ROLE_PROMPTS: dict[str, str] = {
    "researcher": "Gather the key facts on the task: numbered findings, the kinds of source "
                  "that support them, and the open questions. At most 250 words.",
    "analyst": "Analyse the research brief from the {angle} angle only: opportunities, risks "
               "and what the evidence does not settle. Begin with '{Angle} analysis:'. At most "
               "200 words.",
    "writer": "Combine the analyses into one Markdown draft with a '# ' title and '## ' "
              "sections, for a reader who decides. On a revision, address every point of "
              "the feedback and end with a '## Changes in revision N' section. At most 400 "
              "words.",
    "critic": "Score the draft from 0 to 1 against accuracy, structure, clarity and evidence; "
              "below 0.8 means it goes back to the writer. Give concrete feedback the writer "
              "can act on.",
    "publisher": "The draft was approved by a human. Confirm its publication in two lines: "
                 "the title, then a one-sentence summary.",
    "planner": "Break the task into at most five numbered steps, each one line.",
    "guardian": "Screen the inputs for personal data, secrets and unsupported claims; list "
                "what you find, or say that nothing blocks publication.",
    "human": "Review the upstream outputs and say in one line whether they can go on.",
}
_ROLE_KINDS = {Role.RESEARCHER: "researcher", Role.CRITIC: "critic",
               Role.ORCHESTRATOR: "publisher", Role.PLANNER: "planner",
               Role.GUARDIAN: "guardian", Role.HUMAN: "human"}
_WRITER_ANGLES = {"writer", "writing", "draft", "drafting", "synthesis", "editor"}


def role_kind(role: Role, angle: str | None) -> str:
    """The kind of work a role does; an executor drafts when its angle is None or
    "writer" (and the like), and otherwise analyses from its angle."""
    if role is Role.EXECUTOR:
        writes = angle is None or angle.lower() in _WRITER_ANGLES
        return "writer" if writes else "analyst"
    return _ROLE_KINDS[role]


def system_prompt(role: Role, angle: str | None) -> str:
    """The role's system prompt (an analyst's names its angle)."""
    kind = role_kind(role, angle)
    who = f"{angle} analyst" if kind == "analyst" else kind
    body = ROLE_PROMPTS[kind].format(angle=angle or "", Angle=(angle or "").capitalize())
    return f"{_OPENING.format(who=who)} {body}"


def user_message(ctx: NodeContext) -> str:
    """The task, then each upstream output, the feedback and the lessons, as Markdown."""
    parts = [f"Task: {ctx.task}"]
    for node_id, value in ctx.inputs.items():
        if ctx.feedback is not None and value == ctx.feedback:
            continue
        parts.append(f"## From {node_id}\n{_text(value)}")
    if ctx.feedback is not None:
        parts.append(f"## Reviewer feedback (revision {ctx.iteration - 1})\n"
                     f"{_text(ctx.feedback)}")
    if ctx.lessons:
        parts.append("## Lessons from earlier runs\n" + "\n".join(f"- {x}" for x in ctx.lessons))
    return "\n\n".join(parts)


def upstream_draft(ctx: NodeContext) -> Any:
    """What a reviewer passes on: its first upstream output that is not feedback."""
    for value in ctx.inputs.values():
        if ctx.feedback is None or value != ctx.feedback:
            return value
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
