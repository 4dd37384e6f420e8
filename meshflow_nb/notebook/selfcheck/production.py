"""Lesson 17's self-checks: the steps to production, each judged against what the learner
actually did: the ledger they moved, the webhook notice they decided, the trace their run
exported and the conformance report they ran.

The names the checks read are the lesson's: what its cells made (``ledger_dsn``,
``ledger_path``, ``ex1_result``, ``inbox``, ``ledger``, ``ex2_result``, ``trace``,
``result``, ``pipeline``, ``report``) and the answer variables (``ex1_ledger``,
``ex1_check``, ``my_name``, ``ex2_verdict``, ``decision_seq``, ``slowest_agent``,
``slowest_tokens``, ``checklist``, ``next_step``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...agents.estimate import estimate_cost
from ...engine.results import RunResult
from ...events import EventType, MeshEvent, plural
from ...ledger.location import DEFAULT_LEDGER, is_file_location
from ...ledger.replay import ReplayLedger
from ...ledger.verify import VerificationResult
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from ..trace_view import AGENT_ATTRIBUTE, AGENT_PREFIX, RUN_ATTRIBUTE, is_agent_span
from ..webhook_inbox import CHANNEL, WebhookInbox
from .expect import RUN, Count, Expect, Instance, MappingOf, OneOf, OrNone, Pair, Text
from .framework import Verdict, hint, passed, self_check
from .text import first_duplicate, stems

POSTGRES = "PostgreSQL"
DEFAULT_LEDGER_NAMES = frozenset({"production.db", DEFAULT_LEDGER})
"""File names every lesson and script falls back to: not a file named for this lesson."""
LEDGER = Instance(ReplayLedger, "a ledger", kind="a ledger (a ReplayLedger)")
DECISIONS = (EventType.GATE_RESUME, EventType.GATE_REJECT)
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TIE_NS = 100_000
"""Spans within 0.1 ms of the longest tie: the trace table shows durations to 0.1 ms."""

STEPS: dict[str, str] = {
    "live agents": "which agents did the pipeline have? (section 4's first cell, and "
                   "MESHFLOW_MOCK)",
    "postgres ledger": "read what section 1 printed about where your ledger is",
    "approval webhook": "read the inbox's entries and the channel of your run's decision "
                        "(section 4)",
    "otlp export": "look for your run's id in the spans' meshflow.run_id (section 5)",
    "conformance": "read the last line of section 6's report: level and verdict",
}
"""The checklist's items, section 8's seven steps of lesson 16 with the first three as one
(no mock, a key, real agents), each with where its evidence is."""
STATUSES = ("done", "not yet")
STEP_STEMS: dict[str, frozenset[str]] = {
    "live agents": frozenset({"live", "agent", "mock", "model", "key", "anthr", "claud", "real",
                              "llm", "api"}),
    "postgres ledger": frozenset({"postg", "ledge", "datab", "dsn", "sql", "psql"}),
    "approval webhook": frozenset({"webho", "appro", "revie", "notic", "gate", "hitl",
                                   "signa"}),
    "otlp export": frozenset({"otlp", "otel", "span", "trace", "telem", "opent", "expor",
                              "obser"}),
    "conformance": frozenset({"confo", "level", "check"}),
}
"""Words that name each step, so that next_step can be matched to one."""


class Spans(Expect):
    """A list of spans, as a receiver decodes them (name, attributes, start_ns, end_ns)."""

    kind = "the spans of your run's trace (a list, such as trace_of(receiver.spans, run_id))"

    def clean(self, value: Any, where: str) -> list[Any]:
        """The spans, once each has what a span has."""
        fields = ("name", "attributes", "start_ns", "end_ns")
        if not isinstance(value, (list, tuple)) or not all(
                all(hasattr(s, f) for f in fields) for s in value):
            raise self.refuse(value, where)
        return list(value)


class Report(Expect):
    """The conformance report: the dict ``meshflow conformance ... --json`` prints."""

    kind = "the conformance report (json.loads of what --json printed)"

    def clean(self, value: Any, where: str) -> Mapping[str, Any]:
        """The report, once it has the fields of the documented schema."""
        if not isinstance(value, Mapping) or not {"level", "checks", "conformant"} <= set(value):
            raise self.refuse(value, where)
        return value


# --- exercise 1 --------------------------------------------------------------------------


@self_check(
    given={"ex1_result": OrNone(Instance(RunResult, "exercise 1's run", kind=RUN)),
           "ledger_dsn": Instance(str, "the PostgreSQL DSN the lesson was given",
                                  kind="text ('' when none was given)"),
           "ledger_path": Instance(str, "the lesson's own ledger file", kind="a file name")},
    answers={"ex1_ledger": Instance(ReplayLedger, "the ledger you moved your run to",
                                    kind="a ledger, such as ReplayLedger('...')"),
             "ex1_check": Instance(VerificationResult, "the verification of your run",
                                   kind="a verification (what verify_chain() returns)")})
def ledger_moved(ex1_result: RunResult | None, ledger_dsn: str, ledger_path: str,
                 ex1_ledger: ReplayLedger, ex1_check: VerificationResult) -> Verdict:
    """Exercise 1: the learner's run is in the ledger they chose (PostgreSQL when the lesson
    has a DSN, else a DuckDB file named for it), and the chain verifies."""
    wrong = _place_hint(ex1_ledger, ledger_dsn, ledger_path)
    if wrong:
        return hint(wrong)
    if ex1_result is None:
        return hint("ex1_result is not there yet: run the cell after your answer")
    if ex1_result.run_id not in set(ex1_ledger.runs().run_id):
        return hint("ex1_result is not in ex1_ledger: attach the pipeline to ex1_ledger "
                    "before the run (ex1_ledger.attach(...)), then run the cell again")
    entries = len(ex1_ledger.events(ex1_result.run_id))
    if ex1_check.entries_checked < entries:
        return hint(f"ex1_check looked at {plural(ex1_check.entries_checked, 'entry', 'entries')}"
                    ": verify ex1_ledger after your run, your run included")
    check = ex1_ledger.verify_chain(ex1_result.run_id)
    if not (ex1_check.valid and check.valid):
        return hint("the chain of ex1_ledger does not verify: read its report (ex1_check."
                    "report()) for the entry that is damaged")
    return passed(f"your run's {plural(entries, 'entry', 'entries')} are in the "
                  f"{ex1_ledger.store.title} ledger you chose, and its chain verifies")


def _place_hint(ledger: ReplayLedger, dsn: str, lesson_ledger: str) -> str | None:
    """Where to look when the ledger is not where this lesson's run should go."""
    title, location = ledger.store.title, str(ledger.location)
    if dsn and title != POSTGRES:
        return ("the lesson has a PostgreSQL DSN (ledger_dsn), but ex1_ledger is a "
                f"{title} file: give the ledger the DSN, as section 1 does")
    if title == POSTGRES:
        return None
    if not is_file_location(location):
        return ("ex1_ledger lives in memory and goes when the kernel does: give it a file "
                "name of your own")
    name = Path(location).name
    if name in DEFAULT_LEDGER_NAMES or Path(location).absolute() == Path(lesson_ledger).absolute():
        return (f"ex1_ledger is {name}, a file other runs use too: name a DuckDB file of your "
                "own for this exercise")
    return None


