"""Lesson 12 hands-on: circuit breakers and retries.

    MESHFLOW_MOCK=1 python3 hands_on/12_circuit_breakers_and_retries.py               # an outage
    MESHFLOW_MOCK=1 python3 hands_on/12_circuit_breakers_and_retries.py --no-breaker  # layer off
    MESHFLOW_MOCK=1 python3 hands_on/12_circuit_breakers_and_retries.py --max-retries 0 --window 60
    MESHFLOW_MOCK=1 python3 hands_on/12_circuit_breakers_and_retries.py --outage 40 --runs 12

The workflow is the lesson's: a lookup whose service may be down, then a writer. It runs
--runs times (default 6), one run every --every seconds (default 5) on a fake clock that
never really waits, under a STANDARD policy whose circuit breaker the flags set. The
lookup's service is down from t = 0 until --outage seconds (default 8), and every call to
it fails while it is down.

Each run prints as it ends: its clock time, whether it completed, failed after reaching
the agent or was refused by the open breaker, how many calls the service got, and every
node_retry and circuit_state event it caused. --no-breaker switches the layer off
(circuit_breaker=None): no retries, no breaker, every run calls the service.

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default circuit.duckdb); the script
ends with what the service was spared and by verifying the runs' hash chains. Exit
status: 0 when every run ended completed or failed and the ledger verifies; 1 otherwise;
2, with one line, for a flag that cannot be used or without MESHFLOW_MOCK=1 (the flaky
service is a mock).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from meshflow_nb import (
    CircuitBreakerConfig,
    EventType,
    MeshEvent,
    MeshflowError,
    MockAgent,
    Node,
    Policy,
    Role,
    ScriptParser,
    WorkflowDefinition,
)
from meshflow_nb.ledger import ReplayLedger, redacted_location
from meshflow_nb.notebook import FakeClock, FlakyAgent, policy_breakers
from meshflow_nb.notebook.breaker_view import run_outcome

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "circuit.duckdb")
TASK = "the market for heat pumps in apartment blocks"
GOVERNED_ENDS = ("completed", "failed")


def seconds_flag(text: str) -> float:
    """A number of seconds: finite and zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds are a number of 0 or more")
    return value


def count_flag(text: str) -> int:
    """A whole number, zero or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = ScriptParser(description=__doc__.splitlines()[0])
    default = CircuitBreakerConfig()
    parser.add_argument("--no-breaker", action="store_true",
                        help="switch the layer off (circuit_breaker=None): no retries either")
    parser.add_argument("--max-retries", type=count_flag, default=default.max_retries,
                        help=f"retries per node execution (default {default.max_retries})")
    parser.add_argument("--threshold", type=count_flag, default=default.failure_threshold,
                        help="failures within the window that open the breaker (default "
                             f"{default.failure_threshold})")
    parser.add_argument("--window", type=seconds_flag, default=default.failure_window_s,
                        metavar="SECONDS", help="the window failures are counted in "
                        f"(default {default.failure_window_s:g})")
    parser.add_argument("--half-open-after", type=seconds_flag,
                        default=default.half_open_after_s, metavar="SECONDS",
                        help=f"how long the breaker stays open (default "
                             f"{default.half_open_after_s:g})")
    parser.add_argument("--outage", type=seconds_flag, default=8.0, metavar="SECONDS",
                        help="the service is down until this clock time (default 8)")
    parser.add_argument("--runs", type=count_flag, default=6, help="how many runs (default 6)")
    parser.add_argument("--every", type=seconds_flag, default=5.0, metavar="SECONDS",
                        help="seconds between the starts of two runs (default 5)")
    return parser.parse_args(argv)


def policy_for(args: argparse.Namespace, clock: FakeClock) -> Policy:
    """The STANDARD policy with the flags' breaker on ``clock``, or with the layer off."""
    if args.no_breaker:
        return Policy(circuit_breaker=None)
    policy = Policy(circuit_breaker=CircuitBreakerConfig(
        max_retries=args.max_retries, failure_threshold=args.threshold,
        failure_window_s=args.window, half_open_after_s=args.half_open_after))
    policy_breakers(policy, clock)
    return policy


def lookup_flow(agent: FlakyAgent) -> WorkflowDefinition:
    """The lesson's workflow: a lookup that may fail, then a writer."""
    return (WorkflowDefinition("lookup_and_write")
            .add_node(Node("lookup", agent, Role.RESEARCHER))
            .add_node(Node("writer", MockAgent(Role.EXECUTOR, angle="writer"), Role.EXECUTOR))
            .add_edge("lookup", "writer"))


def breaker_line(event: MeshEvent) -> str | None:
    """A node_retry or circuit_state event as one line (None for any other event)."""
    payload = event.payload
    if event.type is EventType.NODE_RETRY:
        return (f"      node_retry     attempt {payload['attempt']}/{payload['max_retries']}, "
                f"pause {payload['delay_s']:g} s ({payload['error']})")
    if event.type is EventType.CIRCUIT_STATE:
        return (f"      circuit_state  {payload['from_state']} -> {payload['to_state']}: "
                f"{payload['reason']}")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the outage the flags describe; the exit status says how it went."""
    args = parse(argv)
    if os.environ.get("MESHFLOW_MOCK") != "1":
        print(f"{Path(__file__).name}: error: set MESHFLOW_MOCK=1: the flaky lookup service "
              "of this lesson is a mock", file=sys.stderr)
        return 2
    clock = FakeClock()
    try:
        policy = policy_for(args, clock)
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    service = FlakyAgent(MockAgent(Role.RESEARCHER))
    ledger = ReplayLedger(LEDGER_DB)
    workflow = ledger.attach(lookup_flow(service))
    print(_layer(policy))
    print(f"The lookup's service is down until t = {args.outage:g} s.\n")
    results = []
    for n in range(args.runs):
        clock.advance(max(0.0, n * args.every - clock.now()))
        service.down = clock.now() < args.outage
        before, started = len(service.calls), clock.now()
        result = workflow.run(TASK, policy=policy)
        results.append(result)
        print(f"  t={started:6.1f} s  {run_outcome(result, 'lookup'):<9}  service calls: "
              f"{len(service.calls) - before}")
        for line in filter(None, map(breaker_line, result.events)):
            print(line)
    done = sum(r.status.value == "completed" for r in results)
    print(f"\n{done} of {len(results)} runs completed; the service got {len(service.calls)} "
          f"calls, {service.failed} of them while it was down.")
    checks = [ledger.verify_chain(r.run_id) for r in results]
    print(f"Ledger {redacted_location(LEDGER_DB)}: {len(results)} runs, chains "
          f"{'VALID' if all(c.valid for c in checks) else 'BROKEN'}.")
    governed = all(r.status.value in GOVERNED_ENDS for r in results)
    return 0 if governed and all(c.valid for c in checks) else 1


def _layer(policy: Policy) -> str:
    """The breaker the runs go under, in one line."""
    config = policy.circuit_breaker
    if config is None:
        return ("Circuit breaker: off (circuit_breaker=None): no retries, every run calls "
                "the service")
    return (f"Circuit breaker: up to {config.max_retries} retries; opens after "
            f"{config.failure_threshold} failures within {config.failure_window_s:g} s; "
            f"probes after {config.half_open_after_s:g} s.")


if __name__ == "__main__":
    sys.exit(main())
