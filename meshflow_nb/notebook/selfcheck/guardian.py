"""Lesson 08's self-checks: each exercise judged against the learner's own run and ledger.

The names the checks read are the lesson's: what its cells made (``ex1_ledger``,
``ex1_returned``, ``FAKE_KEY``, ``ex3_ledger``, ``PATIENT``) and the answer variables
(``leaky_agent``, ``false_positive``, ``flagged_kind``, ``why_flagged``, ``phi_action``,
``phi_reason``). Exercises 1 and 3 are read from their ledgers, which the lesson makes
before the answer cell: the evidence that nothing leaked is the ledger itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...agents.base import AgentResult
from ...events import EventType, MeshEvent, plural
from ...ledger import ReplayLedger
from ...policy.guardian import Category, Guardian
from ...policy.guardian_corpus import CORPUS, POSITIVES
from ..screening import guardian_accuracy, search_ledger
from .expect import Expect, Instance, ListOf, OneOf, Text, Unfit
from .framework import Verdict, hint, passed, self_check
from .streaming import Name
from .text import filler_reason, stems, words

PIECE_CHARS = 12
"""A stretch of the key this long, found anywhere, counts as the key leaking."""
MIN_PLACES = 2
"""Exercise 1 asks for the key hidden in at least this many places."""
MAX_DEPTH = 40
"""How deep the check follows what an agent returned (a value may contain itself)."""
ACTIONS = ("flag", "redact", "block")
KEY_KINDS = frozenset({"anthropic_api_key", "openai_api_key", "aws_access_key_id",
                       "aws_secret_access_key", "github_token", "slack_token", "google_api_key",
                       "stripe_live_key", "jwt", "private_key"})
"""Kinds that match one exact key format: text of that shape is a key as far as anyone
reading it can tell, so flagging it is no false positive."""

RULE_STEMS = {
    Category.PROMPT_INJECTION.value: stems(
        "phrase phrases words word verb verbs pattern patterns quote quoted quoting quotation "
        "mention mentions mentioned discuss discusses meaning context intent instructions "
        "sentence order"),
    Category.SECRET.value: stems(
        "prefix shape entropy random length characters mixed generated pattern value looks "
        "format letters digits"),
    Category.PII.value: stems(
        "shape format digits pattern number numbers separators dashes spaces checksum luhn "
        "address domain sign looks grouped"),
}
"""What each category's rules read: an explanation of a false positive names one of them."""
GENERIC_RULE_STEMS = stems("rule rules regex regular expression expressions match matches "
                           "matched matching shape shapes")

ACTION_STEMS = {
    "redact": stems(
        "ledger record recorded records audit immutable chain forget forgotten delete deleted "
        "erase mask masked masks replace replaced replaces removed remove removes strip "
        "downstream next agent agents continue continues running address email reminder "
        "send sent useful work summary"),
    "block": stems(
        "stop stops stopped halt halts refuse refuses refused nothing ledger record human "
        "review reviewer manual safe fail closed strict whole run workflow never useless"),
}
"""What a defence of each action talks about: what it does to the PHI it finds, and what
it costs the workflow."""
LIMIT_STEMS = stems("name names diagnosis diagnoses health medical condition birth born "
                    "date mrn invisible undetected unseen limit limits shape shapes detect "
                    "detects recognise recognize recognises recognizes blind")
"""What the PHI the guardian cannot see is called: a defence says what happens to it."""


class Agent(Expect):
    """An agent: a plain function of one argument, ``ctx``."""

    kind = "a function of one argument, ctx (def leaky_agent(ctx): ...)"

    def clean(self, value: Any, where: str) -> Any:
        """The function itself, when it is one."""
        if isinstance(value, type) or not callable(value):
            raise self.refuse(value, where)
        return value


class Sample(Text):
    """Text to screen: a sentence or two that is not filler. Digits are no filler here
    ("4111 1111 ..." is what a card rule reads), and a screenful is no sample."""

    max_chars = 2000

    def clean(self, value: Any, where: str) -> str:
        """The text, stripped, once it has enough words and its letters are not filler."""
        if not isinstance(value, str):
            raise self.refuse(value, where)
        if len(value.strip()) > self.max_chars:
            raise Unfit(f"{where} is {len(value.strip())} characters long: a sample is a "
                        f"sentence or two, at most {self.max_chars} characters")
        if len(words(value)) < self.min_words:
            raise Unfit(f"{where} is too short: write at least {self.min_words} words")
        lettered = _DIGITS.sub(" ", value)
        reason = filler_reason(lettered) if words(lettered) else None
        if reason:
            raise Unfit(f"{where} {reason}")
        return value.strip()


_DIGITS = re.compile(r"\d+")
LEDGER = "a ledger (a ReplayLedger)"


# --- exercise 1 ---------------------------------------------------------------------------


