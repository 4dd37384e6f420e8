"""Lesson 02 hands-on: agents and roles, in the lesson's pipeline, brief_desk.

    MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py                  # standard mode
    MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py --context        # the editor's ctx
    MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py --reject         # reviewer says no
    MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py --tier INTERNAL  # nobody is asked
    MESHFLOW_MOCK=1 python3 hands_on/02_agents_and_roles.py --stream         # JSON lines

brief_desk is five mock agents, one per kind of work (researcher, analyst, writer,
critic, publisher), and one agent of yours, the editor: a coroutine that reads the
writer's draft from ctx.outputs and the critic's exported quality_score from
ctx.variables, and returns an AgentResult with its tokens, its cost at
claude-haiku-4-5's prices and its confidence. MockAgent is a mock whatever the
environment says; MESHFLOW_MOCK=1 is the course's usual setting, kept here.

The policy turns on one layer, human-in-the-loop: every node at or above EXTERNAL_IO
waits for a human before it runs. The publisher is EXTERNAL_IO, so the reviewer is asked
(here a scripted decision: --reject says no). With --tier INTERNAL (or READ_ONLY) the
same publisher is below the threshold and publishes without asking anyone: the policy
trusts the tier you give a node.

Every event goes to the audit ledger (MESHFLOW_LEDGER_DB, default agents_and_roles.db),
and every mode ends by verifying its hash chain. The exit status is 0 when the run ends
the way its mode demonstrates (completed; rejected at the approval with --reject, when
the tier asks for one) and the ledger verifies; 1 otherwise; 2, with one line saying
what to do, for a flag that is not one of these or a ledger that cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshflow_nb import (
    PRICES,
    AgentResult,
    HumanInLoopConfig,
    MeshflowError,
    MockAgent,
    MockCritic,
    Node,
    NodeContext,
    Policy,
    PolicyMode,
    RiskTier,
    Role,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location

TASK = "Summarise what heat pumps cost to run in a cold climate"
LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "agents_and_roles.db")
EDITOR_PRICE = PRICES["claude-haiku-4-5"]
Agent = Callable[[NodeContext], Any]


async def editor(ctx: NodeContext) -> AgentResult:
    """Put the critic's score under the writer's draft, and say what the edit cost."""
    draft = ctx.outputs["writer"]           # the draft: the writer ran earlier
    score = ctx.variables["quality_score"]  # exported by the critic
    await asyncio.sleep(0.05)               # stands for the model call
    text = f"{draft}\n\nChecked before publication: quality score {score:.2f}."
    tokens_in, tokens_out = len(draft) // 4, len(text) // 4  # about 4 characters per token
    return AgentResult(
        text=text, tokens_in=tokens_in, tokens_out=tokens_out,
        cost_usd=(tokens_in * EDITOR_PRICE.input_usd_per_mtok
                  + tokens_out * EDITOR_PRICE.output_usd_per_mtok) / 1_000_000,
        model=EDITOR_PRICE.model, confidence=0.9)


def showing_context(agent: Agent) -> Agent:
    """``agent``, printing what its context holds before each call (--context)."""
    async def shown(ctx: NodeContext) -> AgentResult:
        variables = {name: value for name, value in ctx.variables.items() if name != "feedback"}
        print(f"  context {ctx.node_id} ({ctx.role}), iteration {ctx.iteration}: task "
              f"{ctx.task!r}\n    inputs from {sorted(ctx.inputs)}, outputs of "
              f"{sorted(ctx.outputs)}\n    variables {variables}, and feedback "
              f"({len(ctx.variables.get('feedback', ''))} characters)", flush=True)
        return await agent(ctx)
    return shown


def build_brief_desk(publisher_tier: RiskTier = RiskTier.EXTERNAL_IO, *,
                     policy: Policy | None = None, context: bool = False) -> WorkflowDefinition:
    """The lesson's pipeline: five mock agents and the editor (``context``: printing
    what it receives)."""
    return (
        WorkflowDefinition("brief_desk", policy=policy)
        .add_node(Node("researcher", MockAgent(Role.RESEARCHER), Role.RESEARCHER,
                       RiskTier.READ_ONLY, description="Gather facts on the task"))
        .add_node(Node("analyst", MockAgent(Role.EXECUTOR, angle="business"), Role.EXECUTOR,
                       RiskTier.INTERNAL, description="Analyse the facts from the business angle"))
        .add_node(Node("writer", MockAgent(Role.EXECUTOR, angle="writer"), Role.EXECUTOR,
                       RiskTier.INTERNAL, description="Draft the brief"))
        .add_node(Node("critic", MockCritic(), Role.CRITIC, RiskTier.READ_ONLY,
                       exports=["quality_score", "feedback"], description="Score the draft"))
        .add_node(Node("editor", showing_context(editor) if context else editor,
                       Role.EXECUTOR, RiskTier.INTERNAL,
                       description="Put the critic's score under the draft"))
        .add_node(Node("publisher", MockAgent(Role.ORCHESTRATOR), Role.ORCHESTRATOR,
                       publisher_tier, description="Publish the brief in the newsletter"))
        .add_edge("researcher", "analyst")
        .add_edge("analyst", "writer")
        .add_edge("writer", "critic")
        .add_edge("critic", "editor")
        .add_edge("editor", "publisher")
    )


def governed(timeout_s: float) -> Policy:
    """One layer on: a human approves every node at or above EXTERNAL_IO before it runs."""
    return Policy(PolicyMode.DEV, human_in_loop=HumanInLoopConfig(
        enabled=True, tier_threshold=RiskTier.EXTERNAL_IO, timeout_s=timeout_s))


def parser() -> argparse.ArgumentParser:
    """The script's flags."""
    flags = ScriptParser(description=__doc__.splitlines()[0],
                          epilog="\n".join(__doc__.splitlines()[1:8]),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_argument("--reject", action="store_true",
                       help="the reviewer rejects the publisher at its approval")
    flags.add_argument("--tier", choices=[tier.name for tier in RiskTier], default="EXTERNAL_IO",
                       help="the publisher's risk tier (default EXTERNAL_IO); below "
                            "EXTERNAL_IO nobody is asked")
    flags.add_argument("--context", action="store_true",
                       help="print what the editor receives in its context")
    flags.add_argument("--stream", action="store_true",
                       help="print every event as one JSON line as it happens")
    flags.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                       help="the name recorded with the decision")
    flags.add_argument("--task", default=TASK, help="what the pipeline works on")
    return flags