# --- exercise 2 --------------------------------------------------------------------------


@self_check(
    given={"ex2_result": OrNone(Instance(RunResult, "exercise 2's run", kind=RUN)),
           "inbox": Instance(WebhookInbox, "the lesson's webhook receiver",
                             kind="the webhook inbox (WebhookInbox)"),
           "ledger": LEDGER},
    answers={"my_name": Text("the name you decide with", max_words=4,
                             kind="your name in quotes, such as 'Ada Lovelace'"),
             "ex2_verdict": OneOf(("approve", "reject"), "your decision on the notice"),
             "decision_seq": Count("the seq of the ledger entry that records your decision")})
def webhook_decision(ex2_result: RunResult | None, inbox: WebhookInbox, ledger: ReplayLedger,
                     my_name: str, ex2_verdict: str, decision_seq: int) -> Verdict:
    """Exercise 2: a notice with a good signature reached the inbox, the learner decided
    it under their own name through the webhook channel, and found the entry recording it."""
    if ex2_result is None:
        return hint("ex2_result is not there yet: run the cell after the first answer cell")
    wrong = _notice_hint(ex2_result, inbox) or _decided_hint(ex2_result, my_name, ex2_verdict)
    if wrong:
        return hint(wrong)
    entries = {e.seq: e for e in ledger.events(ex2_result.run_id)}
    wrong = _seq_hint(entries.get(decision_seq), decision_seq)
    if wrong:
        return hint(wrong)
    verb = "approving" if ex2_verdict == "approve" else "rejecting"
    return passed(f"entry {decision_seq} of your run records '{my_name}' {verb} through "
                  f"{CHANNEL}, after a notice whose signature the inbox verified")


