"""Lesson 17 hands-on: the capstone with steps 4 to 7 of going to production, on 127.0.0.1.

    MESHFLOW_MOCK=1 python3 hands_on/17_going_to_production.py                 # approve
    MESHFLOW_MOCK=1 python3 hands_on/17_going_to_production.py --reject --reviewer dana
    MESHFLOW_MOCK=1 python3 hands_on/17_going_to_production.py --conformance   # and check it
    MESHFLOW_MOCK=1 MESHFLOW_LEDGER_DB=postgresql://user@localhost/meshflow \\
        python3 hands_on/17_going_to_production.py                             # step 4

The capstone pipeline of lesson 16 runs under its full governance stack (cross-run
learning off, so that every run is the same), with the four production settings:

4. the ledger is MESHFLOW_LEDGER_DB (--db): a postgresql:// URI, or a DuckDB file
   (default production17.duckdb);
5. the human gate sends a signed webhook notice to a receiver this script starts on
   127.0.0.1; the receiver checks the signature and approves (or, with --reject,
   rejects) through the decision store, as --reviewer;
6. the run exports its spans over OTLP: to OTEL_EXPORTER_OTLP_ENDPOINT when it is set
   (your own collector), else to a receiver this script starts on 127.0.0.1, whose spans
   it prints as a timeline;
7. with --conformance, `meshflow conformance python --level N` checks the installation
   against the same ledger, decision store, webhook and span receiver.

The webhook secret is MESHFLOW_WEBHOOK_SECRET, or a random one for this process; it is
never printed. The script ends by verifying the run's hash chain. Exit status: 0 when
the run ended as asked (completed, or rejected at the gate with --reject), the ledger
verifies, and conformance (when asked) passed; 1 otherwise; 2, with one line, when the
pipeline cannot be built (neither MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY) or a flag is
wrong.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from meshflow_nb import (
    ApprovalError,
    CircuitBreakerConfig,
    HumanInLoopConfig,
    MeshflowError,
    Policy,
    PolicyMode,
    RiskTier,
    RunHandle,
    ScriptParser,
)
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import WebhookInbox, trace_of, trace_text
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

DEFAULT_DB = "production17.duckdb"
SECRET_ENV = "MESHFLOW_WEBHOOK_SECRET"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SPAN_WAIT_S = 10.0
NOTICE_POLL_S = 0.2


def seconds(text: str) -> float:
    """A gate timeout: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: --timeout is a number of seconds above 0")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the decision, the reviewer, the ledger, conformance or not."""
    parser = ScriptParser(description="Run the capstone with a PostgreSQL-ready ledger, a "
                           "signed approval webhook, OTLP spans and a conformance check "
                           "(lesson 17).")
    parser.add_argument("--reject", action="store_true",
                        help="the reviewer rejects the draft through the webhook receiver")
    parser.add_argument("--reviewer", default=os.environ.get("MESHFLOW_REVIEWER", "reviewer"),
                        help="the name recorded with the decision (default reviewer)")
    parser.add_argument("--db", default=os.environ.get("MESHFLOW_LEDGER_DB", DEFAULT_DB),
                        help="the ledger: a postgresql:// URI or a DuckDB file (default "
                             f"MESHFLOW_LEDGER_DB, else {DEFAULT_DB})")
    parser.add_argument("--conformance", action="store_true",
                        help="run meshflow conformance against this setup afterwards")
    parser.add_argument("--level", type=int, choices=(1, 2, 3), default=3,
                        help="the conformance level with --conformance (default 3)")
    parser.add_argument("--timeout", type=seconds, default=60.0,
                        help="seconds the gate waits for a decision (default 60)")
    parser.add_argument("--task", default=CAPSTONE_TASK, help="what the pipeline works on")
    return parser.parse_args(argv)


def production_policy(webhook: str, timeout_s: float) -> Policy:
    """Lesson 16's full governance stack, learning off, the gate announced by ``webhook``."""
    return Policy(
        mode=PolicyMode.REGULATED, budget_usd=5.0, enable_guardian=True,
        enable_uncertainty=True, enable_environmental=True, carbon_budget_g=500.0,
        enable_cross_run_learning=False, immutable_audit=True,
        circuit_breaker=CircuitBreakerConfig(max_retries=2, failure_threshold=3,
                                             failure_window_s=30.0, half_open_after_s=10.0),
        human_in_loop=HumanInLoopConfig(enabled=True, tier_threshold=RiskTier.EXTERNAL_IO,
                                        approval_webhook=webhook, timeout_s=timeout_s))


