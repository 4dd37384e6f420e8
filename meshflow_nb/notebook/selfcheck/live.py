"""Lesson 15's self-checks: each exercise judged against the learner's own runs, ledgers
and local servers.

The names the checks read are the lesson's: what its cells made (``preview``,
``ex2_result``, ``ex2_left``, ``ex3_recorded``, ``ex3_ledger``, ``ex3_server``,
``ex3_calls``, ``ex4_result``) and the answer variables (``capstone_bound``,
``priciest_node``, ``my_fault``, ``ex3_replay_ledger``, ``ex3_replayed``,
``lesson_model``). A run that depends on an answer is made by the cell after the answer
cell, so before the learner answers it is None: `OrNone` lets such a value through, and
the check asks for the answer first.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...agents.estimate import CallEstimate, CostEstimate
from ...agents.pricing import current_prices
from ...engine.results import RunResult
from ...events import EventType, plural
from ...ledger.replay import ReplayLedger
from ...pipelines.recordings import ROW_COLUMNS, replay_rows
from .expect import RUN, Count, Dollars, Expect, Instance, ListOf, OrNone, Text
from .framework import Verdict, hint, passed, self_check

PRINTED_DIGITS = 4
"""The preview prints its bound to four decimals: an answer that close is the bound."""

FAULT_FIELDS = ("kind", "times", "retry_after_ms", "retry_after_s", "delay_s", "match")
"""What a `Fault` has (the checks read it by its fields: the notebook layer does not
import the local server)."""

ERROR_MARKS = {"rate_limit": "429", "overloaded": "529", "unauthorized": "401",
               "forbidden": "403", "not_found": "404", "stream_error": "broke off"}
"""What a failed call's error says for each kind of fault: how a check tells whose
fault a run met."""

WANTED_RETRIES = 2

class FaultLike(Expect):
    """A `Fault` of the local server, known by its fields."""

    kind = "a fault, such as Fault('slow', delay_s=0.1)"

    def clean(self, value: Any, where: str) -> Any:
        """The fault itself, when it has every field a Fault has."""
        if isinstance(value, type) or not all(hasattr(value, f) for f in FAULT_FIELDS):
            raise self.refuse(value, where)
        return value


class ServerLike(Expect):
    """A local Messages API server, known by the requests it keeps."""

    kind = "a local server (a LocalMessagesServer)"

    def clean(self, value: Any, where: str) -> Any:
        """The server itself, when it lists the requests it received."""
        if isinstance(value, type) or not isinstance(getattr(value, "requests", None), list):
            raise self.refuse(value, where)
        return value


# --- exercise 1: the cost preview ---------------------------------------------------


@self_check(
    given={"preview": Instance(CostEstimate, "section 2's cost preview",
                               kind="a cost preview (what estimate_cost returns)")},
    answers={"capstone_bound": Dollars("the most the capstone can cost, in USD"),
             "priciest_node": Text("the node that can cost the most", max_words=1,
                                   kind="one node id in quotes, such as 'analyst_a'")})
def cost_bound(preview: CostEstimate, capstone_bound: float, priciest_node: str) -> Verdict:
    """Exercise 1: the bound the preview printed, and the node whose row is dearest."""
    if not preview.calls:
        return hint("preview has no live agents (it says the run costs nothing): run the "
                    "lesson from its first cell, which unsets MESHFLOW_MOCK")
    wrong = _bound_hint(preview, capstone_bound) or _priciest_hint(preview, priciest_node)
    if wrong:
        return hint(wrong)
    top = _priciest(preview)
    return passed(f"at most ${preview.cost_usd:.{PRINTED_DIGITS}f} for the whole run; "
                  f"{top.node_id} can cost the most: up to {plural(top.calls, 'call')} of up "
                  f"to {top.tokens_out // top.calls} tokens out each")


def _close(answer: float, value: float) -> bool:
    """``answer`` is ``value`` as the preview prints it (four decimals), or closer."""
    return abs(answer - value) <= 0.5 * 10 ** -PRINTED_DIGITS + 1e-12


def _bound_hint(preview: CostEstimate, answer: float) -> str | None:
    """Where to look when capstone_bound is not the preview's bound (None when it is)."""
    if _close(answer, preview.cost_usd):
        return None
    if any(_close(answer, row.cost_usd) for row in preview.calls):
        return ("capstone_bound: that is one node's row of the preview table; the bound is "
                "for the whole run")
    if answer == sum(row.calls for row in preview.calls):
        return "capstone_bound: that is the number of model calls; the bound is in USD"
    if _close(answer / 100, preview.cost_usd):
        return "capstone_bound: that looks like cents; the preview gives USD"
    return ("capstone_bound: read the first line section 2 printed, 'Cost preview: at most "
            "$...', before anything was called")


def _priciest(preview: CostEstimate) -> CallEstimate:
    """The preview's dearest row."""
    return max(preview.calls, key=lambda row: row.cost_usd)


