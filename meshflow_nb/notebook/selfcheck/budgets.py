"""Lesson 07's self-checks: each exercise judged against the learner's own runs.

The names the checks read are the lesson's: what its cells made (``ex1_nodes``,
``ex1_result``, ``ex2_result``, ``baseline``, ``ex3_result``) and the answer variables
(``ex1_budget``, ``stop_when``, ``stop_node``, ``over_budget_by``, ``ex3_pipeline``,
``ex3_ratio``, ``ex3_explanation``). A run that depends on an answer is made by the cell
after the answer cell, so it is None until the learner has answered (`OrNone`).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import pandas as pd

from ...engine.results import RunResult
from ...events import EventType, MeshEvent, plural
from ...model.status import RunStatus
from ...workflow import WorkflowDefinition
from ..costs import cost_table
from .expect import RUN, Count, Dollars, Expect, Instance, OneOf, OrNone, Text, Unfit
from .framework import Verdict, hint, passed, self_check
from .streaming import Name
from .text import stems

PRINTED = 0.00006
"""How far an amount may be from the exact one: the lesson prints USD to four decimals."""
RATIO_TOLERANCE = 0.02
"""How far a ratio may be from the run's, relatively (it may be read off rounded costs)."""
TOKEN_STEMS = frozenset({"token"})
PRICE_STEMS = frozenset({"price", "rate", "cheap", "expen", "deare", "costl", "milli",
                         "tarif", "prici"})
"""A stem of "tokens", and stems that talk about what a token costs (price, rate, per
million, cheaper, more expensive): an explanation of a cost ratio needs one of each."""
DEARER = re.compile(r"\b(more expensive|dearer|costlier|pricier|more costly)\b", re.IGNORECASE)
CHEAPER = re.compile(r"\b(cheaper|less expensive|less costly|lower)\b", re.IGNORECASE)

_QUOTES = " '\"`"


class NodeName(Name):
    """One node id in quotes: one short word, not filler."""

    kind = "one node id in quotes, such as 'researcher'"


class Sentences(Text):
    """An explanation: a sentence or two that says something, not a screenful."""

    max_chars = 2000

    def clean(self, value: Any, where: str) -> str:
        """The text, stripped, once it is short enough to be a sentence or two."""
        if isinstance(value, str) and len(value) > self.max_chars:
            raise Unfit(f"{where} is {len(value)} characters long: explain in a sentence or two")
        return super().clean(value, where)


class Ratio(Expect):
    """How many times one amount is another: a number above zero, not text."""

    kind = "a number, such as 1.5"

    def clean(self, value: Any, where: str) -> float:
        """The ratio as a float; a ratio in quotes or as a percentage is told what to drop."""
        if isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"\d+(?:\.\d*)?\s*%|\d*\.\d+|\d+", text):
                raise Unfit(f"{where} should be a number, not the text {value!r}: drop the "
                            "quotes" + (" and write it as a fraction (50% is 0.5)"
                                        if "%" in text else ""))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise self.refuse(value, where)
        if value <= 0:
            raise Unfit(f"{where} is a cost divided by a cost, so it is above zero")
        return float(value)


# --- exercise 1: a budget that lets exactly the first N node executions run ----------


@self_check(
    given={"ex1_nodes": Count("how many node executions exercise 1 asks for"),
           "ex1_result": OrNone(Instance(RunResult, "the run under your budget", kind=RUN))},
    answers={"ex1_budget": Dollars("the budget in USD that lets exactly ex1_nodes node "
                                   "executions run",
                                   zero="and Policy refuses a budget of nothing")})
def budget_for_nodes(ex1_nodes: int, ex1_result: RunResult | None,
                     ex1_budget: float) -> Verdict:
    """Exercise 1: under the learner's budget, exactly the first ``ex1_nodes`` node
    executions ran, and the budget layer stopped the run there."""
    if ex1_nodes < 1:
        return hint("ex1_nodes should be at least 1: put back ex1_nodes = 6 in the "
                    "exercise's first cell")
    if ex1_result is None:
        return hint("run the cell after your answer: it runs the pipeline under "
                    "Policy(budget_usd=ex1_budget) (ex1_result is None)")
    recorded = _budget_of(ex1_result)
    if recorded is None or not math.isclose(recorded, ex1_budget, rel_tol=1e-9):
        return hint("ex1_result comes from another budget than ex1_budget: run the cell "
                    "after your answer again")
    rows = cost_table(ex1_result)
    done = rows[rows.stop != "before"]
    wrong = _never_stopped_hint(ex1_result, ex1_budget) or _count_hint(rows, ex1_nodes)
    if wrong:
        return hint(wrong)
    names = ", ".join(_names(done))
    return passed(f"exactly {plural(ex1_nodes, 'node execution')} ran under your budget of "
                  f"${ex1_budget:g} ({names}); {_how_it_stopped(rows)}")


