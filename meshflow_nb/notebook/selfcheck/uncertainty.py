"""Lesson 09's self-checks: each exercise judged against the learner's own run and ledger.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``EX1_TASK``, ``ex2_ledger``, ``EX3_SITUATIONS``) and the answer variables
(``ex1_escalate``, ``ex1_block``, ``unsure_agent``, ``blocked_seq``,
``blocked_uncertainty``, ``ex3_choices``, ``ex3_rule``). Exercise 1 reads the run made
under the learner's thresholds, exercise 2 the ledger the learner's agent ran on.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import pandas as pd

from ...engine.results import RunResult
from ...events import EventType, MeshEvent, plural
from ...ledger import ReplayLedger
from ...model.status import RunStatus
from ..uncertainty import Thresholds, thresholds_of, uncertainty_table
from .expect import RUN, Count, Expect, Instance, MappingOf, OneOf, OrNone, Text, Unfit
from .framework import Verdict, hint, passed, self_check
from .guardian import LEDGER, Agent, _last_run
from .text import stems

STANDARD = Thresholds(True, 0.7, 0.9)
"""The thresholds of the STANDARD preset, under which exercise 2's run is made."""
PRINTED = 0.0005
"""How far a value read off a table may be from the event's (tables print three decimals)."""
ANSWER_NODE = "unsure"
"""The node exercise 2 runs the learner's agent as."""
CHOICES = ("escalate", "block")

SITUATIONS: dict[str, tuple[str, str]] = {
    "editor_at_desk": ("escalate", "a person who can judge the draft is there, and answers "
                       "in minutes: what would blocking throw away?"),
    "night_batch": ("block", "who would answer at 3 a.m.? An escalation nobody answers "
                    "waits until its timeout (section 8 shows one nobody was asked about)"),
    "pure_guess": ("block", "what would the reviewer be asked to approve? With no source "
                   "at all, there is nothing to check, only a guess"),
    "shelf_check": ("escalate", "a person can check the answer on the shelf in a minute, "
                    "and the order waits for it anyway"),
}
"""Exercise 3's situations: the choice a security engineer would make, and the HINT for
the other one (where to look, not the answer)."""

PERSON_STEMS = stems("human humans person people reviewer reviewers someone somebody "
                     "editor operator expert clerk colleague staff approver approvers "
                     "analyst nurse engineer team owner")
JUDGE_STEMS = stems("check checks checked verify verifies judge judges judged know knows "
                    "available availability there answer answers respond responds time "
                    "minutes quickly awake shift wait waits waiting review reviews source "
                    "sources evidence fix correct decide decides")
"""A rule for escalating names who is asked, and what makes asking them worth it: that
they can judge the output, and are there to answer in time."""


class Fraction(Expect):
    """A number from 0 to 1 (an uncertainty, a threshold), not text or a percentage."""

    kind = "a number from 0 to 1, such as 0.25"

    def clean(self, value: Any, where: str) -> float:
        """The value as a float; text and percentages are told what to drop."""
        if isinstance(value, str) and re.fullmatch(r"\s*\d*\.?\d+\s*%?\s*", value):
            raise Unfit(f"{where} should be a number, not the text {value!r}: drop the quotes"
                        + (" and the % (25% is 0.25)" if "%" in value else ""))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise self.refuse(value, where)
        if 1 < value <= 100:
            raise Unfit(f"{where} is {value:g}: write it as a fraction from 0 to 1 "
                        f"({value:g}% is {value / 100:g})")
        if not 0 <= value <= 1:
            raise Unfit(f"{where} should be from 0 (sure) to 1 (no idea), not {value:g}")
        return float(value)


# --- exercise 1: exactly one node escalates -----------------------------------------------


@self_check(
    given={"ex1_result": OrNone(Instance(RunResult, "the run under your thresholds", kind=RUN)),
           "EX1_TASK": Instance(str, "exercise 1's task", kind="text")},
    answers={"ex1_escalate": Fraction("the threshold above which a node asks a human"),
             "ex1_block": Fraction("the threshold above which a node is blocked")})
def one_escalation(ex1_result: RunResult | None, EX1_TASK: str, ex1_escalate: float,
                   ex1_block: float) -> Verdict:
    """Exercise 1: under the learner's thresholds, exactly one node execution of the run
    escalated, none was blocked, and the run completed."""
    if ex1_escalate > ex1_block:
        return hint(f"ex1_escalate ({ex1_escalate:g}) is above ex1_block ({ex1_block:g}): a "
                    "Policy refuses that, since nothing could ever escalate; keep escalate "
                    "<= block")
    if ex1_result is None:
        return hint("run the cell after your answer: it runs the capstone under your "
                    "thresholds (ex1_result is None)")
    limits = thresholds_of(ex1_result.events)
    if not limits.enabled or (limits.escalate, limits.block) != (ex1_escalate, ex1_block):
        return hint("ex1_result comes from other thresholds than yours: run the cell after "
                    "your answer again")
    if ex1_result.task != EX1_TASK:
        return hint("ex1_result is a run on another task than EX1_TASK: run the cell after "
                    "your answer again, as it is")
    rows = uncertainty_table(ex1_result)
    wrong = _blocked_hint(rows, ex1_block) or _escalated_hint(rows, ex1_escalate)
    if wrong:
        return hint(wrong)
    if ex1_result.status is not RunStatus.COMPLETED:
        return hint(f"your run ended {ex1_result.status.value}, not completed: print "
                    "ex1_result.error")
    return passed(_one_said(rows, ex1_escalate, ex1_block))