def _priciest_hint(preview: CostEstimate, answer: str) -> str | None:
    """Where to look when priciest_node is not the dearest row (None when it is)."""
    nodes = {row.node_id.lower(): row for row in preview.calls}
    chosen = nodes.get(answer.strip().strip("'\"").lower())
    if chosen is None:
        return (f"priciest_node: {answer!r} is not a node of the preview: its node_id column "
                "names each one")
    if chosen is not _priciest(preview):
        return ("priciest_node: compare the cost_usd column of the preview table, and see "
                "how many calls each node may make")
    return None


# --- exercise 2: a fault retried twice ----------------------------------------------


@self_check(
    given={"ex2_result": OrNone(Instance(RunResult, "the run with your fault", kind=RUN)),
           "ex2_left": OrNone(ListOf(FaultLike(), kind="a list of faults"))},
    answers={"my_fault": FaultLike("a Fault(...) that makes one node retry exactly twice")})
def retry_fault(ex2_result: RunResult | None, ex2_left: list[Any] | None,
                my_fault: Any) -> Verdict:
    """Exercise 2: the learner's fault made one node fail twice, the breaker retried it
    twice, and the run completed."""
    if ex2_result is None:
        return hint("run the cell after your answer: it injects my_fault and runs the "
                    "pipeline (ex2_result is None)")
    if _met_another_fault(ex2_result, my_fault):
        return hint("ex2_result comes from another fault than my_fault: run the cell after "
                    "your answer again")
    retries = Counter(e.node_id for e in ex2_result.events if e.type is EventType.NODE_RETRY)
    wrong = _failed_hint(ex2_result, retries) or _retries_hint(retries, ex2_left or [], my_fault)
    if wrong:
        return hint(wrong)
    node = next(iter(retries))
    pauses = [e.payload.get("delay_s") for e in ex2_result.events
              if e.type is EventType.NODE_RETRY]
    said = " and ".join(f"{p:g} s" for p in pauses if isinstance(p, (int, float)))
    return passed(f"{node} failed twice ({my_fault.kind}), was retried twice after pauses of "
                  f"{said}, and the run completed")


def _met_another_fault(run: RunResult, fault: Any) -> bool:
    """The run's failed calls say another kind of fault than ``fault`` (a stale run)."""
    errors = [str(e.payload.get("error", "")) for e in run.events
              if e.type in (EventType.NODE_RETRY, EventType.NODE_FAILED)]
    if not errors:
        return False
    mark = ERROR_MARKS.get(str(fault.kind))
    marks = [m for m in ERROR_MARKS.values() if any(m in error for error in errors)]
    return bool(marks) and mark not in marks


def _failed_hint(run: RunResult, retries: Counter) -> str | None:
    """Where to look when the run did not complete (None when it did)."""
    if run.ok:
        return None
    failed = next((e for e in run.events if e.type is EventType.NODE_FAILED), None)
    error = str(failed.payload.get("error", "")) if failed else str(run.error)
    name = error.split(":", 1)[0]
    node = failed.node_id if failed else "a node"
    if not retries:
        return (f"{node} failed at once with {name}, and was not retried: the breaker retries "
                "only errors that another attempt could get past (section 4)")
    attempts = retries[node] + 1
    return (f"{node} failed after {plural(attempts, 'attempt')}: the breaker makes at most "
            "1 + max_retries of them, and your fault failed every one")


def _retries_hint(retries: Counter, left: list[Any], fault: Any) -> str | None:
    """Where to look when the completed run's retries are not two of one node."""
    if left and not retries:
        return ("my_fault hit no request of the pipeline: the server still held it after the "
                "run (its kind, or its match, fits none of the requests)")
    if not retries:
        return (f"no node retried: a {fault.kind!r} fault does not make the call fail, so "
                "there is nothing to retry")
    if len(retries) > 1:
        return "more than one node retried: make your fault hit only one node's requests"
    count = next(iter(retries.values()))
    if count != WANTED_RETRIES:
        return (f"{plural(count, 'retry', 'retries')}, and two are asked for: read the fields "
                "of Fault (help(Fault)): which one says how many requests it hits?")
    return None


# --- exercise 3: replay to the same ledger ------------------------------------------


@self_check(
    given={"ex3_recorded": Instance(RunResult, "the recorded run", kind=RUN),
           "ex3_ledger": Instance(ReplayLedger, "the recording's ledger",
                                  kind="a ledger (a ReplayLedger)"),
           "ex3_server": ServerLike("the exercise's local server"),
           "ex3_calls": Count("the requests the server had after the recording")},
    answers={"ex3_replay_ledger": Instance(ReplayLedger, "the replay's own ledger",
                                           kind="a ledger (what fresh_ledger() returns)"),
             "ex3_replayed": Instance(RunResult, "the replayed run", kind=RUN)})
