"""Lesson 13's self-checks: each exercise judged against the learner's own runs.

The names the checks read are the lesson's: what its cells made (``baseline``,
``ex1_result``, ``result``, ``ex3_result``) and the answer variables (``ex1_node``,
``ex1_budget_g``, ``ex2_node``, ``ex2_explanation``, ``ex3_settings``). A run that depends
on an answer is made by the cell after the answer cell, so it is None until the learner
has answered (`OrNone`).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ...engine.results import RunResult
from ...events import EventType, MeshEvent, plural
from ...model.status import RunStatus
from ..costs import carbon_table
from .budgets import NodeName, Sentences
from .expect import RUN, Expect, Instance, OrNone, Unfit
from .framework import Verdict, hint, passed, self_check
from .text import stems

A_THIRD = 33
"""The cut exercise 3 asks for, in whole percent (the lesson prints percentages so)."""
TOKEN_STEMS = frozenset({"token"})
WHY_STEMS = frozenset({"twice", "loop", "revis", "execu", "again", "rerun", "re-ru", "secon",
                       "two", "read", "write", "wrote", "input", "outpu", "longe", "long",
                       "large", "bigge", "more", "most", "draft"})
"""Stems that say why a node has more tokens than the others: it runs again (the loop,
twice, a revision) or reads and writes more (input, output, longer drafts)."""
SETTINGS = ("agents", "quality_scores", "max_revisions", "model", "gate_timeout_s", "name",
            "policy", "human_gate")
"""The keyword arguments of build_capstone_pipeline."""
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


class Grams(Expect):
    """An amount of grams CO2e above zero: a number (a NumPy float will do), not text."""

    kind = "a number of grams, such as 0.5"

    def clean(self, value: Any, where: str) -> float:
        """The grams as a float; a number in quotes or with a unit is told what to drop."""
        if isinstance(value, str):
            text = value.strip().removesuffix("g").strip()
            if _NUMBER.fullmatch(text):
                raise Unfit(f"{where} should be a number, not the text {value!r}: drop the "
                            "quotes" + (" and the g" if text != value.strip() else ""))
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise self.refuse(value, where)
        if value <= 0:
            raise Unfit(f"{where} is a budget of grams, and Policy refuses one of zero or "
                        "less: choose an amount above zero")
        return float(value)


class Settings(Expect):
    """Keyword arguments of build_capstone_pipeline, as a dict: {"name": value}."""

    kind = "a dict of settings in curly brackets, such as {'max_revisions': 2}"

    def unset(self, value: Any) -> bool:
        """None or an empty dict: the learner has not changed anything yet."""
        return value is None or (isinstance(value, Mapping) and not value)

    def clean(self, value: Any, where: str) -> dict[str, Any]:
        """The settings as a dict, once every key is a name of build_capstone_pipeline."""
        if not isinstance(value, Mapping):
            raise self.refuse(value, where)
        unknown = [k for k in value if k not in SETTINGS]
        if unknown:
            raise Unfit(f"{where}: {unknown[0]!r} is no setting of build_capstone_pipeline; "
                        f"its settings are {', '.join(SETTINGS)}")
        return dict(value)


# --- reading runs ----------------------------------------------------------------------


def _policy_of(run: RunResult) -> Mapping[str, Any]:
    """The policy the run recorded in its run_start event ({} when there is none)."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    return policy if isinstance(policy, Mapping) else {}


def _carbon_stops(run: RunResult) -> list[MeshEvent]:
    """The run's budget_exceeded events about carbon, in order."""
    return [e for e in run.events
            if e.type is EventType.BUDGET_EXCEEDED and e.payload.get("budget") == "carbon"]


def _grams(run: RunResult) -> float:
    """The run's estimated grams CO2e (0 when the environmental layer was off)."""
    return float(run.totals.carbon_g or 0.0)


def _estimate_off(run: RunResult, name: str) -> str | None:
    """The HINT for a run with the environmental layer off (None when it was on)."""
    if _policy_of(run).get("enable_environmental"):
        return None
    return (f"{name} ran with enable_environmental off, so it has no carbon estimate and no "
            "carbon budget: keep the layer on")


# --- exercise 1: a carbon budget that stops the run at a node you choose -------------------


@self_check(
    given={"baseline": Instance(RunResult, "section 3's run", kind=RUN),
           "ex1_result": OrNone(Instance(RunResult, "the run under your carbon budget",
                                         kind=RUN))},
    answers={"ex1_node": NodeName("the node you want the carbon budget to stop the run at"),
             "ex1_budget_g": Grams("the carbon budget in grams that stops the run there")})