def span_receiver(servers: ExitStack) -> object | None:
    """A local OTLP receiver, exported to, unless the environment names a collector."""
    if os.environ.get(ENDPOINT_ENV) or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        print("Step 6: spans go to the collector the environment names")
        return None
    from meshflow_nb.telemetry import OtlpReceiver

    receiver = servers.enter_context(OtlpReceiver())
    os.environ[ENDPOINT_ENV] = receiver.endpoint
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "100")  # a batch every 0.1 s
    print(f"Step 6: spans go to a local OTLP receiver at {receiver.endpoint}")
    return receiver


def decide(inbox: WebhookInbox, handle: RunHandle, args: argparse.Namespace) -> None:
    """Wait for the run's signed notice, then approve or reject it as --reviewer."""
    while True:
        try:
            notice = inbox.wait_for_notice(handle.run_id, timeout_s=NOTICE_POLL_S)
            break
        except ApprovalError:
            if handle.done():
                print("  the run ended before its gate asked")
                return
    print(f"  the inbox got a notice: {notice.describe()}")
    decision = inbox.decide(notice, approved=not args.reject, reviewer=args.reviewer,
                            reason="rejected with --reject" if args.reject
                            else "approved through the webhook receiver")
    print(f"  decided through the decision store: {decision.describe()}")


def show_trace(receiver: object | None, run_id: str, executions: int) -> bool:
    """Print the run's trace from the local receiver; False when its spans never came."""
    if receiver is None:
        return True
    try:
        receiver.wait_for(executions + 1, timeout_s=SPAN_WAIT_S)
        print(trace_text(trace_of(receiver.spans, run_id)))
    except MeshflowError as err:
        print(f"  no trace: {err}")
        return False
    return True


def conformance(args: argparse.Namespace, inbox: WebhookInbox) -> bool:
    """Step 7: meshflow conformance against this setup; True when it conforms."""
    command = [sys.executable, "-m", "meshflow_nb", "conformance", "python",
               "--level", str(args.level), "--webhook", inbox.url]
    print(f"\nStep 7: meshflow conformance python --level {args.level}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    print(done.stdout.rstrip() or done.stderr.rstrip())
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    """Run the production setup once; the exit status says how it went."""
    args = parse(argv)
    os.environ.setdefault(SECRET_ENV, secrets.token_hex(32))  # shared with the receiver
    os.environ["MESHFLOW_LEDGER_DB"] = args.db                # for conformance and the store
    with ExitStack() as servers:
        inbox = servers.enter_context(WebhookInbox())
        try:
            pipeline = build_capstone_pipeline(policy=production_policy(inbox.url, args.timeout),
                                               gate_timeout_s=args.timeout)
            ledger = ReplayLedger(args.db)
        except MeshflowError as err:
            print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
            return 2
        ledger.attach(pipeline)
        print(f"Step 4: the ledger is {ledger.store.title}"
              + ("" if ledger.store.title == "PostgreSQL" else f" ({args.db})"))
        print("Step 5: the gate's notice goes to a webhook receiver on 127.0.0.1")
        receiver = span_receiver(servers)
        handle = pipeline.start(args.task, approver=inbox.approver())
        print(f"\nRun {handle.run_id} started")
        decide(inbox, handle, args)
        result = handle.result(timeout=args.timeout + 60)
        print(f"\n{result.summary()}\n")
        traced = show_trace(receiver, result.run_id, result.totals.node_executions)
        check = ledger.verify_chain(result.run_id)
        print(f"\nLedger, run {result.run_id}:\n{check.report()}")
        ledger.flush()
        conforms = conformance(args, inbox) if args.conformance else True
    expected = "rejected_at_gate" if args.reject else "completed"
    return 0 if result.status.value == expected and check.valid and traced and conforms else 1


if __name__ == "__main__":
    sys.exit(main())