def _budget_of(run: RunResult) -> float | None:
    """The cost budget the run recorded in its run_start event (None: no budget)."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    budget = policy.get("budget_usd") if isinstance(policy, dict) else None
    return float(budget) if isinstance(budget, (int, float)) else None


def _never_stopped_hint(run: RunResult, budget: float) -> str | None:
    """Where to look when the budget layer did not stop the run (None when it did)."""
    if run.status is RunStatus.BUDGET_EXCEEDED:
        return None
    if run.status in (RunStatus.COMPLETED, RunStatus.REJECTED_AT_GATE):
        return (f"the budget never stopped your run: it ended {run.status.value}, having spent "
                f"less than ${budget:g}. Read the spent_usd column of the cost table above")
    return f"your run ended {run.status.value}, not budget_exceeded: print ex1_result.error"


def _count_hint(rows: pd.DataFrame, wanted: int) -> str | None:
    """Where to look when not exactly ``wanted`` executions ran (None when they did)."""
    done = rows[rows.stop != "before"]
    ran = len(done)
    if ran == wanted:
        return None
    if ran > wanted:
        after = done[done.stop == "after"]
        last = _names(after.tail(1))[0] if not after.empty else _names(done.tail(1))[0]
        text = (f"{plural(ran, 'node execution')} ran, and ex1_nodes asks for {wanted}: the "
                f"layer let {last} finish, then stopped the run. It stops after the execution "
                "that takes spent_usd past the budget, so that execution runs too")
        if len(after) > 1:
            text += (f"; {_names(after.head(1))[0]} ran at the same time, and work already "
                     "running finishes: no budget stops a run between two parallel nodes, so "
                     "try another ex1_nodes")
        return text
    refused = rows[rows.stop == "before"]
    if not refused.empty:
        name = _names(refused.tail(1))[0]
        return (f"only {plural(ran, 'node execution')} ran: the layer refused {name} before it "
                "started, because spent_usd plus that execution's estimate_usd was above your "
                "budget. Before a re-run it counts the estimate, not only what was spent")
    last = _names(done.tail(1))[0]
    return (f"only {plural(ran, 'node execution')} ran: your budget was already passed after "
            f"{last}. Read spent_usd in the cost table, execution by execution, up to the "
            f"{_ordinal(wanted)}")


def _how_it_stopped(rows: pd.DataFrame) -> str:
    """What the budget layer did at the end of the learner's run, in the PASS."""
    refused = rows[rows.stop == "before"]
    if not refused.empty:
        row = refused.iloc[-1]
        return (f"the layer refused {_names(refused.tail(1))[0]} before it started: its "
                f"estimate would have taken the spend to ${row.spent_usd + row.estimate_usd:.4f}")
    after = rows[rows.stop == "after"]
    row = after.iloc[-1]
    return (f"the layer stopped the run after {_names(after.tail(1))[0]}, which took the spend "
            f"to ${row.spent_usd:.4f}")


def _names(rows: pd.DataFrame) -> list[str]:
    """``writer``, ``writer #2``: each execution as the cost table and the charts name it."""
    return [row.node if row.iteration == 1 else f"{row.node} #{row.iteration}"
            for row in rows.itertuples()]


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- exercise 2: read the budget stop's payload ---------------------------------------


@self_check(
    given={"ex2_result": Instance(RunResult, "exercise 2's run", kind=RUN)},
    answers={"stop_when": OneOf(("before", "after"), "which check stopped the run"),
             "stop_node": NodeName("the node the budget_exceeded event names"),
             "over_budget_by": Dollars("how far past its budget the run's spend went, in USD")})
def stop_payload(ex2_result: RunResult, stop_when: str, stop_node: str,
                 over_budget_by: float) -> Verdict:
    """Exercise 2: the learner read the budget_exceeded event: which check fired, at which
    node, and how far past its cap the run's spend went."""
    stop = _cost_stop(ex2_result)
    if stop is None:
        return hint("ex2_result has no budget_exceeded event: run the exercise's first cell "
                    "again, as it is")
    spent, cap = float(stop.payload["spent"]), float(stop.payload["cap"])
    over = max(0.0, spent - cap)
    wrong = _when_hint(stop, stop_when) or _node_hint(ex2_result, stop, stop_node) or \
        _over_hint(stop, over_budget_by, over)
    if wrong:
        return hint(wrong)
    return passed(_stop_said(stop, spent, cap, over))