def _notice_hint(run: RunResult, inbox: WebhookInbox) -> str | None:
    """Where to look when no verified notice of the run reached the inbox."""
    if inbox.notices(run.run_id):
        return None
    if any(not e.verified for e in inbox.entries):
        return ("the inbox refused every notice of ex2_result (a bad signature): the run and "
                "the inbox must share MESHFLOW_WEBHOOK_SECRET; run exercise 2's cells again")
    return ("the inbox got no notice of ex2_result: run it with the approver of exercise 2's "
            "cell (inbox.approver()), whose notices go to inbox.url")


def _decided_hint(run: RunResult, name: str, verdict: str) -> str | None:
    """Where to look when the run's decision is not the learner's, through the webhook."""
    decision = run.decisions[0] if run.decisions else None
    if decision is None:
        return "ex2_result has no gate decision: run exercise 2's run cell again"
    if decision.channel != CHANNEL:
        return (f"ex2_result was decided through {decision.channel}, not the inbox: decide "
                "with inbox.decide(...) as exercise 2's run cell does")
    if decision.reviewer != name or decision.approved != (verdict == "approve"):
        return ("ex2_result's decision is not the one in your answer cell now (you changed "
                "my_name or ex2_verdict after the run): run the run cell again")
    ended = RunStatus.COMPLETED if decision.approved else RunStatus.REJECTED_AT_GATE
    if run.status is not ended:
        return f"ex2_result ended {run.status.value}: run exercise 2's run cell again"
    return None


def _seq_hint(entry: MeshEvent | None, seq: int) -> str | None:
    """Where to look when entry ``seq`` is not the one that records the decision."""
    if entry is None:
        return (f"your run has no entry {seq}: list ledger.events(ex2_result.run_id), or the "
                "table above, and read each entry's seq")
    if entry.type in DECISIONS:
        return None
    if entry.type is EventType.GATE_PAUSE:
        return (f"entry {seq} is where the gate paused and the notice was sent: the decision "
                "is recorded in a later entry")
    return f"entry {seq} is a {entry.type.value}: look for the entry whose payload names you"


# --- exercise 3 --------------------------------------------------------------------------


@self_check(
    given={"trace": Spans("the spans of the production run's trace")},
    answers={"slowest_agent": Text("the node of the slowest invoke_agent span", max_words=3,
                                   kind="a node's name in quotes, such as 'researcher'"),
             "slowest_tokens": Count(f"its {OUTPUT_TOKENS}")})
def slowest_agent_span(trace: list[Any], slowest_agent: str, slowest_tokens: int) -> Verdict:
    """Exercise 3: the learner found the agent span that took longest, and read one of its
    gen_ai attributes from that span itself."""
    agents = [s for s in trace if is_agent_span(s)]
    if not agents:
        return hint("trace holds no invoke_agent span: run sections 4 and 5 again, the run "
                    "and the wait for its spans")
    longest = max(_duration(s) for s in agents)
    slowest = [s for s in agents if _duration(s) >= longest - TIE_NS]
    said = slowest_agent.strip().removeprefix(AGENT_PREFIX).strip()
    named = [s for s in slowest if _node(s) == said]
    if not named:
        return hint(_slowest_hint(trace, agents, said))
    span = next((s for s in named if s.attributes.get(OUTPUT_TOKENS) == slowest_tokens), None)
    if span is None:
        return hint(f"slowest_tokens is not the {OUTPUT_TOKENS} of that span: read the "
                    "attributes of the slowest span itself (a node that ran twice has two "
                    "spans)")
    return passed(f"{span.name} took {_duration(span) / 1e9:.3f} s, the longest of "
                  f"{plural(len(agents), 'agent span')}, and wrote {slowest_tokens} output "
                  "tokens")


def _duration(span: Any) -> int:
    """How long a span took, in nanoseconds."""
    return span.end_ns - span.start_ns


def _node(span: Any) -> str:
    """The node an agent span ran: its gen_ai.agent.name, else the end of its name."""
    return str(span.attributes.get(AGENT_ATTRIBUTE, str(span.name).removeprefix(AGENT_PREFIX)))


