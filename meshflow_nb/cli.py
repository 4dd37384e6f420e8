"""The `meshflow-nb` (alias `meshflow`) command line."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .console import run_and_print
from .hitl import fixed_approver
from .ledger import Anchor, LedgerError, ReplayLedger, default_location, save_anchors
from .workflow import WorkflowDefinition


class CliError(Exception):
    """A user mistake on the command line: printed as one clear message, exit 2."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except CliError as err:
        print(f"meshflow-nb: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshflow-nb", description="Run, inspect and audit meshflow_nb workflows.")
    parser.add_argument("--version", action="version", version=f"meshflow-nb {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run a workflow built by a Python function",
        description="Run the workflow returned by BUILDER (module:function), e.g. "
                    "meshflow_nb.pipelines:build_capstone_pipeline.")
    run.add_argument("builder", metavar="BUILDER", help="module:function returning a workflow")
    run.add_argument("task", help="the task text given to the workflow")
    run.add_argument("--stream", action="store_true", help="print one JSON line per event")
    run.add_argument("--reject", action="store_true",
                     help="the reviewer rejects at every human gate")
    run.add_argument("--reviewer", default="cli-reviewer", help="name recorded with decisions")
    run.set_defaults(handler=_run)
    _add_ledger_commands(commands)
    return parser


def _add_ledger_commands(commands: argparse._SubParsersAction) -> None:
    ledger = commands.add_parser("ledger", help="verify, list, export and anchor ledger runs",
                                 description="Work with the hash-chained audit ledger.")
    actions = ledger.add_subparsers(title="ledger commands", metavar="ACTION")
    db_help = "ledger file or postgresql:// URI (default: $MESHFLOW_LEDGER_DB or ./" \
              "meshflow_ledger.duckdb)"

    verify = actions.add_parser("verify", help="check every hash and link (exit 1 if damaged)")
    verify.add_argument("--run", help="only this run")
    verify.add_argument("--anchor", metavar="FILE", help="anchors saved earlier, to compare")
    runs = actions.add_parser("runs", help="one line per run")
    export = actions.add_parser("export", help="a run as JSON, exactly as stored")
    export.add_argument("run_id", metavar="RUN")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    anchor = actions.add_parser("anchor", help="a run's length and head hash, to keep elsewhere")
    anchor.add_argument("run_id", metavar="RUN")
    anchor.add_argument("-o", "--output", metavar="FILE",
                        help="add the anchor to this JSON file (created if missing)")
    for action, handler in ((verify, _ledger_verify), (runs, _ledger_runs),
                            (export, _ledger_export), (anchor, _ledger_anchor)):
        action.add_argument("--db", help=db_help)
        action.set_defaults(handler=handler)


def _open_ledger(location: str | None) -> ReplayLedger:
    """An existing ledger; a missing file is a mistake here, not a new ledger."""
    target = location or default_location()
    if "://" not in target and not os.path.exists(target):
        raise CliError(f"no ledger at {target}: run a workflow with a ledger first, "
                       "or pass --db PATH")
    try:
        return ReplayLedger(target)
    except LedgerError as err:
        raise CliError(str(err)) from None


def _ledger_verify(args: argparse.Namespace) -> int:
    ledger = _open_ledger(args.db)
    if args.anchor and not os.path.exists(args.anchor):
        raise CliError(f"no anchor file at {args.anchor}")
    result = ledger.verify_chain(args.run, anchor=args.anchor)
    print(result.report())
    return 0 if result.valid else 1


def _ledger_runs(args: argparse.Namespace) -> int:
    runs = _open_ledger(args.db).runs()
    columns = ["run_id", "workflow", "status", "entry_count", "started_at", "ended_at"]
    print(runs[columns].to_string(index=False) if not runs.empty else "no runs yet")
    return 0


def _ledger_export(args: argparse.Namespace) -> int:
    text = _ledger_call(_open_ledger(args.db).export_run, args.run_id)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote run {args.run_id} to {args.output}")
    else:
        print(text)
    return 0


def _ledger_anchor(args: argparse.Namespace) -> int:
    anchor = _ledger_call(_open_ledger(args.db).anchor, args.run_id)
    if args.output:
        kept = Anchor.load(args.output) if os.path.exists(args.output) else []
        save_anchors([*(a for a in kept if a.run_id != anchor.run_id), anchor], args.output)
        print(f"anchored run {anchor.run_id} ({anchor.length} entries) in {args.output}")
    else:
        print(json.dumps(anchor.to_dict(), indent=2))
    return 0


def _ledger_call(method: Callable[[str], Any], run_id: str) -> Any:
    try:
        return method(run_id)
    except LedgerError as err:
        raise CliError(str(err)) from None


def _run(args: argparse.Namespace) -> int:
    workflow = _load_builder(args.builder)()
    if not isinstance(workflow, WorkflowDefinition):
        raise CliError(f"{args.builder} returned {type(workflow).__name__}, "
                       "not a WorkflowDefinition")
    approver = None
    if args.reject:
        approver = fixed_approver(False, args.reviewer, "rejected with --reject", channel="cli")
    result = run_and_print(workflow, args.task, stream=args.stream, approver=approver)
    return 0 if result.ok else 1


def _load_builder(spec: str) -> Callable[[], WorkflowDefinition]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CliError(f"BUILDER must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CliError(f"cannot import {module_name!r}: {err}") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise CliError(f"{module_name!r} has no function {attr!r}")
    return builder


if __name__ == "__main__":
    sys.exit(main())
