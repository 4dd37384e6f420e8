"""Lesson 04 hands-on: conditions and quality loops.

    MESHFLOW_MOCK=1 python3 hands_on/04_conditions_and_loops.py                       # one revision
    MESHFLOW_MOCK=1 python3 hands_on/04_conditions_and_loops.py --scores 0.4,0.5,0.6  # guard spent
    MESHFLOW_MOCK=1 python3 hands_on/04_conditions_and_loops.py --send-back "qualty_score < 0.8"
    MESHFLOW_MOCK=1 python3 hands_on/04_conditions_and_loops.py --reject              # reviewer: no
    MESHFLOW_MOCK=1 python3 hands_on/04_conditions_and_loops.py --stream              # JSON events

The workflow is the lesson's draft loop: a writer, a critic that scores each draft, a
loop edge back to the writer while the score is below the bar (at most --max-iterations
revisions), a human gate, and a publisher (an EXTERNAL_IO action):

    writer -> critic -> writer      when quality_score < 0.8  (at most 2 revisions)
              critic -> hitl_gate   when quality_score >= 0.8 (or once the revisions are spent)
    hitl_gate -> publisher

The critic is scripted: --scores gives its score for each draft, first draft first (the
last one again if the writer writes more drafts than there are scores), so every run
is the same. --send-back and --send-on replace the two conditions: try a typo, an
unknown name or a hostile string, and read what pre-flight says before any node runs.

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default conditions.duckdb); the script
ends by printing the loop draft by draft and verifying the run's hash chain. Exit
status: 0 when the run ends the way its mode demonstrates (published, or rejected at
the gate with --reject) and the ledger verifies; 1 otherwise (pre-flight rejected the
workflow, a condition failed at run time, or the draft reached neither the writer nor
the gate); 2, with one line, for a flag that cannot be used.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from meshflow_nb import (
    EventType,
    HumanGate,
    Node,
    NodeContext,
    RiskTier,
    Role,
    RunResult,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "conditions.duckdb")
TASK = "Write a one-page brief on heat pumps for a city council"
SEND_BACK = "quality_score < 0.8"
SEND_ON = "quality_score >= 0.8"


def writer(ctx: NodeContext) -> str:
    """Write a draft; a revision says what the critic asked for."""
    if ctx.iteration == 1:
        return f"Draft 1: {ctx.task}"
    return f"Draft {ctx.iteration}: {ctx.task} (revised: {ctx.variables['feedback']})"


def scripted_critic(scores: Sequence[float]) -> Callable[[NodeContext], dict[str, Any]]:
    """A critic that gives draft n the n-th score (the last one again once they run out)."""
    def critic(ctx: NodeContext) -> dict[str, Any]:
        score = scores[min(ctx.iteration, len(scores)) - 1]
        return {"quality_score": score,
                "feedback": "cite your sources" if score < 0.8 else "ready"}
    return critic


def publisher(ctx: NodeContext) -> str:
    """Publish what the human gate approved."""
    return f"Published: {ctx.inputs['hitl_gate']}"


def draft_loop(scores: Sequence[float], send_back: str = SEND_BACK, send_on: str = SEND_ON,
               max_iterations: int = 2, name: str = "draft_loop") -> WorkflowDefinition:
    """writer -> critic -> (back to the writer | on to the human gate) -> publisher."""
    return (
        WorkflowDefinition(name)
        .add_node(Node("writer", writer, Role.EXECUTOR))
        .add_node(Node("critic", scripted_critic(scores), Role.CRITIC,
                       exports=["quality_score", "feedback"]))
        .add_node(HumanGate("hitl_gate", content_from="writer", prompt="Publish this draft?"))
        .add_node(Node("publisher", publisher, Role.ORCHESTRATOR, RiskTier.EXTERNAL_IO))
        .add_edge("writer", "critic")
        .add_conditional_edge("critic", "writer", condition=send_back,
                              max_iterations=max_iterations)
        .add_conditional_edge("critic", "hitl_gate", condition=send_on)
        .add_edge("hitl_gate", "publisher")
    )


def scores_flag(text: str) -> list[float]:
    """``0.4,0.5,0.6`` as a list of scores between 0 and 1."""
    try:
        scores = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of numbers; write e.g. 0.4,0.5,0.6") from None
    if not all(math.isfinite(s) and 0 <= s <= 1 for s in scores):
        raise argparse.ArgumentTypeError(f"{text!r}: every score must be between 0 and 1")
    return scores


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=scores_flag, default=[0.6, 0.85], metavar="S1,S2,...",
                        help="the critic's score for each draft, first draft first "
                             "(default: 0.6,0.85)")
    parser.add_argument("--send-back", default=SEND_BACK, metavar="CONDITION",
                        help=f"the condition of the loop edge critic -> writer "
                             f"(default: {SEND_BACK})")
    parser.add_argument("--send-on", default=SEND_ON, metavar="CONDITION",
                        help=f"the condition of critic -> hitl_gate (default: {SEND_ON})")
    parser.add_argument("--max-iterations", type=int, default=2, metavar="N",
                        help="how many times the loop may send a draft back (default: 2)")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the gate")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--stream", action="store_true",
                        help="print every event as one JSON line as it happens")
    parser.add_argument("--task", default=TASK, help="what the writer works on")
    return parser.parse_args(argv)


def loop_lines(result: RunResult) -> list[str]:
    """The quality loop draft by draft: each score, and what the loop did with it."""
    lines = []
    for event in result.events:
        if event.type is EventType.NODE_COMPLETE and event.node_id == "critic":
            lines.append(f"  draft {event.payload['iteration']}: quality_score="
                         f"{event.payload.get('quality_score')}")
        elif event.type is EventType.LOOP_ITERATION:
            lines.append(f"    -> back to the writer (revision {event.payload['iteration']} "
                         f"of {event.payload['max_iterations']})")
        elif event.type is EventType.LOOP_EXHAUSTED:
            lines.append(f"    -> loop_exhausted (seq {event.seq}): the guard is spent, on "
                         "to the gate whatever the score")
        elif event.type is EventType.GATE_PAUSE:
            lines.append("    -> on to the human gate")
    return lines or ["  no draft was scored"]


def outcome(result: RunResult, reject: bool) -> tuple[bool, str]:
    """Whether the run ended the way its mode demonstrates, and a line saying how it ended."""
    ran = {e.node_id for e in result.events if e.type is EventType.NODE_COMPLETE}
    if result.status.value == "rejected_preflight":
        return False, "Pre-flight rejected the workflow: fix what its report names."
    if result.status.value == "completed" and "hitl_gate" not in ran:
        return False, ("Nothing was published: after the last draft neither edge out of "
                       "the critic was taken (read the two conditions at that score).")
    expected = "rejected_at_gate" if reject else "completed"
    if result.status.value != expected:
        return False, f"The run ended {result.status.value}, not {expected}."
    return True, "Published." if not reject else "The reviewer rejected the draft."


def main(argv: list[str] | None = None) -> int:
    """Run the draft loop as the flags say; the exit status says how it went."""
    args = parse(argv)
    notes = sys.stderr if args.stream else sys.stdout
    loop = draft_loop(args.scores, args.send_back, args.send_on, args.max_iterations)
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(loop)
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = run_and_print(loop, args.task, stream=args.stream, approver=approver)
    print("\nThe quality loop, draft by draft:\n" + "\n".join(loop_lines(result)), file=notes)
    expected, said = outcome(result, args.reject)
    print(said, file=notes)
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n"
          f"{check.report()}", file=notes)
    return 0 if expected and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
