"""Lesson 13 hands-on: environmental tracking.

    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py                   # 1 g: stopped
    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py --carbon-budget 0.5
    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py --no-carbon-budget
    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py --runaway --no-carbon-budget
    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py --model claude-haiku-4-5
    MESHFLOW_MOCK=1 python3 hands_on/13_environmental_tracking.py --max-revisions 1 --reject

The pipeline is the capstone of lesson 16 (researcher, two analysts in parallel, a writer
and a critic in a quality loop, a human gate, a publisher), run under a STANDARD policy
(the environmental layer on) whose carbon_budget_g is --carbon-budget (default 1.0) or,
with --no-carbon-budget, None. Each node execution prints as it ends: its tokens, its
estimate in grams CO2e, and the run's grams so far, the number the carbon budget compares
with its cap. A budget_exceeded event prints with its payload.

The estimate is tokens / 1000 x Wh per 1,000 tokens (0.1, 0.3 or 1.0 by model class) /
1000 x 480 g CO2e per kWh (a world-average grid); docs/environmental.md gives the
sources. --runaway is a critic that never passes a draft and a loop guard of 8 revisions;
--model puts every mock agent on one model of the price table (the same work on another
class); --max-revisions sets the quality loop's guard (exercise 3).

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default carbon.duckdb); the script
ends by printing the grams per node and verifying the run's hash chain. Exit status: 0
when the run ended as a governed run ends (completed, stopped by its budget, or rejected
at the gate) and the ledger verifies; 1 otherwise; 2, with one line, for a flag that
cannot be used or a pipeline that cannot be built (neither MESHFLOW_MOCK=1 nor
ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from meshflow_nb import (
    PRICES,
    EventType,
    MeshEvent,
    MeshflowError,
    MockAgent,
    MockCritic,
    Policy,
    RunResult,
    ScriptParser,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "carbon.duckdb")
DEFAULT_BUDGET_G = 1.0
GOVERNED_ENDS = ("completed", "budget_exceeded", "rejected_at_gate")
MOCK_ROLES = {"researcher": ("researcher", None), "analyst_a": ("executor", "technical"),
              "analyst_b": ("executor", "business"), "writer": ("executor", "writer"),
              "publisher": ("orchestrator", None)}
"""The role and angle of each capstone agent but the critic, to rebuild it on a model."""


def grams_flag(text: str) -> float:
    """A carbon budget in grams CO2e: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of grams, such as 1.0") \
            from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a carbon budget is a number of grams "
                                         "above 0; --no-carbon-budget switches it off")
    return value


def model_flag(text: str) -> str:
    """A model of the price table, for every mock agent."""
    if text not in PRICES:
        raise argparse.ArgumentTypeError(f"{text!r} is not in the price table; it knows "
                                         f"{', '.join(PRICES)}")
    return text


def revisions_flag(text: str) -> int:
    """The quality loop's guard: a whole number, 1 or more (pre-flight refuses 0)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: --max-revisions is a whole number, 1 "
                                         "or more")
    return int(text)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    caps = parser.add_mutually_exclusive_group()
    caps.add_argument("--carbon-budget", type=grams_flag, default=DEFAULT_BUDGET_G,
                      metavar="GRAMS",
                      help=f"the policy's carbon_budget_g (default: {DEFAULT_BUDGET_G})")
    caps.add_argument("--no-carbon-budget", action="store_true",
                      help="no carbon budget (carbon_budget_g=None): estimate, never stop")
    parser.add_argument("--runaway", action="store_true",
                        help="a critic that never passes a draft, and a loop guard of 8")
    parser.add_argument("--model", type=model_flag, metavar="MODEL",
                        help="every mock agent on this model of the price table")
    parser.add_argument("--max-revisions", type=revisions_flag, metavar="N",
                        help="the quality loop's guard (default: 2, or 8 with --runaway)")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the gate")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the pipeline works on")
    return parser.parse_args(argv)


def agents_on(model: str | None, scores: list[float] | None) -> dict[str, object] | None:
    """Every capstone mock agent on ``model`` (None: the builder's own agents)."""
    if model is None:
        return None
    agents: dict[str, object] = {node: MockAgent(role, angle=angle, model=model)
                                 for node, (role, angle) in MOCK_ROLES.items()}
    agents["quality_gate"] = MockCritic(scores=scores, model=model)
    return agents


def carbon_lines() -> Callable[[MeshEvent], None]:
    """A subscriber that prints each estimated execution and each budget stop as it ends."""
    emitted = 0.0

    def show(event: MeshEvent) -> None:
        nonlocal emitted
        if event.type is EventType.NODE_COMPLETE and event.payload.get("model"):
            emitted += event.carbon_g or 0.0
            name = event.node_id + (f" #{event.payload['iteration']}"
                                    if event.payload.get("iteration", 1) > 1 else "")
            print(f"  {name:<16} {event.payload['model']:<18} {event.tokens:>6} tokens  "
                  f"{event.carbon_g or 0.0:.6f} g   so far {emitted:.6f} g")
        elif event.type is EventType.BUDGET_EXCEEDED:
            payload = event.payload
            print(f"  budget_exceeded  budget={payload['budget']} when={payload['when']} "
                  f"node={event.node_id} spent={payload['spent']} "
                  f"estimate={payload['estimate']} cap={payload['cap']}")
            print(f"                   {payload['message']}")
    return show


def per_node(result: RunResult) -> list[str]:
    """Each node's grams over the run, largest first."""
    grams: dict[str, list[float]] = {}
    for event in result.events:
        if event.type is EventType.NODE_COMPLETE and event.payload.get("model"):
            grams.setdefault(event.node_id, []).append(event.carbon_g or 0.0)
    total = sum(map(sum, grams.values())) or 1.0
    return [f"  {node:<14} {sum(g):.3f} g  {sum(g) / total:4.0%}  {len(g)} execution(s)"
            for node, g in sorted(grams.items(), key=lambda item: -sum(item[1]))]


def main(argv: list[str] | None = None) -> int:
    """Run the capstone under the carbon budget the flags say; the exit status says how."""
    args = parse(argv)
    scores = [0.5] if args.runaway else None
    revisions = args.max_revisions if args.max_revisions is not None else (
        8 if args.runaway else 2)
    policy = Policy(carbon_budget_g=None if args.no_carbon_budget else args.carbon_budget)
    try:
        pipeline = build_capstone_pipeline(agents=agents_on(args.model, scores),
                                           quality_scores=scores, max_revisions=revisions)
        if args.model and not all(isinstance(node.agent, MockAgent) for node in pipeline.nodes
                                  if not node.is_gate):
            raise MeshflowError("--model changes mock agents: set MESHFLOW_MOCK=1 (in live "
                                "mode, MESHFLOW_MODEL sets every agent's model)")
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    print("Estimate: tokens / 1000 x Wh per 1k tokens (by model class) / 1000 x 480 g CO2e "
          "per kWh\n(docs/environmental.md gives the sources; an estimate, not a measurement)")
    if policy.carbon_budget_g is None:
        print("Carbon budget: none (carbon_budget_g=None): the run is estimated, never "
              "stopped\n")
    else:
        print(f"Carbon budget: {policy.carbon_budget_g:g} g CO2e, checked before and after "
              "each execution\n")
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = pipeline.run(args.task, approver=approver, policy=policy, on_event=carbon_lines())
    print(f"\n{result.status.value}: {result.totals.carbon_g:.3f} g CO2e over "
          f"{result.totals.node_executions} node executions\n")
    print("Grams per node:\n" + "\n".join(per_node(result)))
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n{check.report()}")
    return 0 if result.status.value in GOVERNED_ENDS and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