def _cost_stop(run: RunResult) -> MeshEvent | None:
    """The run's first budget_exceeded event about cost (not carbon), if any."""
    return next((e for e in run.events if e.type is EventType.BUDGET_EXCEEDED
                 and e.payload.get("budget") == "cost"), None)


def _when_hint(stop: MeshEvent, answer: str) -> str | None:
    """Where to look when stop_when is not the check that fired (None when it is)."""
    if answer == stop.payload.get("when"):
        return None
    if stop.payload.get("when") == "after":
        return (f"stop_when: {stop.node_id} has a node_complete just before the event, so it "
                "ran to the end: read the when item of the event's payload")
    return (f"stop_when: {stop.node_id} has no node_complete after its node_start: read the "
            "when item of the event's payload")


def _node_hint(run: RunResult, stop: MeshEvent, answer: str) -> str | None:
    """Where to look when stop_node is not the node the event names (None when it is)."""
    node = answer.strip(_QUOTES).lower()
    if node == (stop.node_id or "").lower():
        return None
    if node not in {n.lower() for n in run.nodes}:
        return (f"stop_node: {answer!r} is not a node of ex2_result: the event's node_id "
                "names one")
    return ("stop_node: the event names its node in node_id, a field of the event itself, "
            "not an item of its payload")


def _over_hint(stop: MeshEvent, answer: float, over: float) -> str | None:
    """Where to look when over_budget_by is not how far the spend went past the cap."""
    if abs(answer - over) <= PRINTED:
        return None
    payload = stop.payload
    if abs(answer - float(payload["spent"])) <= PRINTED:
        return ("over_budget_by: that is what the run had spent; the question is how far it "
                "went past its cap")
    if abs(answer - float(payload["cap"])) <= PRINTED:
        return "over_budget_by: that is the budget itself (the payload's cap)"
    estimate = float(payload.get("estimate") or 0.0)
    if estimate and abs(answer - (float(payload["spent"]) + estimate - float(payload["cap"]))) \
            <= PRINTED:
        return ("over_budget_by: that is how far the estimate would have taken the spend; the "
                "execution was refused, so the run never spent it")
    return "over_budget_by: compare the spent and cap items of the event's payload"


def _stop_said(stop: MeshEvent, spent: float, cap: float, over: float) -> str:
    """What the event says, in the PASS."""
    if stop.payload.get("when") == "after":
        return (f"the after check stopped the run at {stop.node_id}: it had spent "
                f"${spent:.4f} against a cap of ${cap:g}, ${over:.4f} over. The layer stops "
                "a run after the execution that passes the budget, so a run can end above "
                "it by up to one execution's cost")
    return (f"the before check refused {stop.node_id}: the run had spent ${spent:.4f} of its "
            f"${cap:g}, and the estimate said {stop.node_id} would pass it; nothing was "
            "spent past the cap")


# --- exercise 3: one node on another model -------------------------------------------


@self_check(
    given={"baseline": Instance(RunResult, "section 3's run", kind=RUN),
           "ex3_result": OrNone(Instance(RunResult, "the run of your pipeline", kind=RUN))},
    answers={"ex3_pipeline": Instance(WorkflowDefinition, "the capstone with one node's "
                                      "model changed", kind="a workflow (what "
                                      "build_capstone_pipeline returns)"),
             "ex3_ratio": Ratio("the changed node's cost in your run divided by its cost in "
                                "baseline"),
             "ex3_explanation": Sentences("why the cost changed by that ratio", min_words=8,
                                          min_distinct=5)})
def model_change(baseline: RunResult, ex3_result: RunResult | None,
                 ex3_pipeline: WorkflowDefinition, ex3_ratio: float,
                 ex3_explanation: str) -> Verdict:
    """Exercise 3: one node of the capstone ran on another model, the learner measured
    its cost ratio, and explained it: the same tokens at another price."""
    if ex3_result is None:
        return hint("run the cell after your pipeline: it runs ex3_pipeline (ex3_result is "
                    "None)")
    wrong = _run_hint(ex3_result, ex3_pipeline) or _same_work_hint(cost_table(baseline),
                                                                   cost_table(ex3_result))
    if wrong:
        return hint(wrong)
    old, new = cost_table(baseline, by="node"), cost_table(ex3_result, by="node")
    changed = _changed(old, new)
    wrong = _changed_hint(changed, new)
    if wrong:
        return hint(wrong)
    node = changed[0]
    was, now = (table.set_index("node").loc[node] for table in (old, new))
    ratio = now.cost_usd / was.cost_usd
    wrong = _ratio_hint(node, ex3_ratio, ratio) or _explanation_hint(ex3_explanation, ratio)
    if wrong:
        return hint(wrong)
    tokens = int(now.tokens_in + now.tokens_out)
    return passed(f"{node} on {now.model} cost {ratio:.3g}x what it cost on {was.model}: the "
                  f"same {tokens:,} tokens, priced at {now.model}'s rates instead of "
                  f"{was.model}'s")