@self_check(
    given={"ex1_ledger": Instance(ReplayLedger, "exercise 1's ledger", kind=LEDGER),
           "ex1_returned": ListOf(Expect(), "what your agent returned", kind="a list"),
           "FAKE_KEY": Instance(str, "the fake key", kind="text")},
    answers={"leaky_agent": Agent("your agent that tries to leak FAKE_KEY")})
def leak_contained(ex1_ledger: ReplayLedger, ex1_returned: list[Any], FAKE_KEY: str,
                   leaky_agent: Any) -> Verdict:
    """Exercise 1: the agent really tried (the key in two places or more of what it
    returned), the guardian found it, and neither the key nor 12 characters of it is
    anywhere in the ledger."""
    key = FAKE_KEY
    run_id = _last_run(ex1_ledger)
    if run_id is None:
        return hint("ex1_ledger has no run yet: run the cell after your answer cell")
    if not ex1_returned:
        return hint("your agent was not called in that run: run the cell after your answer "
                    "cell again")
    events = ex1_ledger.events(run_id)
    action = _guardian_action(events)
    if action not in ("redact", "block"):
        return hint(f"the run in ex1_ledger {_policy_said(action)}: run the exercise's cell "
                    "as it is, under Policy()")
    leaks = search_ledger(ex1_ledger, key, run_id=run_id, min_piece=PIECE_CHARS)
    if not leaks.empty:
        return hint(_leak_hint(leaks.iloc[0]))
    returned = ex1_returned[-1]
    if isinstance(returned, BaseException):
        return hint(_raised_hint(returned, key))
    places = _key_places(returned, key)
    if not places:
        return hint(_no_key_hint(returned))
    if len(places) < MIN_PLACES:
        return hint(f"your agent put FAKE_KEY in one place ({places[0]}): hide it in at least "
                    f"{MIN_PLACES} different places (step 2)")
    found = [e for e in events if e.type is EventType.GUARDIAN_FINDING
             and e.payload.get("category") == Category.SECRET.value]
    if not found:
        return hint("the guardian made no secret finding in your run: read the findings "
                    "table under your run")
    wheres = sorted({str(e.payload.get("where")) for e in found})
    return passed(f"your agent hid FAKE_KEY in {plural(len(places), 'place')} "
                  f"({', '.join(places)}); the guardian made "
                  f"{plural(len(found), 'secret finding')} ({', '.join(wheres)}), and none of "
                  f"the ledger's {plural(len(events), 'entry', 'entries')} holds the key or "
                  f"{PIECE_CHARS} characters of it")


def _last_run(ledger: ReplayLedger) -> str | None:
    """The run id of the ledger's latest run, None when it has none."""
    runs = ledger.runs()
    return None if runs.empty else str(runs.run_id.iloc[-1])


def _leak_hint(row: pd.Series) -> str:
    """Where the key reached the ledger, and what kind of hole that is (never the key)."""
    what = "FAKE_KEY" if row["match"] == "whole" else f"{PIECE_CHARS} characters of FAKE_KEY"
    place = f"seq {row['seq']}, {row['event']}, {row['field']}" if row["table"] == \
        "ledger_entries" else f"the run record's {row['field']}"
    if row["match"] == "piece":
        route = "a piece of the key, and the guardian reads one string at a time"
    else:
        route = "a shape or a place the guardian does not recognise there"
    return (f"{what} reached the ledger ({place}): your agent found a way past the guardian, "
            f"{route} (section 9). Note it, then hide the key where the guardian looks "
            "(section 4 shows the places)")


def _raised_hint(error: BaseException, key: str) -> str:
    """An agent that raised tested the run's error redaction, not the guardian."""
    if _key_places(error, key):
        return (f"your agent raised {type(error).__name__} with FAKE_KEY in its message: the "
                "run redacts a key in any error before recording it (section 9), so this "
                "tests that, not the guardian. Make it return FAKE_KEY instead, hidden in at "
                f"least {MIN_PLACES} places")
    return (f"your agent raised {type(error).__name__} instead of returning: make it "
            "return something that holds FAKE_KEY")


def _no_key_hint(returned: Any) -> str:
    """Where to look when what the agent returned holds no key."""
    return ("what your agent returned holds no FAKE_KEY: put the key itself in what it "
            "returns (section 4 shows the places the guardian screens)")


def _key_places(value: Any, key: str) -> list[str]:
    """Every place in what an agent returned that holds the key (or a piece of it)."""
    pieces = {key[i:i + PIECE_CHARS] for i in range(len(key) - PIECE_CHARS + 1)}
    places: list[str] = []
    _collect(value, "output", lambda text: key in text or any(p in text for p in pieces),
             places, set(), 0)
    return list(dict.fromkeys(places))


