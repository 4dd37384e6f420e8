"""Lesson 15 hands-on: the capstone on live Claude agents, replayed from a recording.

    python3 hands_on/15_real_models.py                         # replay the shipped run: no key
    python3 hands_on/15_real_models.py --reject                # the reviewer says no
    python3 hands_on/15_real_models.py --stream                # one JSON line per event
    python3 hands_on/15_real_models.py --live --max-cost 0.10  # Claude, with ANTHROPIC_API_KEY
    python3 hands_on/15_real_models.py --record mine.json      # record a live run
    python3 hands_on/15_real_models.py --cassette mine.json    # replay your own recording

The six agents of the capstone (meshflow_nb/pipelines/capstone.py) are AnthropicAgents
here, not mock agents. Where their calls go is the environment's choice, read at call
time: by default this script sets MESHFLOW_REPLAY to the recording that ships with
meshflow_nb, so a replay server in this process answers every call from it (no key, no
network, no cost). --live calls what the environment names instead: ANTHROPIC_API_KEY
for Claude, or a loopback ANTHROPIC_BASE_URL for `meshflow-nb serve-fake`, the local
Messages API server (no key). MESHFLOW_MOCK=1 wins over all of them: unset it.

Before a live run the script prints the cost preview: the most the run can spend, and
the model ids. --max-cost, and the policy's $1 budget, refuse a run whose preview is
above them before anything is called. --model picks the model of every agent (else
MESHFLOW_MODEL, else claude-haiku-4-5, the recording's model); a recording replays
only the model it was made with.

--record PATH writes a new cassette of a live run at PATH (replacing the file there),
once the run has ended the way its mode demonstrates. To record the shipped run again,
against a fresh local server:

    meshflow-nb serve-fake --port 8765        # another terminal; Ctrl-C stops it
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 python3 hands_on/15_real_models.py \\
        --record meshflow_nb/pipelines/cassettes/capstone_local.json

The run's events go to the audit ledger (MESHFLOW_LEDGER_DB, default real_models.db),
and every mode ends by verifying its hash chain. The exit status is 0 when the run
ends the way its mode demonstrates (completed, or rejected at the gate with --reject)
and the ledger verifies; 1 otherwise (a replay miss, a refused key, a retired model:
the summary says which); 2, with one line saying what to do, when the run cannot
start (nowhere to call, an unknown model, a cassette that is not one, a cost preview
above --max-cost or the budget).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from meshflow_nb import (
    Cassette,
    CostEstimate,
    MeshflowError,
    check_cost,
    estimate_cost,
    fixed_approver,
    run_and_print,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.pipelines import (
    CAPSTONE_CASSETTE,
    CAPSTONE_TASK,
    build_capstone_pipeline,
    recorded_policy,
    where_calls_go,
)

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "real_models.db")
REPLAY_VAR, RECORD_VAR, MOCK_VAR = "MESHFLOW_REPLAY", "MESHFLOW_RECORD", "MESHFLOW_MOCK"


class UsageProblem(Exception):
    """Something to fix before the run can start: one line, exit status 2."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--live", action="store_true",
                       help="call what the environment names (ANTHROPIC_API_KEY, or "
                            "ANTHROPIC_BASE_URL at a local server) instead of replaying")
    where.add_argument("--record", metavar="PATH",
                       help="a live run, written as a new cassette at PATH")
    where.add_argument("--cassette", metavar="PATH", default=CAPSTONE_CASSETTE,
                       help="replay this recording (default: the one shipped with meshflow_nb)")
    parser.add_argument("--reject", action="store_true",
                        help="the human reviewer rejects the draft at the HITL gate")
    parser.add_argument("--stream", action="store_true",
                        help="print every event as one JSON line, the agents' text too")
    parser.add_argument("--model", metavar="ID",
                        help="the model of every agent (default: MESHFLOW_MODEL, else "
                             "claude-haiku-4-5)")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="refuse to start if the cost preview is above USD")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the gate decision")
    parser.add_argument("--task", default=CAPSTONE_TASK,
                        help="what the pipeline works on (a replay knows only its own)")
    args = parser.parse_args(argv)
    if args.max_cost is not None and not args.max_cost > 0:
        parser.error("--max-cost must be a positive number of USD, such as 0.10")
    return args


