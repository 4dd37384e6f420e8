"""Lesson 10 hands-on: a human gate in front of an EXTERNAL_IO action, decided your way.

    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py             # scripted approval
    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py --reject --reason "wrong count"
    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py --ask       # the terminal prompt
    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py --store     # decide from terminal 2
    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py --no-hitl   # the layer off
    MESHFLOW_MOCK=1 python3 hands_on/10_human_in_the_loop.py --store --timeout 5   # nobody answers

The workflow is the lesson's: research (READ_ONLY) -> write (INTERNAL) -> review (a
HumanGate) -> publish (EXTERNAL_IO, it "sends" the post). With --store the run waits in
the decision store; in a second terminal, in the same directory:

    meshflow-nb pending
    meshflow-nb approve RUN_ID --reviewer NAME [--reject --reason TEXT]

--no-hitl builds the workflow without its gate and switches the human-in-the-loop layer
off: the post goes out and nobody was asked. That is what the layer prevents.

Every run is recorded in the ledger (--ledger, else MESHFLOW_LEDGER_DB, else
gates.duckdb) and the script ends by verifying its hash chain and printing who decided.
Exit status: 0 when the run ended at a decision (completed, or rejected at the gate)
and the ledger verifies; 1 otherwise; 2, with one line, for a usage mistake.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from meshflow_nb import (
    HumanGate,
    HumanInLoopConfig,
    Node,
    Policy,
    RiskTier,
    Role,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location

TASK = "Announce the battery-recycling programme to our customers"
DECIDED = ("completed", "rejected_at_gate")


def research(ctx) -> str:
    """The facts the post is built on."""
    return "Customers can return old batteries at 140 stores from 1 March."


def write(ctx) -> str:
    """The draft the reviewer reads at the gate."""
    return ("# Recycle your old batteries with us\n\nFrom 1 March, bring used batteries to "
            "any of our 140 stores.")


def publish(ctx) -> str:
    """The action nobody can take back (here it only says so)."""
    return "sent to 12,000 customers"


def announcement(gate: HumanGate | None, policy: Policy) -> WorkflowDefinition:
    """research -> write -> [gate ->] publish (EXTERNAL_IO), governed by ``policy``."""
    workflow = (WorkflowDefinition("announce", policy=policy)
                .add_node(Node("research", research, Role.RESEARCHER, RiskTier.READ_ONLY))
                .add_node(Node("write", write, Role.EXECUTOR, RiskTier.INTERNAL))
                .add_node(Node("publish", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
                .add_edge("research", "write"))
    if gate is None:
        return workflow.add_edge("write", "publish")
    return workflow.add_node(gate).add_edge("write", gate.id).add_edge(gate.id, "publish")


def positive_seconds(text: str) -> float:
    """A --timeout value: seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError("a timeout is a number of seconds above 0 and "
                                         "below a day")
    return value


def parser() -> argparse.ArgumentParser:
    """The flags: who decides, how long the gate waits, where the ledger is."""
    args = ScriptParser(description=__doc__.splitlines()[0])
    who = args.add_mutually_exclusive_group()
    who.add_argument("--reject", action="store_true",
                     help="the scripted reviewer rejects (with --reason)")
    who.add_argument("--ask", action="store_true",
                     help="ask at this terminal: [y/N], reviewer, reason")
    who.add_argument("--store", action="store_true",
                     help="wait for 'meshflow-nb approve' from another terminal")
    who.add_argument("--no-hitl", action="store_true",
                     help="no gate and the layer off: see what it prevents")
    args.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                      help="the name recorded with a scripted decision")
    args.add_argument("--reason", default="", help="the reason recorded with it")
    args.add_argument("--timeout", type=positive_seconds, metavar="S",
                      help="the gate rejects if nobody decides within S seconds")
    args.add_argument("--ledger", default=os.environ.get("MESHFLOW_LEDGER_DB", "gates.duckdb"),
                      help="the ledger file (default: MESHFLOW_LEDGER_DB or gates.duckdb)")
    return args


def approver_for(args: argparse.Namespace):
    """The approver the flags ask for; None lets the run pick (terminal or store)."""
    if args.store:
        os.environ["MESHFLOW_HITL"] = "store"
        return None
    if args.ask:
        os.environ.pop("MESHFLOW_HITL", None)   # a terminal on both ends: the prompt asks
        return None
    reason = args.reason or ("rejected with --reject" if args.reject else "approved by script")
    return fixed_approver(not args.reject, args.reviewer, reason, channel="script")


def main(argv: list[str] | None = None) -> int:
    """Run the gated workflow as the flags say; verify the ledger; the exit status says how."""
    args = parser().parse_args(argv)
    if args.ask and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"{Path(__file__).name}: error: --ask needs a terminal on stdin and stdout; "
              "use --store to decide from another terminal", file=sys.stderr)
        return 2
    gate = None if args.no_hitl else HumanGate(
        "review", prompt="Send this post to all customers?", content_from="write",
        timeout_s=args.timeout)
    policy = Policy(human_in_loop=HumanInLoopConfig(enabled=not args.no_hitl))
    ledger = ReplayLedger(args.ledger)
    workflow = ledger.attach(announcement(gate, policy))
    if args.store:
        print("Waiting at the gate. In another terminal: meshflow-nb pending, then "
              "meshflow-nb approve RUN_ID --reviewer NAME [--reject --reason TEXT]\n")
    result = run_and_print(workflow, TASK, approver=approver_for(args))
    for decision in result.decisions:
        print(f"\nDecided: {decision.describe()} at {decision.decided_at}")
    if args.no_hitl:
        print("\nNobody was asked: the layer is off and the post went out.")
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(args.ledger)}, run {result.run_id}:\n{check.report()}")
    return 0 if result.status.value in DECIDED and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