def _collect(value: Any, path: str, holds: Any, places: list[str], seen: set[int],
             depth: int) -> None:
    """Add to ``places`` each place under ``path`` whose text holds the key."""
    if depth > MAX_DEPTH or id(value) in seen:
        return
    if isinstance(value, AgentResult):
        _collect(value.text, "text", holds, places, seen, depth + 1)
        if value.output is not None and value.output != value.text:
            _collect(value.output, "output", holds, places, seen, depth + 1)
        _collect(value.variables, "variables", holds, places, seen, depth + 1)
    elif isinstance(value, (str, bytes, bytearray, BaseException)) or value is None:
        if holds(_as_text(value)):
            places.append(f"an error message ({path})" if isinstance(value, BaseException)
                          else path)
    elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
        seen.add(id(value))
        _collect_items(value, path, holds, places, seen, depth)
    elif holds(str(value)):
        places.append(f"{path} (as text)")


def _collect_items(value: Any, path: str, holds: Any, places: list[str], seen: set[int],
                   depth: int) -> None:
    """The places inside a dict (its keys too), list, tuple or set."""
    if isinstance(value, Mapping):
        for position, (name, child) in enumerate(value.items()):
            if holds(str(name)):
                places.append(f"a dict key ({path}[#{position}])")
            label = f"{path}.{name}" if isinstance(name, str) and name.isidentifier() \
                else f"{path}[#{position}]"
            _collect(child, label, holds, places, seen, depth + 1)
        return
    for n, child in enumerate(value):
        _collect(child, f"{path}[{n}]", holds, places, seen, depth + 1)


