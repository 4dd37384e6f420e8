"""Lesson 02's self-checks: agents, their result shapes, their roles and risk tiers.

The names the checks read are the lesson's: what its cells made (``ex1_result``,
``ex2_result``) and the answer variables (``ex1_workflow``, the word-count workflow
with the learner's ``counter`` and ``reporter``; ``ex2_price``, the price row the
learner's ``summariser`` charges; ``refund_desk``, the refund pipeline whose roles and
risk tiers the learner sets). Exercise 1 also calls the learner's ``reporter`` once
more, with another ``word_count`` in its variables, to see where the count comes from.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...agents.base import NodeContext, normalize_result
from ...agents.pricing import ModelPrice, current_prices
from ...engine.results import NodeRun, RunResult
from ...events import EventType, plural
from ...model.graph import Topology
from ...model.roles import RiskTier, Role
from ...workflow import WorkflowDefinition
from .expect import RUN, Instance, OrNone, describe
from .framework import Verdict, hint, passed, self_check
from .text import filler_reason

WORKFLOW = "a workflow (a WorkflowDefinition)"

WORD_COUNT = "word_count"
"""The variable exercise 1's counter exports and its reporter reads."""
PROBE_COUNT = 9973
"""The word_count exercise 1 hands the reporter on its second call (a prime no brief has)."""
CALL_TIMEOUT_S = 5.0
"""How long the check waits for the learner's agent when it calls it again."""

CHARS_PER_TOKEN = 4
"""The rule of thumb exercise 2 gives (the mock agents use it too)."""
TOKEN_SLACK = 2.0
"""A token count between a half and twice the rule of thumb's is an estimate of it."""
COST_TOLERANCE = 0.01
"""A cost within 1 % of tokens x prices is that cost (rounding, a cache price)."""
MIN_SUMMARY_WORDS = 5

REFUND_DESK: dict[str, tuple[Role, RiskTier]] = {
    "fetch_order": (Role.RESEARCHER, RiskTier.READ_ONLY),
    "draft_reply": (Role.EXECUTOR, RiskTier.INTERNAL),
    "review_reply": (Role.CRITIC, RiskTier.READ_ONLY),
    "screen_reply": (Role.GUARDIAN, RiskTier.READ_ONLY),
    "send_reply": (Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO),
    "pay_refund": (Role.ORCHESTRATOR, RiskTier.IRREVERSIBLE),
}
"""Exercise 3: the role and the risk tier each agent node of the refund desk needs."""
REFUND_GATE = "approve"
REFUND_EDGES = frozenset({
    ("fetch_order", "draft_reply"), ("draft_reply", "review_reply"),
    ("review_reply", "screen_reply"), ("screen_reply", REFUND_GATE),
    (REFUND_GATE, "send_reply"), (REFUND_GATE, "pay_refund")})
"""The refund desk's edges, which exercise 3 leaves as they are."""

_NUMBER = re.compile(r"(?<![\d.])\d[\d,]*(?![\d])")


# --- exercise 1: an exported variable, read by a later node -------------------------


@self_check(
    given={"ex1_result": OrNone(Instance(RunResult, "exercise 1's run", kind=RUN))},
    answers={"ex1_workflow": Instance(WorkflowDefinition, "the word-count workflow",
                                      kind=WORKFLOW)})
def exported_variable(ex1_result: RunResult | None, ex1_workflow: WorkflowDefinition
                      ) -> Verdict:
    """Exercise 1: the counter exported the brief's word count, and the reporter, a later
    node, read it from ``ctx.variables`` (not from its inputs, not by counting again)."""
    if ex1_result is None or ex1_result.workflow != ex1_workflow.name \
            or set(ex1_result.nodes) != {node.id for node in ex1_workflow.nodes}:
        return hint("ex1_result is not a run of ex1_workflow: run the cell after the answer "
                    "cell")
    wrong = _shape_hint(ex1_workflow) or _untouched_hint(ex1_result) \
        or _failure_hint(ex1_result, ex1_workflow) or _export_hint(ex1_result, ex1_workflow)
    if wrong:
        return hint(wrong)
    count = ex1_result.nodes["counter"].variables[WORD_COUNT]
    said = ex1_result.nodes["reporter"].text
    wrong = _report_hint(said, count) or _probe_hint(ex1_result, ex1_workflow, count)
    if wrong:
        return hint(wrong)
    return passed(f"counter exported {WORD_COUNT} = {count}, and reporter, a later node, read "
                  f"it from ctx.variables: {_quoted(said)}")