def _blocked_hint(rows: pd.DataFrame, block: float) -> str | None:
    """Where to look when the layer blocked a node (None when it blocked none)."""
    blocked = rows[rows.verdict == "blocked"]
    if blocked.empty:
        return None
    row = blocked.iloc[0]
    return (f"the layer blocked {_name(row)} (uncertainty {row.uncertainty:.3f} is above your "
            f"ex1_block of {block:g}), and a block stops the run: the question was about "
            "escalating, so put ex1_block above every uncertainty of the run")


def _escalated_hint(rows: pd.DataFrame, escalate: float) -> str | None:
    """Where to look when not exactly one node escalated (None when one did)."""
    asked = rows[rows.verdict.str.startswith("escalated")]
    if len(asked) == 1:
        return None
    if asked.empty:
        return (f"no node escalated: every uncertainty in your run is at or below your "
                f"ex1_escalate of {escalate:g}. A node escalates when its uncertainty is "
                "strictly above the threshold: read the uncertainty column of the table above")
    names = ", ".join(_name(row) for row in asked.itertuples())
    return (f"{plural(len(asked), 'node execution')} escalated ({names}): raise ex1_escalate "
            "until only one uncertainty of the run is above it")


def _one_said(rows: pd.DataFrame, escalate: float, block: float) -> str:
    """The PASS: which execution escalated, and how close the next one came."""
    asked = rows[rows.verdict.str.startswith("escalated")].iloc[0]
    others = rows[rows.index != asked.name].dropna(subset=["uncertainty"])
    nearest = others.sort_values("uncertainty").iloc[-1] if not others.empty else None
    after = (f"; the next most uncertain, {_name(nearest)} at {nearest.uncertainty:.3f}, "
             "passed" if nearest is not None else "")
    return (f"exactly one node escalated: {_name(asked)} (uncertainty {asked.uncertainty:.3f}, "
            f"above your {escalate:g}){after}; nothing was above your block of {block:g}, "
            "and the run completed")


def _name(row: Any) -> str:
    """``quality_gate`` or ``quality_gate #2``."""
    return row.node if row.iteration == 1 else f"{row.node} #{row.iteration}"


# --- exercise 2: make a node block, and read the event ------------------------------------


@self_check(
    given={"ex2_ledger": Instance(ReplayLedger, "exercise 2's ledger", kind=LEDGER)},
    answers={"unsure_agent": Agent("your agent that the layer should block"),
             "blocked_seq": Count("the seq of the node_blocked entry"),
             "blocked_uncertainty": Fraction("the uncertainty the node_blocked entry carries")})
def node_blocked(ex2_ledger: ReplayLedger, unsure_agent: Any, blocked_seq: int,
                 blocked_uncertainty: float) -> Verdict:
    """Exercise 2: the learner's agent was blocked by the uncertainty layer under
    STANDARD's thresholds, nothing after it ran, and the learner read the event's seq and
    uncertainty from the ledger."""
    run_id = _last_run(ex2_ledger)
    if run_id is None:
        return hint("ex2_ledger has no run yet: run the cell after your agent")
    events = ex2_ledger.events(run_id)
    if thresholds_of(events) != STANDARD:
        return hint("the run in ex2_ledger was not made under Policy(): run the cell after "
                    "your agent as it is")
    stop = next((e for e in events if e.type is EventType.NODE_BLOCKED), None)
    if stop is None or stop.payload.get("layer") != "uncertainty":
        return hint(_not_blocked_hint(events, stop))
    if any(e.type is EventType.NODE_START and e.node_id != ANSWER_NODE for e in events):
        return hint("another node ran in your run: run the cell after your agent as it is")
    wrong = _seq_hint(events, stop, blocked_seq) or _value_hint(stop, blocked_uncertainty)
    if wrong:
        return hint(wrong)
    return passed(f"your agent reported uncertainty {stop.uncertainty:.3f}, above the block "
                  f"threshold {STANDARD.block:g}: node_blocked at seq {stop.seq} stopped the "
                  f"run before outbox started, and the ledger says: "
                  f"\"{stop.payload.get('message')}\"")


