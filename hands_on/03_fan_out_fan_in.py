"""Lesson 3 hands-on: fan-out and fan-in, timed from the run's own events.

    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py                   # fan-out vs chain
    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py --branches 4      # a wider fan-out
    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py --fail business   # exercise 2
    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py --nested          # section 6
    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py --capstone        # section 7
    MESHFLOW_MOCK=1 python3 hands_on/03_fan_out_fan_in.py --plot timeline.png

The standard mode builds the lesson's fan-out: a planner, parallel branches (technical,
business, legal, ...) that each work for --seconds, and a writer that joins them. It runs
that, then the same agents as a chain, and prints both timelines (one bar per node
execution, from node_start to its end event) and the speed-up measured from them.

--fail BRANCH makes one branch raise half-way through (exercise 2: what does the join
do?). --nested runs section 6's fan-out inside a fan-out and prints its critical path.
--capstone runs lesson 16's capstone with its mock agents (MESHFLOW_MOCK=1) and a
scripted approval. --plot saves the timelines as a PNG figure.

Every run is recorded in the audit ledger (MESHFLOW_LEDGER_DB, default
fan_out_fan_in.duckdb), and the script ends by verifying it. The exit status is 0 when
the runs end the way their mode demonstrates (completed; failed with --fail) and the
ledger verifies; 1 otherwise; 2, with one line saying what to do, for a bad flag or a
capstone without agents.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshflow_nb import (
    MeshflowError,
    Node,
    Role,
    RunResult,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.notebook import Timeline, plot_timeline
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "fan_out_fan_in.duckdb")
BRANCHES = ("technical", "business", "legal", "market", "cost", "risk")
"""The branches' names, in the order --branches takes them."""
EDGE_SECONDS = 0.05
"""How long the planner and the writer work: the branches are what the lesson times."""


def slow_agent(name: str, seconds: float) -> Callable[[Any], str]:
    """An agent that works for ``seconds`` (time.sleep stands in for a model call)."""
    def agent(ctx: Any) -> str:
        time.sleep(seconds)
        read = f", read {' and '.join(sorted(ctx.inputs))}" if ctx.inputs else ""
        return f"{name} ({seconds:g} s{read})"
    return agent


def failing_agent(seconds: float) -> Callable[[Any], str]:
    """A branch whose call fails half-way through the others' work."""
    def agent(ctx: Any) -> str:
        time.sleep(seconds / 2)
        raise ConnectionError("the service behind this branch is down")
    return agent


def fan_out(branches: list[str], seconds: float, *, chain: bool = False,
            fail: str | None = None) -> WorkflowDefinition:
    """planner -> branches -> writer; with ``chain``, the branches one after the other."""
    wf = WorkflowDefinition("chain" if chain else "fan_out")
    wf.add_node(Node("planner", slow_agent("planner", EDGE_SECONDS), Role.PLANNER))
    for name in branches:
        agent = failing_agent(seconds) if name == fail else slow_agent(name, seconds)
        wf.add_node(Node(name, agent, Role.EXECUTOR))
    wf.add_node(Node("writer", slow_agent("writer", EDGE_SECONDS), Role.EXECUTOR))
    if chain:
        for source, target in zip(["planner", *branches], [*branches, "writer"], strict=True):
            wf.add_edge(source, target)
        return wf
    for name in branches:
        wf.add_edge("planner", name).add_edge(name, "writer")
    return wf


