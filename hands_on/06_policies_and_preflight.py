"""Lesson 06 hands-on: policies, modes and pre-flight.

    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py                  # REGULATED
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --mode dev       # layers off
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --no-gate        # P001
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --no-gate --no-role --no-caps
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --check-only     # CI: no run
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --compare        # the modes
    MESHFLOW_MOCK=1 python3 hands_on/06_policies_and_preflight.py --reject         # reviewer: no

The workflow is the lesson's press release: a researcher, a writer, a human gate and a
publisher, an EXTERNAL_IO node that sends the draft out (here: prints it). The script
prints the policy (describe()), then the workflow's pre-flight report, then runs it and
verifies the run's entries in the ledger (MESHFLOW_LEDGER_DB, default policies.duckdb).

Each --no-* flag gets one thing wrong on purpose, as the lesson does: --no-gate leaves
the human gate out (P001 under REGULATED; STANDARD asks at run time instead; DEV lets
it through), --no-role gives the writer no role (P006), --no-caps leaves out the cost
and carbon caps REGULATED demands (P003). Under REGULATED, pre-flight reports every
problem at once and the run is refused before any node runs; the refusal is recorded
in the ledger too. --check-only runs pre-flight and nothing else: the way to check a
workflow in CI before anything is deployed.

The exit status is 0 when the run ends the way the flags say it should (refused by
pre-flight when a --no-* flag breaks a rule of the mode; rejected at the gate with
--reject; completed otherwise; with --check-only, when pre-flight passes) and the ledger
verifies; 1 otherwise; 2, with one line saying what to fix, for a flag that cannot work
(a cap that is not a positive number) or agents that cannot be made (neither
MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from meshflow_nb import (
    HumanGate,
    MeshflowError,
    Node,
    Policy,
    PolicyMode,
    RiskTier,
    Role,
    RunResult,
    ScriptParser,
    WorkflowDefinition,
    agent_for,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "policies.duckdb")
SCRIPT = Path(__file__).name
TASK = "Announce our new solid-state battery line to the press"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[m.value for m in PolicyMode], default="regulated",
                        help="the policy's mode (default: regulated)")
    parser.add_argument("--no-gate", action="store_true",
                        help="leave out the human gate before the publisher (P001)")
    parser.add_argument("--no-role", action="store_true",
                        help="give the writer no role (P006 under REGULATED)")
    parser.add_argument("--no-caps", action="store_true",
                        help="no cost cap and no carbon cap (P003 under REGULATED)")
    parser.add_argument("--budget", type=float, default=0.05, metavar="USD",
                        help="the cost cap (default: 0.05)")
    parser.add_argument("--carbon", type=float, default=5.0, metavar="GRAMS",
                        help="the carbon cap in grams CO2e (default: 5)")
    parser.add_argument("--check-only", action="store_true",
                        help="run pre-flight only: exit 0 when it passes, 1 when it does not")
    parser.add_argument("--compare", action="store_true",
                        help="print DEV, STANDARD and REGULATED side by side, and exit")
    parser.add_argument("--reject", action="store_true",
                        help="the reviewer rejects the draft at the gate")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    return parser.parse_args(argv)


def publish(ctx: Any) -> str:
    """Send the draft out: the one action of the workflow that leaves the building."""
    draft = str(next(iter(ctx.inputs.values())))
    print(f"\n>>> sent to the press wire: {draft.splitlines()[0][:70]}\n")
    return f"sent to the press wire ({len(draft)} characters)"


def press_release(args: argparse.Namespace, policy: Policy) -> WorkflowDefinition:
    """researcher -> writer -> (a human gate) -> publisher, as the flags build it."""
    wf = (WorkflowDefinition("press_release", policy=policy)
          .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER,
                         RiskTier.READ_ONLY))
          .add_node(Node("writer", agent_for(Role.EXECUTOR),
                         None if args.no_role else Role.EXECUTOR))
          .add_node(Node("publisher", publish, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO,
                         description="sends the draft to the press wire"))
          .add_edge("researcher", "writer"))
    if args.no_gate:
        return wf.add_edge("writer", "publisher")
    return (wf.add_node(HumanGate("approve_publisher", content_from="writer"))
              .add_edge("writer", "approve_publisher")
              .add_edge("approve_publisher", "publisher"))


def policy_of(args: argparse.Namespace) -> Policy:
    """The policy the flags ask for (a ConfigError when a cap is not a positive number)."""
    caps = {} if args.no_caps else {"budget_usd": args.budget, "carbon_budget_g": args.carbon}
    return Policy(args.mode, **caps)


def expected(args: argparse.Namespace) -> str:
    """How the run should end with these flags (what the lesson shows)."""
    regulated = args.mode == PolicyMode.REGULATED.value
    if regulated and (args.no_gate or args.no_role or args.no_caps):
        return "rejected_preflight"
    if args.mode == PolicyMode.DEV.value:  # the policy approves every gate itself
        return "completed"
    return "rejected_at_gate" if args.reject else "completed"


def compare() -> int:
    """Print the three modes side by side (the notebook's compare_policies table)."""
    from meshflow_nb.notebook import compare_policies  # the notebook layer, only here

    print(compare_policies(*(Policy(mode) for mode in PolicyMode)))
    return 0


def verified(result: RunResult, ledger: ReplayLedger) -> bool:
    """Read the run back from the ledger and verify its hash chain; say what was found."""
    if result.unrecorded == len(result.events):  # refused before a single entry (P008)
        print(f"\nLedger {redacted_location(LEDGER_DB)}: nothing of run {result.run_id} "
              "was recorded.")
        return False
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n{check.report()}")
    return check.valid


def main(argv: list[str] | None = None) -> int:
    """Build, check, run and verify; the exit status says whether it went as expected."""
    args = parse(argv)
    if args.compare:
        return compare()
    try:  # a cap that is not a positive number, or agents that cannot be made: one line
        policy = policy_of(args)
        workflow = press_release(args, policy)
    except MeshflowError as err:
        print(f"{SCRIPT}: error: {err}", file=sys.stderr)
        return 2
    print(policy.describe() + "\n")
    ledger = ReplayLedger(LEDGER_DB)
    report = ledger.attach(workflow).preflight()  # checks only: nothing runs or is recorded
    if args.check_only:
        print(report)
        return 0 if report.ok else 1
    if report.ok:  # a rejection's report is printed with the run
        print(f"{report}\n")
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = run_and_print(workflow, TASK, approver=approver)
    if args.mode == PolicyMode.DEV.value and args.reject and result.decisions:
        print(f"\nDEV approved {result.decisions[0].node_id} itself "
              f"(by {result.decisions[0].reviewer!r}): --reject was never asked.")
    ok = verified(result, ledger)
    return 0 if result.status.value == expected(args) and ok else 1


if __name__ == "__main__":
    sys.exit(main())