def _as_text(value: Any) -> str:
    """A leaf as the text a search would read."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return "" if value is None else str(value)


def _guardian_action(events: list[MeshEvent]) -> str | None:
    """The guardian action of the run's policy, None when the guardian was off."""
    start = next((e for e in events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    if not isinstance(policy, dict) or not policy.get("enable_guardian"):
        return None
    return str(policy.get("guardian_action"))


def _policy_said(action: str | None) -> str:
    """What a run's policy did with findings, in words."""
    if action is None:
        return "had the guardian switched off"
    return f"had the guardian {action} its findings"


# --- exercise 2 ---------------------------------------------------------------------------


@self_check(answers={
    "false_positive": Sample("text the guardian flags wrongly", min_words=3),
    "flagged_kind": Name("the kind of finding the guardian reported for it"),
    "why_flagged": Text("why the rule matched, and why it is wrong here", min_words=10,
                        min_distinct=6)})
def false_positive_explained(false_positive: str, flagged_kind: str,
                             why_flagged: str) -> Verdict:
    """Exercise 2: the text is flagged, it is not a sample the corpus already holds or a
    key-shaped string, the kind is one the guardian reported, and the explanation names what
    that kind's rule reads."""
    findings = Guardian().screen(false_positive, "input").findings
    if not findings:
        return hint("the guardian finds nothing in false_positive: a false positive is text "
                    "it flags (sections 2 and 9 show what each rule looks for)")
    known = _known_sample(false_positive)
    if known:
        return hint(known)
    kind = flagged_kind.strip(" '\"`[]()").lower()
    kinds = {f.kind: f.category.value for f in findings}
    if kind not in kinds:
        return hint(_kind_hint(kind, kinds))
    if kind in KEY_KINDS:
        return hint(f"your text holds something shaped exactly like a key ({kind}): the "
                    "guardian cannot tell a fake key from a real one, and should not; find "
                    "text that only looks like trouble")
    category = kinds[kind]
    if not stems(why_flagged) & (RULE_STEMS[category] | GENERIC_RULE_STEMS):
        return hint(f"why_flagged should say what the {kind} rule reads in your text (the "
                    "tables in docs/guardian.md say what each rule looks for), and why that "
                    "is not real trouble here")
    before, after = (guardian_accuracy(samples).loc[category, "precision"]
                     for samples in ("corpus", [*CORPUS, (false_positive, ())]))
    return passed(f"the guardian flags your text as {kind} ({category}), wrongly; added to "
                  f"the corpus as a negative, it takes {category} precision from "
                  f"{before:.3f} to {after:.3f}")


def _known_sample(text: str) -> str | None:
    """A HINT when the text is a sample of the corpus already (whatever its case and
    spacing)."""
    said = _normal(text)
    for sample in CORPUS:
        if _normal(sample.text) == said:
            if sample in POSITIVES:
                return (f"that text is in the corpus as real trouble ({sample.note}): the "
                        "guardian is right to flag it; find text that only looks like trouble")
            return ("that is the corpus's own known false positive (section 8): find one of "
                    "your own")
    return None


def _normal(text: str) -> str:
    """Text compared as a sample: lower case, one space between words, no end punctuation."""
    return " ".join(text.lower().split()).strip(" .!?'\"")


def _kind_hint(kind: str, kinds: dict[str, str]) -> str:
    """Where to look when flagged_kind is not a kind reported for the text."""
    if kind in kinds.values():
        return ("flagged_kind: that is the finding's category; give its kind, the name in "
                "brackets after it")
    return (f"the guardian reported no {kind!r} finding for your text: read the findings "
            "that the cell above prints")


# --- exercise 3 ---------------------------------------------------------------------------


@self_check(
    given={"ex3_ledger": Instance(ReplayLedger, "exercise 3's ledger", kind=LEDGER),
           "PATIENT": Instance(dict, "the patient's record", kind="a dict")},
    answers={"phi_action": OneOf(ACTIONS, "the guardian action for the clinic's workflow"),
             "phi_reason": Text("your defence of that action", min_words=15,
                                min_distinct=8)})
def phi_action_defended(ex3_ledger: ReplayLedger, PATIENT: dict[str, Any], phi_action: str,
                        phi_reason: str) -> Verdict:
    """Exercise 3: the run used the chosen action, flag is refused with the ledger's
    evidence, and the defence says what the action does to the PHI the guardian finds,
    what it costs the workflow, and what happens to the PHI it cannot see."""
    run_id = _last_run(ex3_ledger)
    if run_id is None:
        return hint("ex3_ledger has no run yet: run the cell after the answer cell")
    events = ex3_ledger.events(run_id)
    used = _guardian_action(events)
    if used != phi_action:
        return hint(f"the run in ex3_ledger {_policy_said(used)}, not {phi_action}: run the "
                    "cell after the answer cell again")
    seen, unseen = _phi_fields(PATIENT)
    if not seen:
        return hint("PATIENT holds none of the personal data the guardian looks for: run "
                    "exercise 3's first cell again")
    reached = {name: len(search_ledger(ex3_ledger, str(PATIENT[name]), run_id=run_id))
               for name in seen + unseen}
    if phi_action == "flag":
        leaked = [name for name in seen if reached[name]] or seen
        return hint(f"under flag, the patient's {_listed(leaked)} reached the ledger "
                    f"({plural(max(reached.values(), default=0), 'entry', 'entries')} for one "
                    "of them): "
                    "flag reports and passes everything on, and a ledger cannot forget "
                    "(section 7)")
    words = stems(phi_reason)
    if not words & ACTION_STEMS[phi_action]:
        return hint(f"phi_reason should say what {phi_action} does to the PHI the guardian "
                    "finds, and what that costs the workflow (section 6 compares the actions)")
    if not words & LIMIT_STEMS:
        return hint("phi_reason should also say what happens to the PHI the guardian cannot "
                    "see: read which fields of the record the ledger holds (the counts under "
                    "your run)")
    return passed(_phi_said(phi_action, events, seen, unseen, reached))


def _phi_fields(patient: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The record's fields the guardian finds (by itself) and those it cannot see."""
    seen, unseen = [], []
    for name, value in patient.items():
        if isinstance(value, str) and len(value) >= 4:
            (seen if Guardian().screen(value, "value").findings else unseen).append(name)
    return seen, unseen


def _phi_said(action: str, events: list[MeshEvent], seen: list[str], unseen: list[str],
              reached: dict[str, int]) -> str:
    """What the learner's run shows their action did, in one sentence."""
    if action == "block":
        stop = next((e for e in events if e.type is EventType.NODE_BLOCKED), None)
        where = f"at {stop.node_id}" if stop is not None and stop.node_id else "before any node"
        return (f"block stopped the run {where}: none of the record reached the ledger, and "
                "no summary or reminder was made; your reason weighs both")
    hidden = [name for name in unseen if reached[name]]
    hidden_said = (f"the {plural(len(hidden), 'field')} it cannot see ({', '.join(hidden)}) "
                   f"reached the ledger, up to "
                   f"{plural(max(reached[n] for n in hidden), 'entry', 'entries')} each"
                   if hidden else "nothing it cannot see reached the ledger")
    return (f"redact kept the patient's {_listed(seen)} out of the ledger; "
            f"{_reminder_said(events)}; {hidden_said}: your reason weighs both")


def _reminder_said(events: list[MeshEvent]) -> str:
    """What became of the reminder in the learner's run."""
    if any(e.type is EventType.GATE_REJECT for e in events):
        return "the nurse rejected the summary at the gate, so no reminder went out"
    sent = next((e for e in events if e.type is EventType.NODE_COMPLETE
                 and e.node_id == "reminder"), None)
    if sent is None:
        return "the reminder never ran"
    if "[REDACTED:" in str(sent.output):
        return "the reminder could not be sent, its address redacted"
    return "the reminder went out"


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (``record`` for none)."""
    if not names:
        return "record"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