def nested(seconds: float) -> WorkflowDefinition:
    """Section 6: a technical branch that fans out again (cost, risk), beside business."""
    wf = WorkflowDefinition("nested_fan_out")
    for name, factor in (("researcher", 1), ("technical", 1), ("cost", 1), ("risk", 2),
                         ("technical_summary", 1), ("business", 2), ("writer", 1)):
        wf.add_node(Node(name, slow_agent(name, factor * seconds), Role.EXECUTOR))
    for source, target in (("researcher", "technical"), ("researcher", "business"),
                           ("technical", "cost"), ("technical", "risk"),
                           ("cost", "technical_summary"), ("risk", "technical_summary"),
                           ("technical_summary", "writer"), ("business", "writer")):
        wf.add_edge(source, target)
    return wf


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the mode's workflows, print their timelines, verify the ledger."""
    args = parse(argv)
    try:
        runs = run_mode(args)
    except MeshflowError as err:  # the capstone without agents, a ledger that will not open
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    if args.plot:
        plot_timeline({run.workflow: run for run in runs}).savefig(args.plot, dpi=100)
        print(f"\nTimeline figure saved to {args.plot}")
    return 0 if verified(runs) and all(ended_as_shown(run, args) for run in runs) else 1


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked: a mistake exits 2 with one line."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fail", metavar="BRANCH",
                      help="exercise 2: this branch raises half-way through the others")
    mode.add_argument("--nested", action="store_true",
                      help="section 6: a fan-out inside a fan-out, and its critical path")
    mode.add_argument("--capstone", action="store_true",
                      help="section 7: lesson 16's capstone (mock agents), approved by script")
    parser.add_argument("--branches", type=int, default=3,
                        help=f"how many parallel branches (2 to {len(BRANCHES)}; default 3)")
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="how long each branch works (default 0.3)")
    parser.add_argument("--plot", metavar="PNG", help="save the timelines as a PNG figure")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the runs work on")
    args = parser.parse_args(argv)
    if not 2 <= args.branches <= len(BRANCHES):
        parser.error(f"--branches must be 2 to {len(BRANCHES)}, not {args.branches}")
    if not 0 < args.seconds <= 10:
        parser.error(f"--seconds must be above 0 and at most 10, not {args.seconds:g}")
    names = list(BRANCHES[:args.branches])
    if args.fail is not None and args.fail not in names:
        parser.error(f"--fail {args.fail}: no such branch; the branches are {', '.join(names)}")
    if args.plot and not Path(args.plot).parent.is_dir():
        parser.error(f"--plot {args.plot}: the folder {Path(args.plot).parent} does not exist")
    args.names = names
    return args


def run_mode(args: argparse.Namespace) -> list[RunResult]:
    """Run what the mode shows, each workflow recorded in the ledger; print as we go."""
    if args.capstone:
        pipeline = build_capstone_pipeline()  # first: without agents, no ledger is made
        ReplayLedger(LEDGER_DB).attach(pipeline)
        return [shown(pipeline.run(args.task, approver=fixed_approver(
            True, "script", "approved by the hands-on script", channel="script")))]
    ledger = ReplayLedger(LEDGER_DB)
    if args.nested:
        wf = ledger.attach(nested(args.seconds / 2))
        run = shown(wf.run(args.task))
        path = Timeline.of(run).critical_path(wf)
        print("critical path: " + " -> ".join(bar.node_id for bar in path)
              + f" ({sum(bar.duration_s for bar in path):.2f} s of work on it)")
        return [run]
    if args.fail:
        run = shown(ledger.attach(fan_out(args.names, args.seconds, fail=args.fail)).run(args.task))
        print(f"error: {run.error}")
        print(f"the writer (the join) started: {bool(Timeline.of(run).bars_of('writer'))}")
        return [run]
    fan = shown(ledger.attach(fan_out(args.names, args.seconds)).run(args.task))
    chain = shown(ledger.attach(fan_out(args.names, args.seconds, chain=True)).run(args.task))
    line = Timeline.of(fan)
    print(f"the {len(args.names)} branches: {line.work_s(args.names):.2f} s of work in "
          f"{line.wall_s(args.names):.2f} s, {line.speedup(args.names):.1f}x faster than a chain")
    print(f"the whole run: {line.length_s:.2f} s as a fan-out, "
          f"{Timeline.of(chain).length_s:.2f} s as a chain")
    return [fan, chain]


def shown(run: RunResult) -> RunResult:
    """Print the run's timeline as text, then hand the run back."""
    print(Timeline.of(run).text() + "\n")
    return run


def ended_as_shown(run: RunResult, args: argparse.Namespace) -> bool:
    """The run ended the way its mode demonstrates: failed with --fail, else completed."""
    return run.status.value == ("failed" if args.fail else "completed")


def verified(runs: list[RunResult]) -> bool:
    """Verify each run's hash chain in the ledger and print the verdict."""
    ledger = ReplayLedger(LEDGER_DB)
    checks = [ledger.verify_chain(run.run_id) for run in runs]
    for run, check in zip(runs, checks, strict=True):
        print(f"\nLedger {redacted_location(LEDGER_DB)}, run {run.run_id} ({run.workflow}):\n"
              f"{check.report()}")
    return all(check.valid for check in checks)


if __name__ == "__main__":
    sys.exit(main())
