"""Lesson 05 hands-on: streaming events.

    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py                      # a line per event
    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py --json               # JSON lines
    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py --stop-at-cost 0.03  # leave early
    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py --stop-after researcher
    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py --reject             # reviewer says no

The pipeline is the capstone of lesson 16 (meshflow_nb/pipelines/capstone.py): a
researcher, two analysts in parallel, a writer with a quality loop, a human gate and a
publisher. The script streams one run of it and prints each event as it happens: one
line from ``describe()``, or with --json one JSON line, nothing else on stdout, for jq or
another program to read while the run goes on:

    MESHFLOW_MOCK=1 python3 hands_on/05_streaming_events.py --json | jq -r .type

--stop-at-cost keeps a running total of each event's cost_usd and leaves the stream at
the first event that takes it past the amount (exercise 2); --stop-after leaves it when a
node completes. Leaving the stream cancels the run. A subscriber counts the events of
each node (exercise 3). Every mode ends by reading the run back from the ledger
(MESHFLOW_LEDGER_DB, default streaming.duckdb) and verifying its hash chain.

The exit status is 0 when the run ends the way its mode demonstrates (completed; with
--reject rejected at the gate; with a stop, left where the stop came) and the ledger
verifies; 1 otherwise; 2, with one line saying what to fix, for a flag that cannot work
or a pipeline that cannot be built (neither MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import TextIO

from meshflow_nb import (
    EventType,
    MeshEvent,
    MeshflowError,
    ScriptParser,
    WorkflowDefinition,
    fixed_approver,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "streaming.duckdb")
SCRIPT = Path(__file__).name


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true",
                        help="print every event as one JSON line, and nothing else on stdout")
    parser.add_argument("--stop-at-cost", type=float, metavar="USD",
                        help="leave the stream once the run's cost passes USD (the run is "
                             "cancelled)")
    parser.add_argument("--stop-after", metavar="NODE",
                        help="leave the stream once NODE completes (the run is cancelled)")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the gate")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the pipeline works on")
    args = parser.parse_args(argv)
    cost = args.stop_at_cost
    if cost is not None and not (math.isfinite(cost) and cost > 0):
        parser.error("--stop-at-cost must be a positive number of USD, such as 0.03")
    return args


def check_node(pipeline: WorkflowDefinition, node_id: str | None) -> None:
    """Refuse --stop-after a node the pipeline does not have, naming the ones it has."""
    ids = [node.id for node in pipeline.nodes]
    if node_id is not None and node_id not in ids:
        raise MeshflowError(f"--stop-after {node_id!r}: the pipeline has no such node; its "
                            f"nodes are {', '.join(ids)}")


def watch(stream: Iterable[MeshEvent], args: argparse.Namespace,
          out: TextIO) -> tuple[MeshEvent | None, str]:
    """Print each event as it arrives; leave at the stop the flags ask for, and say why
    (no event and no reason when the stream ran to its end)."""
    spent = 0.0
    for event in stream:
        try:
            print(event.to_json() if args.json else event.describe(), file=out, flush=True)
        except BrokenPipeError:  # the reader went away (| head): nobody reads the rest
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return event, "the program reading stdout went away"
        spent += event.cost_usd or 0.0
        if args.stop_at_cost is not None and spent > args.stop_at_cost:
            return event, f"the cost reached ${spent:.4f}, past --stop-at-cost {args.stop_at_cost}"
        if event.type is EventType.NODE_COMPLETE and event.node_id == args.stop_after:
            return event, f"{event.node_id} completed (--stop-after)"
    return None, ""


class PerNode:
    """A subscriber (exercise 3): counts every event of the run under its node."""

    def __init__(self) -> None:
        self.counts: Counter[str | None] = Counter()
        self.run_id: str | None = None

    def __call__(self, event: MeshEvent) -> None:
        """Count one event; the run calls this with every event, in order."""
        self.run_id = event.run_id
        self.counts[event.node_id] += 1

    def report(self, notes: TextIO) -> None:
        """Print the counts, node by node."""
        print("\nEvents per node (a subscriber counted them):", file=notes)
        for node_id, count in self.counts.items():
            print(f"  {node_id or '(the run itself)':<17} {count}", file=notes)


def main(argv: list[str] | None = None) -> int:
    """Stream one run in the mode the flags name; the exit status says how it went."""
    args = parse(argv)
    notes = sys.stderr if args.json else sys.stdout
    try:  # mock agents with MESHFLOW_MOCK=1, live ones with a key; else one line says which
        pipeline = build_capstone_pipeline()
        check_node(pipeline, args.stop_after)
    except MeshflowError as err:
        print(f"{SCRIPT}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    counter = PerNode()
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    print(f"Streaming '{pipeline.name}' on: {args.task}\n", file=notes)
    with closing(pipeline.stream(args.task, approver=approver, on_event=counter)) as stream:
        stopped, why = watch(stream, args, sys.stdout)
    if stopped is not None:
        print(f"\nLeft the stream at seq {stopped.seq}: {why}.", file=notes)
    counter.report(notes)
    return verified(ledger, counter.run_id, stopped, args, notes)


def verified(ledger: ReplayLedger, run_id: str, stopped: MeshEvent | None,
             args: argparse.Namespace, notes: TextIO) -> int:
    """Read the run back from the ledger, verify its chain, and say whether the run ended
    as the mode demonstrates (0) or not (1)."""
    recorded = ledger.events(run_id)
    status = recorded[-1].payload.get("status")
    check = ledger.verify_chain(run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {run_id}: {len(recorded)} entries, "
          f"the last a {recorded[-1].type.value} with status {status}\n{check.report()}",
          file=notes)
    if args.stop_at_cost is not None or args.stop_after is not None:
        wanted = stopped is not None  # cancelled, or over before the cancel reached it
    else:
        wanted = status == ("rejected_at_gate" if args.reject else "completed")
    return 0 if wanted and check.valid else 1

if __name__ == "__main__":
    sys.exit(main())