def _run_hint(run: RunResult, pipeline: WorkflowDefinition) -> str | None:
    """Where to look when the learner's run failed or is not of their pipeline."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    if start is None or start.payload.get("workflow") != pipeline.name:
        return "ex3_result is not a run of ex3_pipeline: run the cell after your pipeline again"
    if run.status is RunStatus.FAILED:
        error = str(run.error)
        if "No price for model" in error:
            return ("a model of your pipeline is not in the price table, so nothing could say "
                    "what it costs: section 2's table lists every model id it knows")
        return f"your run failed: print ex3_result.error ({error[:80]})"
    if run.status is not RunStatus.COMPLETED:
        return (f"your run ended {run.status.value}: run it under POLICY, as the cell after "
                "your pipeline does")
    return None


def _same_work_hint(old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """Where to look when the learner's run did other work than baseline (None if not)."""
    if list(old.node) != list(new.node):
        return ("your run ran other nodes, or ran them another number of times, than "
                "baseline: build the capstone as it is (build_capstone_pipeline(agents=...)), "
                "changing only one agent's model")
    if (old.tokens_in.to_numpy() != new.tokens_in.to_numpy()).any() or \
            (old.tokens_out.to_numpy() != new.tokens_out.to_numpy()).any():
        return ("some node of your run read or wrote other tokens than in baseline: change "
                "only the model= of one agent, and keep its role and angle")
    return None


def _changed(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """The nodes whose model differs between the two runs."""
    was = dict(zip(old.node, old.model, strict=True))
    return [node for node, model in zip(new.node, new.model, strict=True)
            if was.get(node) != model]


def _changed_hint(changed: list[str], new: pd.DataFrame) -> str | None:
    """Where to look when not exactly one node changed model to a priced one."""
    if not changed:
        return ("every node of your run used the same model as in baseline: change the "
                "model= of one agent in the answer cell to another id of the price table")
    if len(changed) > 1:
        return (f"{', '.join(changed)} changed model: change one node only, so that the "
                "difference in cost has one cause")
    if new.set_index("node").loc[changed[0]].cost_usd == 0:
        return (f"{changed[0]} cost nothing on its new model: pick a model that has a price, "
                "so that there is a ratio to explain")
    return None


def _ratio_hint(node: str, answer: float, ratio: float) -> str | None:
    """Where to look when ex3_ratio is not the node's cost ratio (None when it is)."""
    if math.isclose(answer, ratio, rel_tol=RATIO_TOLERANCE):
        return None
    if math.isclose(answer, 1 / ratio, rel_tol=RATIO_TOLERANCE):
        return ("ex3_ratio: that is baseline's cost divided by yours; divide your run's cost "
                f"of {node} by baseline's")
    if math.isclose(answer * 100, ratio, rel_tol=RATIO_TOLERANCE) or \
            math.isclose(answer, ratio * 100, rel_tol=RATIO_TOLERANCE):
        return "ex3_ratio: give the ratio as a plain number, not as a percentage"
    return (f"ex3_ratio: divide the cost_usd of {node} in your run by its cost_usd in baseline "
            "(the table above shows both, summed over its executions)")


def _explanation_hint(text: str, ratio: float) -> str | None:
    """Where to look when the explanation does not say what changed and what did not."""
    said = stems(text)
    if not (said & TOKEN_STEMS and said & PRICE_STEMS):
        return ("ex3_explanation should say what stayed the same between the two runs "
                "(compare their tokens columns) and what changed (the two models' rows of "
                "the price table)")
    if ratio < 1 and DEARER.search(text) and not CHEAPER.search(text):
        return "ex3_explanation: your run cost less than baseline, not more: read it again"
    if ratio > 1 and CHEAPER.search(text) and not DEARER.search(text):
        return "ex3_explanation: your run cost more than baseline, not less: read it again"
    return None


__all__ = ["NodeName", "Ratio", "Sentences", "budget_for_nodes", "model_change",
           "stop_payload"]