def carbon_stop_at(baseline: RunResult, ex1_result: RunResult | None, ex1_node: str,
                   ex1_budget_g: float) -> Verdict:
    """Exercise 1: under the learner's carbon budget, the run stopped at the node they
    chose, and nowhere else."""
    if ex1_result is None:
        return hint("run the cell after your answer: it runs the capstone under "
                    "Policy(carbon_budget_g=ex1_budget_g) (ex1_result is None)")
    node = ex1_node.strip(" '\"`")
    recorded = _policy_of(ex1_result).get("carbon_budget_g")
    if not isinstance(recorded, (int, float)) or not math.isclose(recorded, ex1_budget_g):
        return hint("ex1_result comes from another budget than ex1_budget_g: run the cell "
                    "after your answer again")
    wrong = _estimate_off(ex1_result, "ex1_result") or _node_hint(baseline, node)
    if wrong:
        return hint(wrong)
    stops = _carbon_stops(ex1_result)
    if not stops:
        return hint(f"the carbon budget never stopped your run: it ended "
                    f"{ex1_result.status.value} having emitted {_grams(ex1_result):.3f} g, "
                    f"less than {ex1_budget_g:g} g. Read the spent_g column of the table above")
    named = list(dict.fromkeys(e.node_id for e in stops))
    if named != [node]:
        return hint(_elsewhere_hint(ex1_result, node, named))
    stop = stops[0]
    if stop.payload.get("when") == "before":
        how = (f"the before check refused {node}: {stop.payload['spent']:.3f} g emitted plus "
               f"its estimate of {stop.payload['estimate']:.3f} g would pass the budget")
    else:
        how = (f"the after check stopped the run once {node} had taken it to "
               f"{stop.payload['spent']:.3f} g")
    return passed(f"your carbon budget of {ex1_budget_g:g} g stopped the run at {node}: {how}")


def _node_hint(baseline: RunResult, node: str) -> str | None:
    """Where to look when ex1_node is no node that a carbon budget can stop at (the
    nodes of baseline that emitted nothing call no model)."""
    if node not in baseline.nodes:
        return f"ex1_node: {node!r} is not a node of the capstone; the drawing names them"
    if node not in set(carbon_table(baseline).node):
        return (f"ex1_node: {node} calls no model, so it emits nothing and no carbon budget "
                "can stop the run there: choose a node that has a row in the table above")
    return None


def _elsewhere_hint(run: RunResult, node: str, named: list[str]) -> str:
    """Where to look when the carbon budget stopped the run at other nodes."""
    if len(named) > 1:
        return (f"the budget stopped the run at {' and '.join(named)}: they ran at the same "
                "time, and work already running finishes. Choose a budget that one of them "
                "alone passes, or another node")
    order = list(carbon_table(run).node)
    if node in order and order.index(node) < order.index(named[0]):
        return (f"the budget stopped the run at {named[0]}, after {node}: the run got past "
                f"{node}, so your budget is more than the run had emitted there. Read spent_g "
                f"up to {node}")
    return (f"the budget stopped the run at {named[0]}, before it reached {node}: the run "
            f"had passed your budget already. Read spent_g, and estimate_g before a re-run, "
            f"up to {node}")


# --- exercise 2: the node with the largest footprint -----------------------------------


@self_check(
    given={"result": Instance(RunResult, "section 6's capstone run (await live)", kind=RUN)},
    answers={"ex2_node": NodeName("the node with the largest footprint in your run"),
             "ex2_explanation": Sentences("why that node has the largest footprint",
                                          min_words=8, min_distinct=5)})
def largest_footprint(result: RunResult, ex2_node: str, ex2_explanation: str) -> Verdict:
    """Exercise 2: the learner found the node with the most grams in their own run and
    said why: its tokens, and why it has more of them."""
    wrong = _estimate_off(result, "result")
    if wrong:
        return hint(wrong)
    nodes = carbon_table(result, by="node").sort_values("carbon_g", ascending=False)
    if nodes.empty:
        return hint("your run has no node with a carbon estimate: run section 6 again")
    top = nodes.iloc[0]
    node = ex2_node.strip(" '\"`")
    wrong = _top_hint(result, nodes, node) or _why_hint(ex2_explanation)
    if wrong:
        return hint(wrong)
    runs = "" if top.executions == 1 else f" over {plural(top.executions, 'execution')}"
    return passed(f"{top.node} emitted the most: {top.carbon_g:.3f} g, {top.share:.0%} of your "
                  f"run, from {int(top.tokens_in + top.tokens_out):,} tokens{runs}. On one "
                  "model the grams follow the tokens")