def _shape_hint(workflow: WorkflowDefinition) -> str | None:
    """Where to look when the workflow lost a node or its order (None when it has both)."""
    ids = {node.id for node in workflow.nodes}
    missing = [name for name in ("researcher", "counter", "reporter") if name not in ids]
    if missing:
        return (f"ex1_workflow has no {' or '.join(missing)} node: keep the three nodes of the "
                "answer cell and change what they do")
    topology = Topology.of([node.id for node in workflow.nodes], workflow.edges)
    if "counter" not in topology.ancestors("reporter"):
        return "in ex1_workflow, reporter should come after counter: keep the edges as they are"
    return None


def _untouched_hint(run: RunResult) -> str | None:
    """The hint for the answer cell as the lesson ships it: both agents return None."""
    if _said_nothing(run.nodes["counter"]) and _said_nothing(run.nodes["reporter"]):
        return ("write counter and reporter in the answer cell above (both still return "
                "None), declare what counter exports, then run the cell after it")
    return None


def _said_nothing(record: NodeRun) -> bool:
    """The node completed without returning anything."""
    return record.status == "completed" and record.output in (None, "") and not record.text


def _failure_hint(run: RunResult, workflow: WorkflowDefinition) -> str | None:
    """Where to look when the run did not complete (None when it did)."""
    if run.ok:
        return None
    failed = next((e for e in run.events if e.type is EventType.NODE_FAILED), None)
    if failed is None:
        return f"the run ended {run.status.value}: run the cell after the answer cell again"
    error = str(failed.payload.get("error", ""))
    if failed.payload.get("reason") == "missing_export":
        return (f"{failed.node_id} declares {WORD_COUNT} in exports but did not return it: "
                f"return a dict with the key '{WORD_COUNT}'")
    if failed.node_id == "reporter" and WORD_COUNT in error \
            and WORD_COUNT not in workflow.node("counter").exports:
        return (f"reporter found no {WORD_COUNT} in ctx.variables: the keys of a dict become "
                "variables only when its node declares them, exports=[...] (section 4)")
    return f"{failed.node_id} failed ({_cut(error)}): fix it in the answer cell and run again"


def _export_hint(run: RunResult, workflow: WorkflowDefinition) -> str | None:
    """Where to look when counter did not export a whole-number word count of the brief."""
    if WORD_COUNT not in workflow.node("counter").exports:
        return (f"counter does not declare {WORD_COUNT} in its exports, so it is not a "
                "variable of the run: add exports=[...] to its Node (section 4)")
    count = run.nodes["counter"].variables.get(WORD_COUNT)
    if isinstance(count, bool) or not isinstance(count, int):
        return (f"{WORD_COUNT} should be a whole number (the count of words), not "
                f"{describe(count)}")
    if count != len(str(run.nodes["researcher"].output).split()):
        return (f"{WORD_COUNT} is not the number of words of the researcher's brief: count "
                "the words of ctx.inputs['researcher'] (str.split() splits at every space "
                "and line break)")
    return None


def _report_hint(said: str, count: int) -> str | None:
    """Where to look when the reporter's text does not state the count."""
    reason = filler_reason(said, min_words=3)
    if reason:
        return f"reporter's text {reason}: write a sentence that states the count"
    if count not in _numbers(said):
        return (f"reporter's text does not state the count ({_quoted(said)}): put the "
                f"{WORD_COUNT} it reads into its sentence")
    return None