def main(argv: list[str] | None = None) -> int:
    """Run brief_desk under the approval policy; verify the ledger; 0, 1 or 2."""
    args = parser().parse_args(argv)
    notes = sys.stderr if args.stream else sys.stdout
    tier = RiskTier[args.tier]
    policy = governed(timeout_s=900.0)
    try:
        ledger = ReplayLedger(LEDGER_DB)
    except MeshflowError as err:  # a file that is not a ledger, a folder that is not there
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    desk = ledger.attach(build_brief_desk(tier, policy=policy, context=args.context))
    for node in desk.nodes:
        print(f"  {node.id:<11} {node.role.name:<13} {node.risk_tier.name:<12} "
              f"{node.description}", file=notes)
    print(file=notes)
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = run_and_print(desk, args.task, stream=args.stream, approver=approver)
    asked = sum(e.type.value == "gate_pause" for e in result.events)
    print(f"\nApprovals asked: {asked} (the publisher is {tier.name}; the policy asks at "
          f"{policy.human_in_loop.tier_threshold.name} and above)", file=notes)

    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n"
          f"{check.report()}", file=notes)
    rejected = args.reject and tier >= policy.human_in_loop.tier_threshold
    expected = "rejected_at_gate" if rejected else "completed"
    return 0 if result.status.value == expected and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