def _not_blocked_hint(events: list[MeshEvent], stop: MeshEvent | None) -> str:
    """What the learner's agent did instead of being blocked by the uncertainty layer."""
    if stop is not None:
        return (f"the {stop.payload.get('layer')} layer blocked your node, not the uncertainty "
                "layer: return a plain answer, and let its uncertainty do the work")
    failed = next((e for e in events if e.type is EventType.NODE_FAILED), None)
    if failed is not None:
        return (f"your agent failed instead of answering ({str(failed.payload.get('error'))[:90]})"
                ": a confidence or an uncertainty is a number from 0 to 1")
    if any(e.type is EventType.UNCERTAINTY_ESCALATED for e in events):
        value = next(e.uncertainty for e in events
                     if e.type is EventType.UNCERTAINTY_ESCALATED)
        return (f"your node escalated instead: its uncertainty {value:.3f} is above "
                f"escalate ({STANDARD.escalate:g}) but not above block ({STANDARD.block:g}); "
                "section 3's table says which zone blocks")
    done = next((e for e in events if e.type is EventType.NODE_COMPLETE
                 and e.node_id == ANSWER_NODE), None)
    if done is None:
        return "your node never finished: run the cell after your agent again"
    if done.uncertainty is None:
        return ("your agent reported no uncertainty, so the layer had nothing to judge "
                "(section 2): return AgentResult(text=..., confidence=...) or uncertainty=...")
    return (f"your node passed: its uncertainty {done.uncertainty:.3f} is not above "
            f"escalate ({STANDARD.escalate:g}). Remember that confidence is the complement of "
            "uncertainty (section 2)")


def _seq_hint(events: list[MeshEvent], stop: MeshEvent, answer: int) -> str | None:
    """Where to look when blocked_seq is not the node_blocked entry's seq."""
    if answer == stop.seq:
        return None
    other = next((e for e in events if e.seq == answer), None)
    if other is None:
        return (f"blocked_seq: your run has no entry with seq {answer}: read the seq column "
                "of the run's entries")
    return (f"blocked_seq: seq {answer} is the run's {other.type.value} entry; find the "
            "node_blocked one")


def _value_hint(stop: MeshEvent, answer: float) -> str | None:
    """Where to look when blocked_uncertainty is not the uncertainty the event carries."""
    value = float(stop.uncertainty)
    if abs(answer - value) <= PRINTED:
        return None
    if abs(answer - (1 - value)) <= PRINTED:
        return ("blocked_uncertainty: that is the confidence; the event carries the "
                "uncertainty, its complement")
    if abs(answer - STANDARD.block) <= PRINTED:
        return "blocked_uncertainty: that is the block threshold, not what your node reported"
    return "blocked_uncertainty: read the uncertainty field of the node_blocked entry"


# --- exercise 3: when to escalate rather than block ---------------------------------------


@self_check(
    given={"EX3_SITUATIONS": MappingOf(Expect(), "exercise 3's situations")},
    answers={"ex3_choices": MappingOf(OneOf(CHOICES, "escalate or block"),
                                      "your choice for each situation", required=SITUATIONS,
                                      missing="ex3_choices: choose escalate or block for {}"),
             "ex3_rule": Text("when you would rather escalate than block", min_words=12,
                              min_distinct=6)})
def escalate_or_block(EX3_SITUATIONS: dict[str, str], ex3_choices: dict[str, str],
                      ex3_rule: str) -> Verdict:
    """Exercise 3: the right choice in each situation, and a rule that says who is asked
    and what makes asking worth it."""
    if set(EX3_SITUATIONS) != set(SITUATIONS):
        return hint("EX3_SITUATIONS is not the exercise's: run the exercise's first cell again")
    extra = sorted(set(ex3_choices) - set(SITUATIONS))
    if extra:
        return hint(f"ex3_choices has {', '.join(map(repr, extra))}, which is not a situation "
                    f"of EX3_SITUATIONS: use its keys ({', '.join(SITUATIONS)})")
    wrong = [key for key, (right, _) in SITUATIONS.items() if ex3_choices[key] != right]
    if wrong:
        return hint(f"{wrong[0]}: {SITUATIONS[wrong[0]][1]}" + (
            f" ({plural(len(wrong) - 1, 'other choice')} to look at again)"
            if len(wrong) > 1 else ""))
    said = stems(ex3_rule)
    if not said & PERSON_STEMS:
        return hint("ex3_rule should say who an escalation asks, and when asking them is "
                    "worth more than stopping")
    if not said & JUDGE_STEMS:
        return hint("ex3_rule should say what makes asking that person worth it: can they "
                    "judge the output, and are they there to answer in time?")
    by_choice = {choice: [key for key, (right, _) in SITUATIONS.items() if right == choice]
                 for choice in CHOICES}
    return passed(f"escalate where a person who can judge the output is there to answer "
                  f"({', '.join(by_choice['escalate'])}); block where nobody would answer in "
                  f"time or there is nothing to review ({', '.join(by_choice['block'])}); "
                  "your rule says who is asked and why it is worth it")


__all__ = ["Fraction", "escalate_or_block", "node_blocked", "one_escalation"]