def _probe_hint(run: RunResult, workflow: WorkflowDefinition, count: int) -> str | None:
    """Call the reporter again with another word_count in its variables, the same inputs:
    a reporter that reads ctx.variables states the new count."""
    probe = PROBE_COUNT if count != PROBE_COUNT else PROBE_COUNT + 1
    ctx = _context_of(run, workflow, "reporter", {**run.nodes["counter"].variables,
                                                  WORD_COUNT: probe})
    try:
        said = normalize_result(_call(workflow.node("reporter").agent, ctx)).text
    except Exception as err:  # the learner's agent, called once more
        return (f"reporter failed when called again with another {WORD_COUNT} "
                f"({type(err).__name__}: {_cut(str(err))}): read it from ctx.variables")
    if probe in _numbers(said):
        return None
    return (f"reporter finds the count somewhere other than ctx.variables: its inputs reach "
            f"only the next node, while a variable reaches every later node (and the "
            f"conditions); read ctx.variables['{WORD_COUNT}']")


def _context_of(run: RunResult, workflow: WorkflowDefinition, node_id: str,
                variables: Mapping[str, Any]) -> NodeContext:
    """The context ``node_id`` had in ``run``, with ``variables`` in place of the run's."""
    feeders = [edge.source for edge in workflow.edges if edge.target == node_id]
    node = workflow.node(node_id)
    return NodeContext(run_id=run.run_id, node_id=node_id, role=getattr(node.role, "value", ""),
                       task=run.task, inputs={n: run.nodes[n].output for n in feeders},
                       outputs=dict(run.outputs), variables=dict(variables))


def _call(agent: Any, ctx: NodeContext) -> Any:
    """What ``agent`` returns for ``ctx``: a coroutine is run to its end in a thread of
    its own (the notebook's event loop is busy running this cell)."""
    value = agent(ctx)
    if not inspect.isawaitable(value):
        return value
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _awaited(value)).result(timeout=CALL_TIMEOUT_S)


async def _awaited(value: Any) -> Any:
    """``await value`` (asyncio.run takes a coroutine, and an awaitable may be another)."""
    return await value


def _numbers(text: str) -> set[int]:
    """The whole numbers written in ``text`` ("1,204" is 1204)."""
    return {int(found.replace(",", "")) for found in _NUMBER.findall(text)
            if found.replace(",", "").isdigit()}


# --- exercise 2: an AgentResult whose tokens and cost reach the totals ---------------


@self_check(
    given={"ex2_result": OrNone(Instance(RunResult, "exercise 2's run", kind=RUN))},
    answers={"ex2_price": Instance(ModelPrice, "the price row of the model your agent "
                                   "stands for", kind="a row of the price table, "
                                   "PRICES[<model id>]")})
def priced_result(ex2_result: RunResult | None, ex2_price: ModelPrice) -> Verdict:
    """Exercise 2: the summariser returned an AgentResult with its tokens (estimated from
    what it read and wrote), a cost that matches them at its model's prices, and a
    confidence; and the run's totals count them."""
    run = ex2_result
    if run is None or "summariser" not in run.nodes:
        return hint("ex2_result is not a run of the summariser: run the cell after the answer "
                    "cell")
    record = run.nodes["summariser"]
    wrong = _ex2_failure_hint(run) or _unpriced_hint(record) or _summary_hint(run) \
        or _accounting_hint(record) or _price_hint(record, ex2_price) \
        or _tokens_hint(run, record)
    if wrong:
        return hint(wrong)
    totals = _totals_hint(run)
    if totals:
        return hint(totals)
    return passed(f"summariser reported {record.tokens_in + record.tokens_out} tokens and "
                  f"${record.cost_usd:.6f} at {record.model}'s prices, "
                  f"{_confidence(record)}; the run's totals ({run.totals.tokens:,} tokens, "
                  f"${run.totals.cost_usd:.4f}) count them")


def _ex2_failure_hint(run: RunResult) -> str | None:
    """Where to look when the summariser did not complete (an AgentResult it could not
    make, an error of its own)."""
    failed = next((e for e in run.events
                   if e.type is EventType.NODE_FAILED and e.node_id == "summariser"), None)
    if failed is not None:
        return (f"summariser failed ({_cut(str(failed.payload.get('error', '')))}): fix it in "
                "the answer cell and run the cell after it")
    if run.nodes["summariser"].status != "completed":
        return f"the run ended {run.status.value}: run the cell after the answer cell again"
    return None


