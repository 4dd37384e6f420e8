"""Lesson 16 hands-on: the production pipeline capstone.

    MESHFLOW_MOCK=1 python3 hands_on/16_production_pipeline.py            # standard mode
    MESHFLOW_MOCK=1 python3 hands_on/16_production_pipeline.py --stream   # one line per event
    MESHFLOW_MOCK=1 python3 hands_on/16_production_pipeline.py --reject   # reviewer says no
    MESHFLOW_MOCK=1 python3 hands_on/16_production_pipeline.py --no-gate  # exercise 3

The pipeline itself is built in meshflow_nb/pipelines/capstone.py: researcher, two
analysts in parallel, a writer with a quality loop (at most 2 revisions), a human gate,
and the publisher (an EXTERNAL_IO action that only runs after approval).

The full governance stack of section 5 governs every node, every event goes to the
audit ledger (MESHFLOW_LEDGER_DB, default production.db), and every mode ends by
verifying its hash chain.

--no-gate is exercise 3's deliberate misconfiguration: the pipeline is built without
its human gate, so the EXTERNAL_IO publisher is reachable unreviewed, and the
REGULATED policy's pre-flight rejects the workflow (rule P001) before any node runs.
The fix is to put the gate back (drop the flag).

Exercise 4 in the terminal, on a ledger of its own:

    export MESHFLOW_MOCK=1 MESHFLOW_LEDGER_DB=exercise4.duckdb   # the CLI reads it too
    python3 hands_on/16_production_pipeline.py
    meshflow-nb ledger sql "SELECT seq, prev_hash, hash FROM ledger_entries ORDER BY seq"
    meshflow-nb ledger sql "UPDATE ledger_entries SET output = '{\"tampered\": true}' WHERE seq = 2"
    meshflow-nb ledger verify     # DAMAGED, exit 1
    meshflow-nb ledger new        # the damaged file kept as .bak, an empty one in its place

A damaged ledger refuses later runs under immutable audit (P008) until it is moved
aside that way. The exit status is 0 when the run
ends the way its mode demonstrates (completed, rejected at the gate, rejected by
pre-flight) and the ledger verifies; 1 otherwise; 2, with one line saying what to
do, when the pipeline cannot be built (neither MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY)
or its cost preview is above --max-cost or the policy's budget.

Live mode (lesson 15): without MESHFLOW_MOCK, with ANTHROPIC_API_KEY (or
ANTHROPIC_BASE_URL at `meshflow-nb serve-fake`, or MESHFLOW_REPLAY=cassette.json), the
six agents are Claude (MESHFLOW_MODEL picks the model). Before any call the script
prints the cost preview, the most the run can spend, and the model ids.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from meshflow_nb import (
    CircuitBreakerConfig,
    HumanInLoopConfig,
    MeshflowError,
    Policy,
    PolicyMode,
    RiskTier,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.agents.estimate import check_cost, estimate_cost
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "production.db")

# Section 5: every governance layer at once.
POLICY = Policy(
    mode=PolicyMode.REGULATED,
    budget_usd=5.0,
    enable_guardian=True,
    enable_uncertainty=True,
    enable_environmental=True,
    carbon_budget_g=500.0,
    enable_cross_run_learning=True,
    immutable_audit=True,
    circuit_breaker=CircuitBreakerConfig(
        max_retries=2,
        failure_threshold=3,
        failure_window_s=30.0,
        half_open_after_s=10.0,
    ),
    human_in_loop=HumanInLoopConfig(
        enabled=True,
        tier_threshold=RiskTier.EXTERNAL_IO,
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", action="store_true",
                        help="print every event as one JSON line as it happens")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the HITL gate")
    parser.add_argument("--no-gate", action="store_true",
                        help="exercise 3: leave out the human gate, so that pre-flight "
                             "rejects the pipeline before any node runs")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the pipeline works on")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="live mode: refuse to start if the run could cost more")
    args = parser.parse_args(argv)
    notes = sys.stderr if args.stream else sys.stdout

    try:  # mock agents with MESHFLOW_MOCK=1, live ones with a key; else one line says which
        pipeline = build_capstone_pipeline(policy=POLICY, human_gate=not args.no_gate)
        preview = estimate_cost(pipeline, args.task)
        if preview.calls:  # live: say what it may cost before anything is called
            print(preview.describe() + "\n", file=notes)
        check_cost(preview, args.max_cost)
        check_cost(preview, POLICY.budget_usd, what="the policy's budget")
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    print(POLICY.describe() + "\n", file=notes)
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    result = run_and_print(pipeline, args.task, stream=args.stream, approver=approver)

    if result.unrecorded == len(result.events):  # refused before a single entry (P008)
        print(f"\nLedger {redacted_location(LEDGER_DB)}: nothing of run {result.run_id} "
              "was recorded.", file=notes)
        return 1
    # Section 7: verify the chain after every run; keep the anchor somewhere else.
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n"
          f"{check.report()}", file=notes)
    expected = ("rejected_preflight" if args.no_gate
                else "rejected_at_gate" if args.reject else "completed")
    return 0 if result.status.value == expected and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