def _slowest_hint(trace: list[Any], agents: list[Any], said: str) -> str:
    """Where to look when the named node is not the slowest span's."""
    names = {_node(s) for s in agents}
    if said and any(not is_agent_span(s) and (said == s.name or said in str(s.name).split())
                    for s in trace):
        return ("that span is not an invoke_agent span (the root covers the whole run, a "
                "gate waits for a person): compare the invoke_agent spans only")
    if said not in names:
        return (f"{said!r} is not the name of an agent span in your trace: read the "
                "gen_ai.agent.name column of the trace table")
    return (f"invoke_agent {said} is not the slowest: sort the agent spans by duration "
            "(end_ns - start_ns), longest first")


# --- exercise 4 --------------------------------------------------------------------------

CHECKLIST = MappingOf(Pair(OneOf(STATUSES), Text(min_words=4, min_distinct=3),
                           names=("status", "evidence"),
                           example="('not yet', 'where the evidence is')"),
                      "your checklist, each step 'done' or 'not yet'", required=STEPS,
                      missing="fill in every step: {}")


@self_check(
    given={"result": Instance(RunResult, "the production run of section 4", kind=RUN),
           "pipeline": Instance(WorkflowDefinition, "the production pipeline",
                                kind="a workflow"),
           "ledger": LEDGER,
           "inbox": Instance(WebhookInbox, "the lesson's webhook receiver",
                             kind="the webhook inbox (WebhookInbox)"),
           "trace": Spans("the spans of the production run's trace"),
           "report": Report("the conformance report of section 6")},
    answers={"checklist": CHECKLIST,
             "next_step": Text("the step you would do next, and why", min_words=8,
                               min_distinct=5)})
def production_ready(result: RunResult, pipeline: WorkflowDefinition, ledger: ReplayLedger,
                     inbox: WebhookInbox, trace: list[Any], report: Mapping[str, Any],
                     checklist: dict[str, tuple[str, str]], next_step: str) -> Verdict:
    """Exercise 4: each step marked as the evidence of this session says it is, each with
    its own words, and a next step that is one still to do."""
    unknown = sorted(set(checklist) - set(STEPS))
    if unknown:
        return hint(f"checklist has {', '.join(map(repr, unknown))}, which is not one of the "
                    f"steps: keep the keys {', '.join(map(repr, STEPS))}")
    twice = first_duplicate([evidence for _, evidence in checklist.values()])
    if twice:
        keys = list(checklist)
        return hint(f"the evidence of {keys[twice[1]]!r} repeats that of {keys[twice[0]]!r}: "
                    "say for each step what shows it")
    actual = evidence(result, pipeline, ledger, inbox, trace, report)
    wrong = [step for step, (status, _) in checklist.items() if (status == "done") != actual[step]]
    if wrong:
        return hint(f"checklist[{wrong[0]!r}] does not match what this session did: "
                    f"{STEPS[wrong[0]]}")
    left = [step for step, done in actual.items() if not done]
    wrong = _next_hint(next_step, left)
    if wrong:
        return hint(wrong)
    done = len(STEPS) - len(left)
    return passed(f"{done} of {len(STEPS)} steps done, each as its evidence shows"
                  + (f"; {plural(len(left), 'step')} to go, and you know which comes next"
                     if left else ""))


def evidence(result: RunResult, pipeline: WorkflowDefinition, ledger: ReplayLedger,
             inbox: WebhookInbox, trace: list[Any], report: Mapping[str, Any]) -> dict[str, bool]:
    """Which steps this session has done, each from its evidence: the agents of the
    pipeline, where the run's verified ledger is, the notice and decision of its gate, its
    spans, the conformance report."""
    decision = result.decisions[0] if result.decisions else None
    level = report.get("level")
    return {
        "live agents": bool(estimate_cost(pipeline, result.task).calls),
        "postgres ledger": ledger.store.title == POSTGRES
        and result.run_id in set(ledger.runs().run_id)
        and ledger.verify_chain(result.run_id).valid,
        "approval webhook": bool(inbox.notices(result.run_id)) and decision is not None
        and decision.channel == CHANNEL,
        "otlp export": any(s.attributes.get(RUN_ATTRIBUTE) == result.run_id for s in trace),
        "conformance": isinstance(level, int) and level >= 3 and report.get("conformant") is True,
    }


def _next_hint(text: str, left: list[str]) -> str | None:
    """Where to look when next_step is not one of the steps still to do."""
    if not left:
        return None
    said = stems(text)
    named = [step for step, words in STEP_STEMS.items() if said & words]
    if not named:
        return ("next_step should name a step of the checklist (in its words) and say why it "
                "comes next")
    if not set(named) & set(left):
        return "next_step names a step you have done already: pick one still 'not yet'"
    return None
