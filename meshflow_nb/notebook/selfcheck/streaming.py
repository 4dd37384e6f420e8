"""Lesson 05's self-checks: each exercise judged against the learner's own stream, run and
ledger.

The names the checks read are the lesson's: what its cells made (``ex1_events``,
``ex2_events``, ``ledger``, ``ex3_result``, ``node_counts``) and the answer variables
(``type_counts``, ``final_output_event``, ``final_output_field``, ``cost_threshold``,
``count_per_node``). Two givens are the learner's work all the same: ``ex2_events`` is what
their consumer returned, ``node_counts`` what their subscriber counted, so a wrong one is
judged (a HINT about the code), not waited for.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ...engine.results import RunResult
from ...errors import shown
from ...events import EventType, MeshEvent, plural
from ...ledger.errors import LedgerError
from ...ledger.replay import ReplayLedger
from ...model.status import RunStatus
from .capstone import _field_name, _output_said
from .expect import Count, Dollars, Expect, Instance, ListOf, MappingOf, Text, Unfit
from .framework import Verdict, hint, passed, self_check

EVENT_TYPES = frozenset(t.value for t in EventType)
"""Every type name a run can emit (``EventType``'s values)."""

EVENT = Instance(MeshEvent, kind="an event (a MeshEvent)")
EVENTS = ListOf(EVENT, min_len=1, kind="a list of events")
ONE_WORD = "one name in quotes, such as 'seq'"
COURSE_NAMES = {"agent_completed": "node_complete", "run_completed": "run_complete"}
"""The course text's names of two event types, and this toolkit's."""


class Name(Text):
    """One name in quotes (a type, a field): one word, and not a screenful of one."""

    kind = ONE_WORD
    max_chars = 40

    def __init__(self, what: str) -> None:
        super().__init__(what, max_words=1)

    def clean(self, value: Any, where: str) -> str:
        """The name, stripped, once it is one short word that is not filler."""
        if isinstance(value, str) and len(value.strip()) > self.max_chars:
            raise Unfit(f"{where} is {len(value.strip())} characters long: it should be "
                        f"{self.kind}")
        return super().clean(value, where)


class EventsTaken(ListOf):
    """What a learner's consumer returned: the events it took, where None is its mistake
    (a missing ``return``), not an unrun cell."""

    def unset(self, value: Any) -> bool:
        """None is judged, not waited for: the function ran and returned nothing."""
        return False

    def clean(self, value: Any, where: str) -> list[Any]:
        """The events, or a HINT naming the consumer's missing return."""
        if value is None:
            raise Unfit(f"{where} is None: stop_at_cost returned nothing; keep its last line, "
                        "return taken")
        return super().clean(value, where)


class Subscriber(Expect):
    """A function (or any callable object) that takes one event."""

    kind = "a function that takes one event, def count_per_node(event): ..."

    def clean(self, value: Any, where: str) -> Callable[..., Any]:
        """The callable itself; a class is not yet a subscriber (make one first)."""
        if isinstance(value, type) or not callable(value):
            raise self.refuse(value, where)
        return value


class NodeCounts(Expect):
    """A dict of node id to a count; events of the run itself may be counted under None."""

    kind = "a dict in curly brackets {...}"

    def clean(self, value: Any, where: str) -> tuple[dict[str, int], int | None]:
        """The counts by node, and the count under None (None when there is no such key)."""
        if not isinstance(value, Mapping):
            raise self.refuse(value, where)
        by_node = {key: count for key, count in value.items() if key is not None}
        run_level = value.get(None)
        counts = MappingOf(Count()).clean(by_node, where)
        return counts, None if run_level is None else Count().clean(run_level, f"{where}[None]")


# --- exercise 1: label every event ---------------------------------------------------


@self_check(
    given={"ex1_events": ListOf(EVENT, "the events exercise 1 streamed", min_len=1,
                                kind=EVENTS.kind)},
    answers={"type_counts": MappingOf(Count(), "how many events of each type your stream has"),
             "final_output_event": Name("the type of the event that carries the final output"),
             "final_output_field": Name("the field of that event that holds it")})
def event_labels(ex1_events: list[MeshEvent], type_counts: dict[str, int],
                 final_output_event: str, final_output_field: str) -> Verdict:
    """Exercise 1: the learner labelled the stream's events by type (a count per type) and
    found the event and the field that carry the run's final output."""
    events = ex1_events
    wrong = _whole_stream_hint(events, "exercise 1's stream cell") or _counts_hint(
        Counter(e.type.value for e in events), type_counts) or _final_event_hint(
        final_output_event) or _final_field_hint(events[-1], _field_name(final_output_field))
    if wrong:
        return hint(wrong)
    kinds = len({e.type for e in events})
    return passed(f"{plural(len(events), 'event')} of {plural(kinds, 'type')}, each labelled; "
                  f"{_output_said(events[-1])}")


def _whole_stream_hint(events: list[MeshEvent], cell: str) -> str | None:
    """Where to look when the events are not one whole run, from run_start to run_complete."""
    if len({e.run_id for e in events}) > 1:
        return f"the events come from more than one run: run {cell} again (it starts a " \
               "fresh list)"
    if events[0].type is not EventType.RUN_START or events[-1].type is not EventType.RUN_COMPLETE:
        return f"the stream is not one whole run (run_start first, run_complete last): run " \
               f"{cell} to the end of the run"
    return None


def _counts_hint(real: Counter[str], answer: dict[str, int]) -> str | None:
    """Where to look when ``answer`` is not the stream's count of each type."""
    if not answer:
        return "type_counts is empty: give each type of event in your stream its count"
    labels = {key: key.strip().lower() for key in answer}
    unknown = sorted(key for key, label in labels.items() if label not in EVENT_TYPES)
    if unknown:
        return f"type_counts[{shown(unknown[0])}]: {_not_a_type(labels[unknown[0]])}"
    twice = next((key for key, other in itertools.combinations(answer, 2)
                  if labels[key] == labels[other]), None)
    if twice is not None:
        return f"type_counts names the type {shown(labels[twice])} twice: give each type one entry"
    counted = Counter({labels[key]: count for key, count in answer.items() if count})
    extra = sorted(counted.keys() - real.keys())
    if extra:
        return f"your stream has no {extra[0]} event: count only the types in its table"
    missing = real.keys() - counted.keys()
    if missing:
        return (f"type_counts leaves out {plural(len(missing), 'type')} of event that your "
                "stream has: compare its keys with the type column of the table")
    off = sorted(t for t in real if counted[t] != real[t])
    if off:
        return f"the count of {off[0]} is off: count its rows in the table again"
    return None


def _final_event_hint(answer: str) -> str | None:
    """Where to look when ``answer`` is not the event that carries the final output."""
    name = _field_name(answer)
    if name == EventType.RUN_COMPLETE.value:
        return None
    if name not in EVENT_TYPES:
        return f"final_output_event: {shown(answer)}: {_not_a_type(name)}"
    if name == EventType.NODE_COMPLETE.value:
        return ("final_output_event: node_complete carries one node's output each time a node "
                "finishes; look for the event that comes once, for the whole run")
    if name == EventType.GATE_PAUSE.value:
        return ("final_output_event: gate_pause carries the draft the reviewer reads, before "
                "anything is published; look further down the stream")
    return (f"final_output_event: {name} carries no final output; look at which events have "
            "an output that is not null, and which of them comes once, for the whole run")


def _not_a_type(name: str) -> str:
    """Why ``name`` is no type of event: a name of the course text, or none at all."""
    if name in COURSE_NAMES:
        return (f"that is the course text's name; this toolkit calls it {COURSE_NAMES[name]} "
                "(section 1)")
    return "that is not a type of event; the types are the values of EventType (section 1)"


def _final_field_hint(last: MeshEvent, field: str) -> str | None:
    """Where to look when ``field`` is not the field of the final event holding the output."""
    if field == "output":
        return None
    if field in last.payload:
        return (f"final_output_field: {shown(field)} is inside the payload, which holds the run's "
                "status and sums; the output is a field of the event itself")
    if field in last.to_dict():
        return (f"final_output_field: {shown(field)} is a field of that event, but not the one "
                "with the output: read what each field holds (ex1_events[-1].to_dict())")
    return (f"final_output_field: {shown(field)} is not a field of an event: read the keys of "
            "the last event's JSON line (ex1_events[-1].to_dict())")


# --- exercise 2: stop the run at a cost threshold ---------------------------------------


@self_check(
    given={"ex2_events": EventsTaken(EVENT, "the events your consumer took", kind=EVENTS.kind),
           "ledger": Instance(ReplayLedger, "the lesson's ledger",
                              kind="the lesson's ledger (a ReplayLedger)")},
    answers={"cost_threshold": Dollars(
        "your threshold in USD", zero="which the run passes before it spends anything")})
def cost_stop(ex2_events: list[MeshEvent], ledger: ReplayLedger,
              cost_threshold: float) -> Verdict:
    """Exercise 2: the learner's consumer left the stream at the first event that took the
    run's cost past their threshold, and the ledger shows the run cancelled there."""
    if not ex2_events:
        return hint("stop_at_cost took no event: keep taken.append(event) as the first line "
                    "of its loop")
    if len({e.run_id for e in ex2_events}) > 1:
        return hint("ex2_events holds events of more than one run: run exercise 2's run cell "
                    "again")
    try:
        recorded = ledger.events(ex2_events[0].run_id)
    except LedgerError:
        return hint("the ledger has no record of your run: run exercise 2's run cell again, "
                    "as it is (it streams the pipeline attached to ledger)")
    stop = ex2_events[-1].seq
    wrong = _stop_hint(recorded, stop, cost_threshold) or _went_on_hint(recorded, stop)
    if wrong:
        return hint(wrong)
    at = next((e for e in recorded if e.seq == stop), ex2_events[-1])
    return passed(f"you left the stream at seq {stop} ({at.type.value} of {at.node_id}), the "
                  f"event that took the cost to {_usd(_spent(recorded, stop))}, past "
                  f"{_usd(cost_threshold)}; {_how_it_ended(recorded)}")


def _spent(events: list[MeshEvent], through: int) -> float:
    """The run's cost over its events up to seq ``through``."""
    return sum(e.cost_usd or 0.0 for e in events if e.seq <= through)


def _passed_at(events: list[MeshEvent], threshold: float) -> MeshEvent | None:
    """The first event after which the run's cost is at or past ``threshold`` (None: never)."""
    spent = 0.0
    for event in events:
        spent += event.cost_usd or 0.0
        if spent >= threshold:
            return event
    return None


def _stop_hint(recorded: list[MeshEvent], stop: int, threshold: float) -> str | None:
    """Where to look when the consumer did not leave at the event that passed the threshold."""
    end = recorded[-1]
    crossing = _passed_at(recorded, threshold)
    took_all = stop == end.seq and end.type is EventType.RUN_COMPLETE
    if crossing is None and (took_all or end.payload.get("status") != RunStatus.CANCELLED.value):
        return (f"your run ended {end.payload.get('status')} at "
                f"{_usd(_spent(recorded, end.seq))} without its cost passing cost_threshold: "
                "choose a smaller threshold")
    if took_all:
        return ("your consumer took the whole run, through run_complete: leave the loop once "
                "the cost so far passes cost_threshold")
    if crossing is None or stop < crossing.seq:
        return (f"your consumer left the stream at seq {stop}, when the cost so far was "
                f"{_usd(_spent(recorded, stop))}, not yet past cost_threshold: check the total "
                "right after adding each event's cost_usd")
    if stop > crossing.seq:
        return (f"your consumer left the stream {plural(stop - crossing.seq, 'event')} after the "
                "cost passed cost_threshold: compare the running total with the threshold "
                "after every event, and leave at once")
    return None


def _went_on_hint(recorded: list[MeshEvent], stop: int) -> str | None:
    """Where to look when the run kept spending after the consumer's last event and was
    not cancelled: the consumer trimmed its list instead of leaving the loop."""
    status = recorded[-1].payload.get("status")
    spent_after = [e for e in recorded if e.seq > stop and e.cost_usd]
    if status == RunStatus.CANCELLED.value or not spent_after:
        return None
    return (f"the ledger says your run went on after seq {stop} and ended {status}: leave the "
            "loop (break or return inside the for), not only the list")


def _how_it_ended(recorded: list[MeshEvent]) -> str:
    """What the ledger says of the run's end, in the PASS."""
    status = recorded[-1].payload.get("status")
    done = plural(_completed(recorded), "node execution")
    if status == RunStatus.CANCELLED.value:
        return f"the ledger shows the run cancelled there, after {done}"
    return (f"the run had no paid work left and ended {status} before your cancel reached it "
            f"({done}); a lower threshold shows the cancel in the ledger")


def _completed(events: list[MeshEvent]) -> int:
    """How many node executions completed among ``events``."""
    return sum(e.type is EventType.NODE_COMPLETE for e in events)


def _usd(amount: float) -> str:
    """An amount as the lesson prints it: ``$0.0398``."""
    return f"${amount:.4f}"


# --- exercise 3: a subscriber that counts events per node --------------------------------


@self_check(
    given={"ex3_result": Instance(RunResult, "exercise 3's run",
                                  kind="the result of a run (a RunResult)"),
           "node_counts": NodeCounts("what your subscriber counted, by node")},
    answers={"count_per_node": Subscriber("your subscriber, a function of one event")})
def node_counter(ex3_result: RunResult, node_counts: tuple[dict[str, int], int | None],
                 count_per_node: Callable[..., Any]) -> Verdict:
    """Exercise 3: the learner's subscriber counted every event of the run under its node."""
    counts, run_level = node_counts
    real = Counter(e.node_id for e in ex3_result.events if e.node_id is not None)
    outside = sum(e.node_id is None for e in ex3_result.events)
    wrong = _node_counts_hint(real, counts) or _run_level_hint(outside, run_level)
    if wrong:
        return hint(wrong)
    busiest = max(real, key=lambda node: (real[node], node))
    return passed(f"{plural(sum(real.values()), 'event')} counted over "
                  f"{plural(len(real), 'node')}, the most for {busiest} ({real[busiest]}); "
                  f"{plural(outside, 'event')} of the run itself belong to no node")


def _node_counts_hint(real: Counter[str], counts: dict[str, int]) -> str | None:
    """Where to look when ``counts`` is not the run's events per node."""
    if not any(counts.values()):
        return ("node_counts is empty: your subscriber counted nothing. Look for warnings "
                "under the run cell: a subscriber that raises is logged, and the run goes on")
    as_types = [key for key in counts if key in EVENT_TYPES]
    if as_types and not counts.keys() & real.keys():
        return "node_counts is keyed by event type: count each event under its node_id instead"
    unknown = sorted(counts.keys() - real.keys())
    if unknown:
        return (f"node_counts[{shown(unknown[0])}]: no event of your run is about that node; use "
                "each event's node_id as the key")
    if all(counts.get(node) == 2 * n for node, n in real.items()):
        return ("every count is twice what the run emitted: your subscriber received each "
                "event twice (subscribed twice?) or node_counts kept an earlier run's counts")
    missing = sorted(real.keys() - counts.keys())
    if missing:
        return (f"node_counts has no entry for {plural(len(missing), 'node')} of your run "
                "(each event with a node_id counts): did your subscriber raise on some events? "
                "Look for warnings under the run cell")
    off = sorted(node for node in real if counts[node] != real[node])
    if off:
        return (f"the count of {off[0]} is off: every event about a node counts, whatever its "
                "type (node_start, node_complete, gate events, ...)")
    return None


def _run_level_hint(outside: int, run_level: int | None) -> str | None:
    """Where to look when the count under None is not the run's own events."""
    if run_level is None or run_level == outside:
        return None
    return ("node_counts[None] counts the events of the run itself (they have no node_id), "
            "and that count is off: leave them out, or count each of them once")