def _top_hint(run: RunResult, nodes: pd.DataFrame, node: str) -> str | None:
    """Where to look when ex2_node is not the node with the most grams (None when it is)."""
    if node == nodes.iloc[0].node:
        return None
    if node not in run.nodes:
        return f"ex2_node: {node!r} is not a node of your run; the table names them"
    if node not in set(nodes.node):
        return f"ex2_node: {node} did not emit anything in your run (it calls no model)"
    table = carbon_table(run)
    if node == table.sort_values("carbon_g").iloc[-1].node:
        return ("ex2_node: that is the largest single execution; a node's footprint is all "
                "its executions added up: carbon_table(result, by='node')")
    return ("ex2_node: compare the carbon_g of every node, summed over its executions: "
            "carbon_table(result, by='node')")


def _why_hint(text: str) -> str | None:
    """Where to look when the explanation does not say why (None when it does)."""
    said = stems(text)
    if said & TOKEN_STEMS and said & WHY_STEMS:
        return None
    return ("ex2_explanation should say what the grams are computed from (section 2's "
            "formula) and why this node has more of it than the others: compare the "
            "tokens_in, tokens_out and executions columns of the table")


# --- exercise 3: a third fewer grams, one setting -----------------------------------------


@self_check(
    given={"baseline": Instance(RunResult, "section 3's run", kind=RUN),
           "ex3_result": OrNone(Instance(RunResult, "the run of your settings", kind=RUN))},
    answers={"ex3_settings": Settings("the one setting of build_capstone_pipeline you "
                                      "changed")})
def grams_cut(baseline: RunResult, ex3_result: RunResult | None,
              ex3_settings: dict[str, Any]) -> Verdict:
    """Exercise 3: one setting of the capstone cut the run's grams by a third or more, with
    the estimate on and the work done (the draft published)."""
    if ex3_result is None:
        return hint("run the cell after your answer: it builds the capstone with "
                    "ex3_settings and runs it (ex3_result is None)")
    if len(ex3_settings) != 1:
        return hint(f"ex3_settings changes {plural(len(ex3_settings), 'setting')}: change "
                    "one, so that the cut has one cause")
    (key, value), = ex3_settings.items()
    wrong = _estimate_off(ex3_result, "ex3_result") or _work_hint(ex3_result, ex3_settings)
    if wrong:
        return hint(wrong)
    before, after = _grams(baseline), _grams(ex3_result)
    cut = round(100 * (1 - after / before)) if before else 0
    if cut < A_THIRD:
        return hint(_cut_hint(key, cut, before, after))
    ran = len(carbon_table(ex3_result))
    return passed(f"{key}={value!r} cut the run from {before:.3f} g to {after:.3f} g, {cut}% "
                  f"less, and it still published ({plural(ran, 'agent execution')} against "
                  f"baseline's {len(carbon_table(baseline))})")


def _work_hint(run: RunResult, settings: Mapping[str, Any]) -> str | None:
    """Where to look when the learner's run did not do the work (None when it did)."""
    start = next((e for e in run.events if e.type is EventType.RUN_START), None)
    if start is None or start.payload.get("workflow") != settings.get("name",
                                                                      "production_pipeline"):
        return "ex3_result is not a run of ex3_settings: run the cell after your answer again"
    if run.status is RunStatus.REJECTED_PREFLIGHT:
        return ("pre-flight rejected the pipeline your settings built, before any node ran: "
                "print ex3_result.error")
    if run.status is not RunStatus.COMPLETED or "publisher" not in run.executed:
        return (f"your run ended {run.status.value} without publishing: a cut that stops the "
                "work is no cut in the work's footprint. Change a setting that lets the run "
                "complete")
    return None


def _cut_hint(key: str, cut: int, before: float, after: float) -> str:
    """Where to look when the cut is less than a third."""
    if key == "model":
        return ("your run emitted what baseline did: with mock agents, model= of "
                "build_capstone_pipeline is for live agents; a mock agent's model is its own "
                "model= (agents=)")
    if cut <= 0:
        return (f"your run emitted {after:.3f} g, no less than baseline's {before:.3f} g: "
                "compare carbon_table(ex3_result) with carbon_table(baseline)")
    return (f"your setting cut {cut}% ({before:.3f} g to {after:.3f} g); a third is "
            f"{A_THIRD}%. Compare carbon_table(ex3_result) with carbon_table(baseline): a "
            "setting can make executions cheaper, or make fewer of them")


__all__ = ["Grams", "Settings", "carbon_stop_at", "grams_cut", "largest_footprint"]