def _unpriced_hint(record: NodeRun) -> str | None:
    """The hint for a summariser that still returns text: nothing for the totals."""
    if not record.tokens_in and not record.tokens_out and not record.cost_usd:
        return ("summariser reported no tokens and no cost, so the totals counted nothing for "
                "it: return an AgentResult(...) with tokens_in, tokens_out, cost_usd and "
                "confidence (section 3)")
    return None


def _accounting_hint(record: NodeRun) -> str | None:
    """Where to look when the result lacks some tokens, its cost, model or confidence."""
    if not record.tokens_in or not record.tokens_out:
        side = "tokens_in" if not record.tokens_in else "tokens_out"
        return f"summariser reported no {side}: a call reads tokens and writes tokens"
    if not record.cost_usd:
        return "summariser reported tokens but no cost_usd: price them (step 3)"
    if record.model is None:
        return ("summariser did not say which model it stands for: pass model= (the model of "
                "ex2_price)")
    if record.uncertainty is None:
        return "summariser gave no confidence: pass confidence= (0 to 1, how sure it is)"
    return None


def _price_hint(record: NodeRun, price: ModelPrice) -> str | None:
    """Where to look when the cost is not what its tokens cost at its model's prices."""
    prices = current_prices()
    if record.model not in prices:
        return (f"summariser says its model is {record.model!r}, which the price table does "
                "not have: use the model of ex2_price")
    row = prices[record.model]
    if row.model != price.model:
        return (f"summariser says its model is {record.model!r}, but ex2_price is the row of "
                f"{price.model!r}: charge the prices of the model you name")
    expected = (record.tokens_in * row.input_usd_per_mtok
                + record.tokens_out * row.output_usd_per_mtok) / 1_000_000
    if not math.isclose(record.cost_usd, expected, rel_tol=COST_TOLERANCE, abs_tol=1e-9):
        return (f"cost_usd is not what {record.tokens_in} tokens in and {record.tokens_out} "
                f"out cost at {row.model}'s prices: the prices are USD per million tokens, "
                "input and output apart")
    return None


def _tokens_hint(run: RunResult, record: NodeRun) -> str | None:
    """Where to look when a token count is not an estimate of the text it counts."""
    read = sum(len(str(value)) for value in _inputs_of(run, "summariser"))
    for side, tokens, chars in (("tokens_in", record.tokens_in, read),
                                ("tokens_out", record.tokens_out, len(record.text))):
        estimate = chars / CHARS_PER_TOKEN
        if not estimate / TOKEN_SLACK <= tokens <= estimate * TOKEN_SLACK + 1:
            what = "what summariser read" if side == "tokens_in" else "what it wrote"
            return (f"{side} = {tokens} does not look like the size of {what}: estimate it "
                    f"at about {CHARS_PER_TOKEN} characters per token (step 2)")
    return None


def _inputs_of(run: RunResult, node_id: str) -> list[Any]:
    """The outputs that fed ``node_id`` (its node_start event names their nodes)."""
    start = next((e for e in run.events
                  if e.type is EventType.NODE_START and e.node_id == node_id), None)
    feeders = start.payload.get("inputs", []) if start is not None else []
    return [run.nodes[name].output for name in feeders if name in run.nodes]


def _summary_hint(run: RunResult) -> str | None:
    """Where to look when the summary is filler, or the brief itself."""
    text = run.nodes["summariser"].text
    reason = filler_reason(text, min_words=MIN_SUMMARY_WORDS, min_distinct=3)
    if reason:
        return f"summariser's text {reason}: write one sentence about the brief"
    if any(text.strip() == str(value).strip() for value in _inputs_of(run, "summariser")):
        return "summariser's text is the researcher's brief itself: write a sentence of its own"
    return None


def _totals_hint(run: RunResult) -> str | None:
    """The run's totals are the sums of its node executions (the engine's promise)."""
    done = [e for e in run.events if e.type is EventType.NODE_COMPLETE]
    tokens = sum((e.tokens_in or 0) + (e.tokens_out or 0) for e in done)
    cost = sum(e.cost_usd or 0.0 for e in done)
    if tokens != run.totals.tokens or not math.isclose(cost, run.totals.cost_usd, abs_tol=1e-9):
        return "the run's totals do not add up its node_complete events: run the cell again"
    return None


