"""Lesson 14 hands-on: cross-run learning.

    MESHFLOW_MOCK=1 python3 hands_on/14_cross_run_learning.py                # 3 runs that learn
    MESHFLOW_MOCK=1 python3 hands_on/14_cross_run_learning.py --runs 5
    MESHFLOW_MOCK=1 python3 hands_on/14_cross_run_learning.py --no-learning  # the layer off
    MESHFLOW_MOCK=1 python3 hands_on/14_cross_run_learning.py --keep         # learn on from before
    MESHFLOW_MOCK=1 python3 hands_on/14_cross_run_learning.py --reject --reviewer alice

The pipeline is the capstone of lesson 16 (researcher, two analysts in parallel, a writer
and a critic in a quality loop, a human gate, a publisher), run --runs times under a
STANDARD policy with enable_cross_run_learning on (off with --no-learning). Before the
first run the learning store beside the ledger is emptied, so the first run behaves like
the very first one; --keep leaves it as an earlier session left it. Each run prints the
lessons its writer was given and how many revisions the writer needed; the script ends
with the store as a table and the revisions per run.

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default learning.duckdb); the store is
its sibling learning.learning.duckdb. The script ends by verifying every run's hash chain.
Exit status: 0 when every run ended as a governed run ends (completed, or rejected at the
gate) and the ledger verifies; 1 otherwise; 2, with one line, for a flag that cannot be
used or a pipeline that cannot be built (neither MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from meshflow_nb import MeshflowError, Policy, RunResult, ScriptParser, fixed_approver
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.notebook import learning_store, revisions
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "learning.duckdb")
GOVERNED_ENDS = ("completed", "rejected_at_gate")
MAX_RUNS = 20


def runs_flag(text: str) -> int:
    """A number of runs: a whole number from 1 to MAX_RUNS."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_RUNS:
        raise argparse.ArgumentTypeError(f"{text!r}: --runs is a whole number from 1 to "
                                         f"{MAX_RUNS}")
    return int(text)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: how many runs, the layer on or off, the store kept or emptied."""
    parser = ScriptParser(description="Run the capstone several times and watch what each "
                           "run teaches the next (lesson 14).")
    parser.add_argument("--runs", type=runs_flag, default=3,
                        help="how many runs, one after the other (default 3)")
    parser.add_argument("--no-learning", action="store_true",
                        help="enable_cross_run_learning=False: the store is neither read "
                             "nor written")
    parser.add_argument("--keep", action="store_true",
                        help="keep what the store learned in earlier sessions (default: "
                             "empty it first)")
    parser.add_argument("--reject", action="store_true",
                        help="the scripted reviewer rejects every draft at the gate")
    parser.add_argument("--reviewer", default="script",
                        help="the name recorded with the scripted decision (default script)")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="the task of every run")
    return parser.parse_args(argv)


def show_run(number: int, result: RunResult, lessons: list[str]) -> None:
    """One run: the lessons its writer was given, what it needed, how it ended."""
    print(f"Run {number}: the writer was given {len(lessons)} lesson(s)")
    for lesson in lessons:
        print(textwrap.fill(lesson, 92, initial_indent="  - ", subsequent_indent="    "))
    print(f"  {result.status.value}: {revisions(result)} revision(s) of the writer, "
          f"{result.totals.node_executions} node executions, ${result.totals.cost_usd:.4f}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the capstone --runs times; the exit status says how it went."""
    args = parse(argv)
    policy = Policy(enable_cross_run_learning=not args.no_learning)
    try:
        pipeline = build_capstone_pipeline()
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    store = learning_store(ledger)
    kept = "kept" if args.keep else f"emptied, {store.reset()} outcomes removed"
    print(f"Learning store: {store.location} ({kept}); cross-run learning "
          f"{'off' if args.no_learning else 'on'}\n")
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    results = []
    for number in range(1, args.runs + 1):
        lessons = [] if args.no_learning else store.lessons_for("writer", args.task)
        results.append(pipeline.run(args.task, approver=approver, policy=policy))
        show_run(number, results[-1], lessons)
    outcomes = store.to_dataframe()
    print(f"The store holds {len(outcomes)} outcomes:")
    if len(outcomes):
        print(outcomes[["node_id", "kind", "value"]].to_string(index=False, max_colwidth=70))
    print("\nRevisions of the writer per run: " + " ".join(str(revisions(r)) for r in results))
    checks = [ledger.verify_chain(r.run_id) for r in results]
    print(f"\nLedger {redacted_location(LEDGER_DB)}, {len(results)} run(s): chain "
          f"{'VALID' if all(c.valid for c in checks) else 'INVALID'}")
    for check in checks:
        if not check.valid:
            print(check.report())
    ended = all(r.status.value in GOVERNED_ENDS for r in results)
    return 0 if ended and all(c.valid for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
