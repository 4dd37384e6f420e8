"""Lesson 1 hands-on: a first workflow, its run result, and where the ledger went.

    MESHFLOW_MOCK=1 python3 hands_on/01_hello_meshflow.py               # run, read, verify
    MESHFLOW_MOCK=1 python3 hands_on/01_hello_meshflow.py --stream      # one JSON line per event
    MESHFLOW_MOCK=1 python3 hands_on/01_hello_meshflow.py --third-node  # exercise 1: a critic too
    MESHFLOW_MOCK=1 python3 hands_on/01_hello_meshflow.py --task "..."  # exercise 3: another task
    MESHFLOW_MOCK=1 python3 hands_on/01_hello_meshflow.py --seed 17     # another mock run

The workflow is the notebook's: a researcher gathers findings on the task, and a writer
turns them into a draft (researcher -> writer). With MESHFLOW_MOCK=1 both agents are
mock agents: no key, no network, no cost, and the same run every time for one seed.

Every run is recorded in the audit ledger: the file --db names, else MESHFLOW_LEDGER_DB,
else meshflow_ledger.duckdb in the working directory. New runs are appended, and the
script ends by verifying the run's hash chain and printing the command that lists the
run's rows. Exercise 2 in the terminal (the CLI finds the ledger the same way):

    meshflow-nb ledger runs                                   # every run, with its run_id
    meshflow-nb ledger sql "SELECT run_seq, event_type, node_id FROM ledger_entries \
        WHERE run_id = '<run_id>' ORDER BY seq"

The exit status is 0 when the run completes and its ledger verifies; 1 otherwise; 2,
with one line saying what to do, when a flag is wrong or there are no agents (neither
MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from meshflow_nb import (
    MeshflowError,
    Node,
    Role,
    RunResult,
    ScriptParser,
    WorkflowDefinition,
    agent_for,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, default_location, redacted_location

TASK = "Summarise what a small team needs before adopting AI agents"
"""The notebook's task (its parameters cell)."""
SEED_VAR = "MESHFLOW_MOCK_SEED"
PROG = Path(__file__).name


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=TASK, help="what the workflow works on")
    parser.add_argument("--stream", action="store_true",
                        help="print every event as one JSON line as it happens")
    parser.add_argument("--third-node", action="store_true",
                        help="exercise 1: add a critic that reviews the writer's draft")
    parser.add_argument("--seed", type=int, metavar="N",
                        help=f"the mock agents' seed ({SEED_VAR}, default 16)")
    parser.add_argument("--db", metavar="PATH",
                        help="the ledger file (default: MESHFLOW_LEDGER_DB, else "
                             "meshflow_ledger.duckdb)")
    args = parser.parse_args(argv)
    if not args.task.strip():
        parser.error("--task is empty: give the workflow something to work on")
    return args


def build(third_node: bool) -> WorkflowDefinition:
    """Section 2's workflow, researcher -> writer; with ``third_node``, -> reviewer too."""
    workflow = (
        WorkflowDefinition("hello_plus_one" if third_node else "hello")
        .add_node(Node("researcher", agent_for(Role.RESEARCHER), Role.RESEARCHER))
        .add_node(Node("writer", agent_for(Role.EXECUTOR, angle="writer"), Role.EXECUTOR))
        .add_edge("researcher", "writer")
    )
    if third_node:
        workflow.add_node(Node("reviewer", agent_for(Role.CRITIC), Role.CRITIC))
        workflow.add_edge("writer", "reviewer")
    return workflow


def describe(result: RunResult) -> str:
    """Section 3: the fields of the RunResult the summary above does not show."""
    return "\n".join([
        f"status:   {result.status.value}",
        f"executed: {', '.join(result.executed) or '(no node)'}",
        "output:   the last node's output, printed above as the final output",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    notes = sys.stderr if args.stream else sys.stdout
    if args.seed is not None:
        os.environ[SEED_VAR] = str(args.seed)  # read by each mock agent when it runs
    try:  # mock agents with MESHFLOW_MOCK=1, live ones with a key; else one line says which
        workflow = build(args.third_node)
        ledger = ReplayLedger(args.db or default_location())
    except MeshflowError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    ledger.attach(workflow)  # section 5: from now on, every run is recorded
    result = run_and_print(workflow, args.task, stream=args.stream)
    print("\n" + describe(result), file=notes)

    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(ledger.location)}, run {result.run_id}:\n{check.report()}",
          file=notes)
    print(f"Its rows: meshflow-nb ledger sql \"SELECT run_seq, event_type, node_id FROM "
          f"ledger_entries WHERE run_id = '{result.run_id}' ORDER BY seq\"{db_flag(args.db)}",
          file=notes)
    return 0 if result.ok and check.valid else 1


def db_flag(db: str | None) -> str:
    """`` --db DB`` for the printed command, shell-quoted and without a password; nothing
    when the ledger came from MESHFLOW_LEDGER_DB or the default (the CLI finds it too)."""
    return f" --db {shlex.quote(redacted_location(db))}" if db else ""


if __name__ == "__main__":
    sys.exit(main())