def choose_calls(args: argparse.Namespace) -> None:
    """Point the agents where the mode says, through the environment they read."""
    if args.live or args.record:
        os.environ.pop(REPLAY_VAR, None)
        return
    try:
        Cassette.load(args.cassette)
    except MeshflowError as err:
        raise UsageProblem(f"{err}; pass --cassette PATH, or --live") from None
    os.environ[REPLAY_VAR] = str(Path(args.cassette).resolve())


def preview_or_refuse(preview: CostEstimate, args: argparse.Namespace, budget: float | None,
                      notes: TextIO) -> None:
    """Print what a live run may cost at most, before any call; refuse one above a cap.
    Without live agents (MESHFLOW_MOCK=1 wins over the rest), say so instead."""
    if not preview.calls:
        if args.record:
            raise UsageProblem(f"--record needs live agents, but {MOCK_VAR} is set: unset it")
        print(f"Note: {MOCK_VAR} is set, so the mock agents answer: it wins over replay and "
              "live. Unset it to run this lesson's Claude agents.\n", file=notes)
        return
    replayed = REPLAY_VAR in os.environ
    print(preview.describe() + ("  (a replay costs nothing: this is the bound of a live run)"
                                if replayed else "") + "\n", file=notes)
    check_cost(preview, args.max_cost)
    check_cost(preview, budget, what="the policy's budget")


@contextmanager
def recording(path: str | None) -> Iterator[Callable[[], bool]]:
    """While the block runs, MESHFLOW_RECORD names a scratch cassette; the function it
    gives moves that cassette to ``path``, replacing the file there (without ``path``,
    nothing is recorded and the function does nothing)."""
    if path is None:
        yield lambda: False
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageProblem(f"--record {path}: the folder {target.parent} does not exist")
    with tempfile.TemporaryDirectory() as scratch:
        recorded = Path(scratch) / target.name

        def keep() -> bool:
            """Put the scratch cassette at ``path``; False when nothing was recorded."""
            if not recorded.exists():
                return False
            shutil.move(recorded, target)
            return True

        os.environ[RECORD_VAR] = str(recorded)
        try:
            yield keep
        finally:
            del os.environ[RECORD_VAR]


def main(argv: list[str] | None = None) -> int:
    """Run the capstone in the mode the flags name; the exit status says how it went."""
    args = parse(argv)
    notes = sys.stderr if args.stream else sys.stdout
    expected = "rejected_at_gate" if args.reject else "completed"
    policy = recorded_policy()
    try:
        choose_calls(args)
        pipeline = build_capstone_pipeline(policy=policy, model=args.model)
        print(f"Calls go to: {where_calls_go()}", file=notes)
        preview_or_refuse(estimate_cost(pipeline, args.task), args, policy.budget_usd, notes)
        with recording(args.record) as keep:
            ledger = ReplayLedger(LEDGER_DB)
            ledger.attach(pipeline)
            # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
            approver = fixed_approver(not args.reject, args.reviewer,
                                      "rejected with --reject" if args.reject
                                      else "approved by script", channel="script")
            result = run_and_print(pipeline, args.task, stream=args.stream, approver=approver)
            kept = result.status.value == expected and keep()
    except (MeshflowError, UsageProblem) as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    if args.record:
        print(f"\nRecorded {len(Cassette.load(args.record).exchanges)} exchanges to "
              f"{args.record}" if kept else f"\nNothing recorded: the run ended "
              f"{result.status.value}, not {expected}", file=notes)
    # Verify the chain after every run, as lesson 16's section 7 does.
    check = ledger.verify_chain(result.run_id)
    print(f"\nLedger {redacted_location(LEDGER_DB)}, run {result.run_id}:\n"
          f"{check.report()}", file=notes)
    return 0 if result.status.value == expected and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
