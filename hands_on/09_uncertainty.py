"""Lesson 09 hands-on: uncertainty.

    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py                   # STANDARD: 0.7 / 0.9
    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py --stream          # every event, live
    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py --reject          # the reviewer says no
    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py --off             # the layer switched off
    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py --escalate 0.8    # other thresholds
    MESHFLOW_MOCK=1 python3 hands_on/09_uncertainty.py --capstone --escalate 0.22

The workflow is the lesson's (sections 2 to 5): lookup answers a customer's question from
a knowledge base and reports its confidence, reply writes the customer's reply from it,
outbox queues the reply. It runs once per question: the warranty (confidence 0.95), a
cracked screen (0.25) and water resistance (0.05, a guess no source supports). Each run
is governed by a STANDARD policy whose uncertainty thresholds are --escalate and --block
(--off switches the layer off and leaves the rest of the policy as it is). An escalation
asks a scripted reviewer, who approves (or, with --reject, rejects).

--capstone runs lesson 16's capstone instead, once, and prints the uncertainty of every
agent execution: the distribution that thresholds should be set against.

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default uncertainty.duckdb); the
script ends by verifying each run's hash chain. Exit status: 0 when every chain verifies
and the guess about water resistance never reached the outbox; 1 when it did (the layer
off, a block threshold above 0.95, or an approved escalation) or a chain does not verify;
2, with one line, for a flag that cannot be used.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from meshflow_nb import (
    AgentResult,
    MeshEvent,
    MeshflowError,
    Node,
    NodeContext,
    Policy,
    RiskTier,
    Role,
    RunResult,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import uncertainty_table
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "uncertainty.duckdb")
KNOWLEDGE = {  # question: (the answer lookup gives, its confidence)
    "How long is the warranty on the X200?":
        ("The warranty covers parts and labour for 2 years.", 0.95),
    "Does the warranty cover a cracked screen?":
        ("Probably not: accidental damage is usually excluded.", 0.25),
    "Is the X200 waterproof to 50 m?": ("Yes, the X200 is waterproof to 50 m.", 0.05),
}
GUESS = "waterproof to 50 m"
"""What the guess says: no source supports it, and lookup reports an uncertainty of 0.95."""


def threshold(text: str) -> float:
    """A threshold: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a threshold is from 0 to 1")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--escalate", type=threshold, default=0.7, metavar="U",
                        help="ask a human above this uncertainty (default: 0.7, STANDARD)")
    parser.add_argument("--block", type=threshold, default=0.9, metavar="U",
                        help="block the node above this uncertainty (default: 0.9, STANDARD)")
    parser.add_argument("--off", action="store_true",
                        help="switch the uncertainty layer off (enable_uncertainty=False)")
    parser.add_argument("--reject", action="store_true",
                        help="the reviewer rejects every escalation")
    parser.add_argument("--stream", action="store_true", help="print every event as it happens")
    parser.add_argument("--capstone", action="store_true",
                        help="run lesson 16's capstone once instead, and print its distribution")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with each decision")
    args = parser.parse_args(argv)
    if args.escalate > args.block:
        parser.error(f"--escalate {args.escalate:g} is above --block {args.block:g}: nothing "
                     "could ever escalate")
    return args


def lookup(ctx: NodeContext) -> AgentResult:
    """Finds the answer in the knowledge base, and says how sure it is."""
    answer, confidence = KNOWLEDGE[ctx.task]
    return AgentResult(text=answer, confidence=confidence)


def reply(ctx: NodeContext) -> AgentResult:
    """Writes the customer's reply from the answer it received, as a statement of fact."""
    return AgentResult(text=f"Dear customer, {ctx.inputs['lookup']} Kind regards, the X200 team.",
                       confidence=0.9)


def outbox(ctx: NodeContext) -> str:
    """Queues what it received for sending to the customer."""
    return "Queued for the customer: " + " | ".join(map(str, ctx.inputs.values()))


def support_workflow() -> WorkflowDefinition:
    """The lesson's three-node support workflow."""
    return (WorkflowDefinition("support_reply")
            .add_node(Node("lookup", lookup, Role.RESEARCHER, RiskTier.READ_ONLY))
            .add_node(Node("reply", reply, Role.EXECUTOR))
            .add_node(Node("outbox", outbox, Role.ORCHESTRATOR))
            .add_edge("lookup", "reply")
            .add_edge("reply", "outbox"))


def show(event: MeshEvent) -> None:
    """--stream: one line per event, as it happens."""
    print("  " + event.describe()[:150])


def report(result: RunResult) -> list[str]:
    """One line per agent execution: its uncertainty and what the layer did."""
    lines = []
    for row in uncertainty_table(result).itertuples():
        value = "  none" if math.isnan(row.uncertainty) else f"{row.uncertainty:.3f}"
        name = row.node if row.iteration == 1 else f"{row.node} #{row.iteration}"
        lines.append(f"  {name:<16} uncertainty {value}  {row.verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the questions (or the capstone) under the thresholds the flags say."""
    args = parse(argv)
    try:
        policy = Policy(enable_uncertainty=not args.off, uncertainty_escalate=args.escalate,
                        uncertainty_block=args.block)
        workflow = build_capstone_pipeline() if args.capstone else support_workflow()
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(workflow)
    print(policy.describe().splitlines()[3].strip() + "\n")
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    tasks = [CAPSTONE_TASK] if args.capstone else list(KNOWLEDGE)
    guessed, valid = False, True
    for task in tasks:
        print(task)
        result = workflow.run(task, approver=approver, policy=policy,
                              on_event=show if args.stream else None)
        print("\n".join(report(result)))
        sent = result.outputs.get("outbox")
        if args.capstone:
            print(f"  {result.status.value}: the publisher ran: {'publisher' in result.executed}")
        else:
            print(f"  {result.status.value}: " + (sent or "nothing reached the outbox"))
        check = ledger.verify_chain(result.run_id)
        print(f"  ledger: {check.report().splitlines()[0]}\n")
        valid = valid and check.valid
        guessed = guessed or (sent is not None and GUESS in sent)
    if guessed:
        print("A guess that the agent itself called a guess reached the outbox.")
    return 0 if valid and not guessed else 1


if __name__ == "__main__":
    sys.exit(main())