def _confidence(record: NodeRun) -> str:
    """``confidence 0.80``: what the learner gave (the run stores its complement)."""
    return f"confidence {1 - record.uncertainty:.2f}"


# --- exercise 3: the role and the risk tier of every node ----------------------------


@self_check(answers={"refund_desk": Instance(WorkflowDefinition, "the refund desk",
                                             kind=WORKFLOW)})
def roles_and_tiers(refund_desk: WorkflowDefinition) -> Verdict:
    """Exercise 3: each node of the refund desk has the role of its kind of work and the
    risk tier of the worst it can do; the desk's nodes and edges are as given."""
    wrong = _desk_shape_hint(refund_desk)
    if wrong:
        return hint(wrong)
    nodes = {node.id: node for node in refund_desk.nodes}
    roles = [nodes[name].role for name in REFUND_DESK]
    if all(role is None for role in roles):
        return hint("set role= and risk_tier= of each node of refund_desk in the answer cell "
                    "above (role=None means not chosen yet)")
    if len(set(roles)) == 1:
        return hint(f"every node of refund_desk has {_name(roles[0])}: each one does another "
                    "kind of work; read the role table of section 6 again")
    notes = [note for name in REFUND_DESK if (note := _node_note(name, nodes[name]))]
    if notes:
        return hint(f"{plural(len(notes), 'node')} of {len(REFUND_DESK)} to look at again: "
                    + "; ".join(notes))
    return passed(f"{len(REFUND_DESK)} nodes, each with its role and risk tier; the gate "
                  f"'{REFUND_GATE}' protects send_reply (EXTERNAL_IO) and pay_refund "
                  "(IRREVERSIBLE)")


def _desk_shape_hint(desk: WorkflowDefinition) -> str | None:
    """Where to look when the desk lost, gained or rewired a node (None when it is as
    given)."""
    ids = [node.id for node in desk.nodes]
    missing = [name for name in [*REFUND_DESK, REFUND_GATE] if name not in ids]
    if missing:
        return (f"refund_desk has no {', '.join(missing)}: keep every node of the answer cell "
                "and change only role= and risk_tier=")
    extra = [name for name in ids if name not in REFUND_DESK and name != REFUND_GATE]
    if extra or len(ids) != len(set(ids)):
        return ("refund_desk has nodes the answer cell did not give it: keep its nodes and "
                "change only role= and risk_tier=")
    gate = next(node for node in desk.nodes if node.id == REFUND_GATE)
    edges = {(edge.source, edge.target) for edge in desk.edges}
    if not gate.is_gate or edges != REFUND_EDGES or any(e.conditional for e in desk.edges):
        return ("keep the gate and the edges of refund_desk as the answer cell gives them: "
                "this exercise is about role= and risk_tier= only")
    return None


def _node_note(name: str, node: Any) -> str | None:
    """What to look at again in one node: its role, its tier, or both (None: both right)."""
    role, tier = REFUND_DESK[name]
    notes = []
    if node.role is None:
        notes.append("it has no role yet")
    elif node.role is Role.HUMAN:
        notes.append("Role.HUMAN belongs to human gates, and this node runs an agent")
    elif node.role is not role:
        notes.append("its role: which kind of work is it?")
    if node.risk_tier < tier:
        notes.append("its risk tier is too low: what is the worst it can do if it goes wrong?")
    elif node.risk_tier > tier:
        notes.append("its risk tier is too high: what can it actually change?")
    return f"{name} ({', '.join(notes)})" if notes else None


def _name(role: Any) -> str:
    """``Role.CRITIC``: how the answer cell writes a role."""
    return f"Role.{role.name}" if isinstance(role, Role) else describe(role)


# --- small helpers --------------------------------------------------------------------


def _quoted(text: str, limit: int = 80) -> str:
    """``'The brief has 87 words.'``, cut short."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def _cut(text: str, limit: int = 120) -> str:
    """An error message on one line, cut short."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
