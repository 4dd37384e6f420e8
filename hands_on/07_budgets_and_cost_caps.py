"""Lesson 07 hands-on: budgets and cost caps.

    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py                 # $0.05: stopped
    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py --budget 0.04   # the after check
    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py --no-budget     # the layer off
    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py --runaway --no-budget
    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py --model writer=claude-haiku-4-5
    MESHFLOW_MOCK=1 python3 hands_on/07_budgets_and_cost_caps.py --reject --no-budget

The pipeline is the capstone of lesson 16 (researcher, two analysts in parallel, a writer
and a critic in a quality loop, a human gate, a publisher), run under a STANDARD policy
whose budget_usd is --budget (default 0.05) or, with --no-budget, None: the budget layer
switched off. Each node execution prints as it ends: its tokens, what it cost, and what
the run has spent so far, the number the budget layer compares with the budget. A
budget_exceeded event prints with its payload.

--runaway is section 6's threat: a critic that never passes a draft (every score 0.5)
and a loop guard of 8 revisions. --model NODE=MODEL puts one node's mock agent on another
model of the price table (exercise 3); give it more than once to change several.

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default budgets.duckdb); the script
ends by printing the cost per node and verifying the run's hash chain. Exit status: 0
when the run ended as a governed run ends (completed, stopped by its budget, or
rejected at the gate) and the ledger verifies; 1 otherwise; 2, with one line, for a
flag that cannot be used, a pipeline that cannot be built (neither MESHFLOW_MOCK=1 nor
ANTHROPIC_API_KEY), or a live run whose cost preview is above the budget.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from meshflow_nb import (
    EventType,
    MeshEvent,
    MeshflowError,
    MockAgent,
    MockCritic,
    Policy,
    RunResult,
    ScriptParser,
    check_cost,
    current_prices,
    estimate_cost,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "budgets.duckdb")
DEFAULT_BUDGET = 0.05
GOVERNED_ENDS = ("completed", "budget_exceeded", "rejected_at_gate")
MOCK_ROLES = {"researcher": ("researcher", None), "analyst_a": ("executor", "technical"),
              "analyst_b": ("executor", "business"), "writer": ("executor", "writer"),
              "publisher": ("orchestrator", None)}
"""The role and angle of each capstone agent but the critic, to rebuild it on a model."""


def budget_flag(text: str) -> float:
    """A budget in USD: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of USD, such as 0.05") \
            from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a budget is a number of USD above 0; "
                                         "--no-budget switches the layer off")
    return value


def model_flag(text: str) -> tuple[str, str]:
    """``writer=claude-haiku-4-5``: a capstone node and a model of the price table."""
    node, _, model = text.partition("=")
    nodes = [*MOCK_ROLES, "quality_gate"]
    if node not in nodes or not model:
        raise argparse.ArgumentTypeError(f"{text!r}: write NODE=MODEL, NODE one of "
                                         f"{', '.join(nodes)}")
    if model not in current_prices():
        raise argparse.ArgumentTypeError(f"{model!r} is not in the price table; it knows "
                                         f"{', '.join(current_prices())}")
    return node, model


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    caps = parser.add_mutually_exclusive_group()
    caps.add_argument("--budget", type=budget_flag, default=DEFAULT_BUDGET, metavar="USD",
                      help=f"the policy's budget_usd (default: {DEFAULT_BUDGET})")
    caps.add_argument("--no-budget", action="store_true",
                      help="switch the budget layer off (budget_usd=None)")
    parser.add_argument("--runaway", action="store_true",
                        help="a critic that never passes a draft, and a loop guard of 8")
    parser.add_argument("--model", type=model_flag, action="append", default=[],
                        metavar="NODE=MODEL", help="run one node's mock agent on another "
                        "model of the price table (exercise 3); repeatable")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the gate")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the pipeline works on")
    return parser.parse_args(argv)


def agents_on(models: list[tuple[str, str]], scores: list[float] | None) -> dict[str, object]:
    """Mock agents for the nodes given another model (the others keep the builder's)."""
    agents: dict[str, object] = {}
    for node, model in models:
        if node == "quality_gate":
            agents[node] = MockCritic(scores=scores, model=model)
        else:
            role, angle = MOCK_ROLES[node]
            agents[node] = MockAgent(role, angle=angle, model=model)
    return agents


def cost_lines() -> Callable[[MeshEvent], None]:
    """A subscriber that prints each priced execution and each budget stop as it happens."""
    spent = 0.0

    def show(event: MeshEvent) -> None:
        nonlocal spent
        if event.type is EventType.NODE_COMPLETE and event.payload.get("model"):
            spent += event.cost_usd or 0.0
            name = event.node_id + (f" #{event.payload['iteration']}"
                                    if event.payload.get("iteration", 1) > 1 else "")
            print(f"  {name:<16} {event.payload['model']:<18} {event.tokens_in:>5} in "
                  f"{event.tokens_out:>5} out  ${event.cost_usd:.6f}   spent ${spent:.6f}")
        elif event.type is EventType.BUDGET_EXCEEDED:
            payload = event.payload
            print(f"  budget_exceeded  when={payload['when']} node={event.node_id} "
                  f"spent={payload['spent']} estimate={payload['estimate']} cap={payload['cap']}")
            print(f"                   {payload['message']}")
    return show


def per_node(result: RunResult) -> list[str]:
    """What each node cost over the run, dearest first."""
    costs: dict[str, list[float]] = {}
    for event in result.events:
        if event.type is EventType.NODE_COMPLETE and event.payload.get("model"):
            costs.setdefault(event.node_id, []).append(event.cost_usd or 0.0)
    total = sum(map(sum, costs.values())) or 1.0
    return [f"  {node:<14} ${sum(c):.4f}  {sum(c) / total:4.0%}  {len(c)} execution(s)"
            for node, c in sorted(costs.items(), key=lambda item: -sum(item[1]))]


def main(argv: list[str] | None = None) -> int:
    """Run the capstone under the budget the flags say; the exit status says how it went."""
    args = parse(argv)
    scores = [0.5] if args.runaway else None
    policy = Policy(budget_usd=None if args.no_budget else args.budget)
    try:
        pipeline = build_capstone_pipeline(agents=agents_on(args.model, scores) or None,
                                           quality_scores=scores,
                                           max_revisions=8 if args.runaway else 2)
        if args.model and not all(isinstance(node.agent, MockAgent) for node in pipeline.nodes
                                  if not node.is_gate):
            raise MeshflowError("--model changes mock agents: set MESHFLOW_MOCK=1 (in live "
                                "mode, MESHFLOW_MODEL sets every agent's model)")
        preview = estimate_cost(pipeline, args.task)
        if preview.calls:  # live agents: what the run could cost, before any call
            print(preview.describe() + "\n")
        check_cost(preview, policy.budget_usd, what="the budget")
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    if policy.budget_usd is None:
        print("Budget: none (budget_usd=None), the budget layer is off\n")
    else:
        print(f"Budget: ${policy.budget_usd:g}. Before each execution the layer refuses it if "
              "the spend plus its estimate\nwould pass the budget; after each one it stops the "
              "run once the spend has passed it.\n")
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = pipeline.run(args.task, approver=approver, policy=policy, on_event=cost_lines())
    print(f"\n{result.status.value}: ${result.totals.cost_usd:.4f} over "
          f"{result.totals.node_executions} node executions\n")
    print("Cost per node:\n" + "\n".join(per_node(result)))
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n{check.report()}")
    return 0 if result.status.value in GOVERNED_ENDS and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