def replay_equal(ex3_recorded: RunResult, ex3_ledger: ReplayLedger, ex3_server: Any,
                 ex3_calls: int, ex3_replay_ledger: ReplayLedger,
                 ex3_replayed: RunResult) -> Verdict:
    """Exercise 3: the replay answered from the cassette (no request reached the server)
    and its own ledger holds node rows equal to the recording's."""
    if not ex3_recorded.ok:
        return hint("the recording did not complete: run the exercise's first cell again")
    wrong = _replay_run_hint(ex3_replayed, ex3_server, ex3_calls) or _ledger_hint(
        ex3_ledger, ex3_replay_ledger, ex3_replayed)
    if wrong:
        return hint(wrong)
    recorded = replay_rows(ex3_ledger, ex3_recorded.run_id)
    replayed = replay_rows(ex3_replay_ledger, ex3_replayed.run_id)
    different = _first_difference(recorded, replayed)
    if different:
        return hint(different)
    return passed(f"{plural(len(replayed), 'node row')} equal to the recording's, and no "
                  "request reached the server: the cassette answered every call")


def _replay_run_hint(run: RunResult, server: Any, calls: int) -> str | None:
    """Where to look when the replayed run failed or called the server (None if not)."""
    if not run.ok:
        error = str(run.error)
        if "ReplayMissError" in error:
            return ("your replay asked for something the recording does not hold: "
                    "ex3_replayed.error names the first field that differs from it")
        return (f"your replay failed ({error.split(': ', 2)[1] if ': ' in error else error}): "
                "print ex3_replayed.error")
    reached = len(server.requests) - calls
    if reached > 0:
        return (f"your replay reached ex3_server ({plural(reached, 'request')} after the "
                "recording): a replay answers from the cassette, with no server to call "
                "(section 5)")
    return None


def _ledger_hint(recording: ReplayLedger, ledger: ReplayLedger, run: RunResult) -> str | None:
    """Where to look when the replay's ledger is not one of its own holding the run."""
    if str(ledger.location) == str(recording.location):
        return ("ex3_replay_ledger is the recording's own ledger: replay into a fresh one "
                "(fresh_ledger())")
    if replay_rows(ledger, run.run_id).empty:
        return ("ex3_replay_ledger holds no entry of ex3_replayed: attach it to the pipeline "
                "(ex3_replay_ledger.attach(...)) before the run")
    return None


def _first_difference(recorded: Any, replayed: Any) -> str | None:
    """The first way the replay's rows differ from the recording's, or None."""
    if len(recorded) != len(replayed) or list(recorded.node_id) != list(replayed.node_id):
        return ("your replay ran other nodes than the recording: run the same pipeline, "
                "brief_pipeline(), on the same task")
    for column in ROW_COLUMNS:
        for n, (was, now) in enumerate(zip(recorded[column], replayed[column], strict=True)):
            if was != now and not (_is_blank(was) and _is_blank(now)):
                return (f"the replay's {column} of {replayed.node_id[n]} is not the "
                        "recording's: a replay must answer from ex3_cassette")
    return None


def _is_blank(value: Any) -> bool:
    """A missing value in a ledger column (None, NaN, pandas' NA)."""
    try:
        return value is None or bool(value != value)
    except TypeError:  # pandas' NA refuses to be a bool
        return True


# --- exercise 4: off the retired model ----------------------------------------------


@self_check(
    given={"ex4_result": OrNone(Instance(RunResult, "the run on lesson_model", kind=RUN))},
    answers={"lesson_model": Text("the model id the run should use", max_words=1,
                                  kind="one model id in quotes")})
def model_moved(ex4_result: RunResult | None, lesson_model: str) -> Verdict:
    """Exercise 4: lesson_model is a current model of the price table, and the run on it
    completed with every agent answering on it."""
    wrong = _model_hint(lesson_model)
    if wrong:
        return hint(wrong)
    if ex4_result is None:
        return hint("run the cell after your answer: it runs brief_pipeline(model="
                    "lesson_model) (ex4_result is None)")
    used = {e.payload.get("model") for e in ex4_result.events
            if e.type is EventType.NODE_COMPLETE and e.payload.get("model")}
    failed_on_it = repr(lesson_model) in str(ex4_result.error)
    if (used and used != {lesson_model}) or (not ex4_result.ok and not failed_on_it):
        return hint("ex4_result is a run on another model than lesson_model: run the cell "
                    "after your answer again")
    if not ex4_result.ok or not used:
        return hint(f"your run on {lesson_model} ended {ex4_result.status.value}: print "
                    "ex4_result.error")
    return passed(f"every agent answered on {lesson_model}, a current model: one setting "
                  "moved the whole pipeline")


def _model_hint(model: str) -> str | None:
    """Where to look when ``model`` is not a current model the API serves (None if it is)."""
    prices = current_prices()
    price = prices.get(model)
    if price is None:
        return (f"lesson_model: {model!r} is not in the price table: section 6's table "
                "lists every id it knows")
    if price.input_usd_per_mtok == price.output_usd_per_mtok == 0:
        return (f"lesson_model: {model} is the mock agents' price row, not a model the API "
                "serves")
    if price.status == "retired":
        return (f"lesson_model: {model} is retired, and the API no longer serves it: the "
                "error of your run names what replaces it")
    if price.status != "current":
        return (f"lesson_model: {model} still answers, but the price table lists it as "
                f"{price.status}: move the course to a model whose status is current")
    return None


__all__ = ["FaultLike", "ServerLike", "cost_bound", "model_moved",
           "replay_equal", "retry_fault"]
