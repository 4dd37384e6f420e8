"""The `meshflow-nb` (alias `meshflow`) command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from . import __version__
from .console import run_and_print
from .hitl import fixed_approver
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
    return parser


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
