"""The `meshflow-nb` (alias `meshflow`) command line.

Every command keeps one exit-code contract (docs/cli.md): 0 valid or done, 1 the
ledger is damaged (or the run did not complete), 2 a usage or I/O problem, printed
by `main` as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agents.estimate import check_cost, estimate_cost
from ..agents.pricing import current_models
from ..errors import MeshflowError
from ..events import plural, short_text
from ..hitl.local import fixed_approver
from ..hitl.resolve import resolve_approver
from ..hitl.store import (
    approvals_dir,
    pending_requests,
    submit_decision,
    waiting_process_alive,
)
from ..ledger import Anchor, ImmutableLedgerError, ReplayLedger, default_location, save_anchors
from ..ledger.location import is_file_location, redacted_location
from ..ledger.stores import is_read_only
from ..localapi.server import LocalMessagesServer
from ..version import __version__
from .builders import build
from .conformance import IMPLEMENTATION, LEVELS, run_conformance
from .console import run_and_print

if TYPE_CHECKING:
    import pandas as pd

USAGE_OR_IO = 2
"""The exit status of a usage mistake or a file that cannot be used."""
REFUSED = 1
"""The exit status of a change the ledger refuses (immutable audit)."""
CELL_CHARS = 64
"""Characters of one cell ``ledger sql`` shows (a hash fits whole); longer cells are cut."""


class CliError(MeshflowError):
    """A user mistake on the command line: printed as one clear message, exit 2."""


def main(argv: list[str] | None = None) -> int:
    """The console script: run one command; any deliberate error or file problem is
    the one place that turns into ``meshflow-nb: error: ...`` and exit 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return USAGE_OR_IO
    try:
        return args.handler(args)
    except (MeshflowError, OSError) as err:
        print(f"meshflow-nb: error: {_one_line(err)}", file=sys.stderr)
        return USAGE_OR_IO


def _one_line(err: BaseException) -> str:
    """An error as one line: a file problem names the file, a long message is joined."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def _parser() -> argparse.ArgumentParser:
    """The argument parser: ``run``, ``ledger ...``, the approval commands and
    ``conformance``."""
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
    run.add_argument("--max-cost", type=float, metavar="USD",
                     help="live agents: refuse to start if the run could cost more")
    run.set_defaults(handler=_run)
    fake = commands.add_parser(
        "serve-fake", help="a local Messages API server, for live mode without a key",
        description="Serve the Anthropic Messages API on 127.0.0.1 with deterministic, "
                    "role-shaped answers (not a real model), until Ctrl-C. In another "
                    "terminal: export ANTHROPIC_BASE_URL=<the printed URL>.")
    fake.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    fake.add_argument("--all-models", action="store_true",
                      help="answer any model id (default: only the price table's current "
                           "ones; a retired id gets the API's 404)")
    fake.set_defaults(handler=_serve_fake)
    _add_ledger_commands(commands)
    _add_approval_commands(commands)
    _add_conformance_command(commands)
    return parser


def _add_ledger_commands(commands: argparse._SubParsersAction) -> None:
    """``ledger verify|runs|export|anchor|sql|new``, each with ``--db``."""
    ledger = commands.add_parser("ledger", help="verify, list, export, anchor and query the "
                                 "ledger, or start a fresh one",
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
    sql = actions.add_parser(
        "sql", help="run SQL on the ledger and print the result as a table",
        description="Run SQL on an existing ledger (SELECT ... FROM ledger_entries, or an "
                    "UPDATE to tamper on purpose, then 'ledger verify'). Exit 1 when the "
                    "ledger refuses a change.")
    sql.add_argument("query", metavar="SQL", help="the statement(s), quoted")
    sql.add_argument("--immutable", action="store_true",
                     help="open it as immutable audit does: only reading statements run "
                          "(on PostgreSQL this installs the append-only triggers)")
    sql.add_argument("--width", type=int, default=CELL_CHARS, metavar="N",
                     help=f"cut cells longer than N characters (default {CELL_CHARS}, "
                          "0 keeps them whole)")
    new = actions.add_parser(
        "new", help="start an empty ledger, moving an existing file aside",
        description="Start an empty DuckDB ledger at --db. An existing file there is moved "
                    "aside to <name>.<time>.bak, never deleted.")
    for action, handler in ((verify, _ledger_verify), (runs, _ledger_runs),
                            (export, _ledger_export), (anchor, _ledger_anchor),
                            (sql, _ledger_sql), (new, _ledger_new)):
        action.add_argument("--db", help=db_help)
        action.set_defaults(handler=handler)


def _add_approval_commands(commands: argparse._SubParsersAction) -> None:
    """``approve``, ``pending`` and ``resume``, each with ``--dir``."""
    dir_help = ("approvals directory (default: $MESHFLOW_APPROVALS_DIR, else .meshflow/"
                "approvals beside $MESHFLOW_LEDGER_DB or in the working directory)")
    approve = commands.add_parser(
        "approve", help="decide for a run waiting at a human gate",
        description="Record a decision for a run that waits for approval in another process "
                    "(MESHFLOW_HITL=store, or a policy approval_webhook). Approves unless "
                    "--reject is given.")
    approve.add_argument("run_id", metavar="RUN_ID")
    approve.add_argument("--reviewer", required=True, metavar="NAME",
                         help="who decides (recorded with the decision)")
    approve.add_argument("--reject", action="store_true", help="reject instead of approving")
    approve.add_argument("--reason", default="", metavar="TEXT", help="why (recorded)")
    approve.add_argument("--node", metavar="NODE",
                         help="the gate, when the run waits at more than one")
    pending = commands.add_parser("pending", help="list runs waiting for approval",
                                  description="List the gates waiting for a decision.")
    pending.add_argument("--json", action="store_true", help="print the requests as JSON")
    resume = commands.add_parser(
        "resume", help="continue a paused run whose waiting process is gone",
        description="After 'approve', continue a run from its gate in this process: the "
                    "workflow is rebuilt from its builder and the run appends to its ledger.")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--trust-builder", metavar="MODULE:FUNCTION",
                        help="rebuild with this builder, which must be the one the run "
                             "records (only registered builders are trusted without it)")
    for command, handler in ((approve, _approve), (pending, _pending), (resume, _resume)):
        command.add_argument("--dir", metavar="DIR", help=dir_help)
        command.set_defaults(handler=handler)


def _add_conformance_command(commands: argparse._SubParsersAction) -> None:
    """``conformance python --level N [--json] [--webhook URL]``."""
    levels = "; ".join(f"{n} {what}" for n, what in LEVELS.items())
    conformance = commands.add_parser(
        "conformance", help="check that this installation does what the course says",
        description=f"Run real checks of this installation, level by level ({levels}; each "
                    "level includes the ones below). Exit 0 conformant (skips allowed), 1 a "
                    "check failed. docs/conformance.md lists every check.")
    conformance.add_argument("implementation", metavar="IMPLEMENTATION",
                             help=f"the implementation to check: {IMPLEMENTATION} (this package)")
    conformance.add_argument("--level", type=int, choices=sorted(LEVELS), default=max(LEVELS),
                             help=f"the highest level to check (default {max(LEVELS)})")
    conformance.add_argument("--json", action="store_true",
                             help="print the report as JSON (schema in docs/conformance.md)")
    conformance.add_argument("--webhook", metavar="URL",
                             help="level 3: post a signed test notice to this approval "
                                  "webhook (signed with $MESHFLOW_WEBHOOK_SECRET)")
    conformance.set_defaults(handler=_conformance)


def _conformance(args: argparse.Namespace) -> int:
    """Run the checks up to ``--level``: exit 0 conformant, 1 a check failed."""
    if args.implementation != IMPLEMENTATION:
        raise CliError(f"conformance checks the {IMPLEMENTATION!r} implementation (this "
                       f"package), not {args.implementation!r}: run "
                       f"'meshflow-nb conformance {IMPLEMENTATION} --level N'")
    report = run_conformance(args.level, webhook=args.webhook)
    print(report.to_json() if args.json else report.text())
    return 0 if report.conformant else 1


def _approve(args: argparse.Namespace) -> int:
    """Record a decision; say so when nobody waits for it any more (then ``resume``)."""
    if not args.reviewer.strip():
        raise CliError("--reviewer needs a name: it is recorded with the decision")
    decision = submit_decision(args.run_id, not args.reject, args.reviewer, args.reason,
                               node_id=args.node, channel="cli", dir=args.dir)
    print(f"recorded for run {args.run_id} at {decision.node_id}: {decision.describe()}")
    if _waiting_gone(args.run_id, decision.node_id, args.dir):
        print(f"the process that was waiting is gone; continue the run with: "
              f"meshflow-nb resume {args.run_id}", file=sys.stderr)
    return 0


def _resume(args: argparse.Namespace) -> int:
    """Continue a paused run here; exit 0 only when it completes."""
    from .resume import resume_run

    result = resume_run(args.run_id, args.dir, trust_builder=args.trust_builder)
    print(result.summary())
    return 0 if result.ok else 1


def _waiting_gone(run_id: str, node_id: str, directory: str | None) -> bool:
    """Whether the process that waited at this gate is known to be gone."""
    return any(r.get("run_id") == run_id and r.get("node_id") == node_id
               and waiting_process_alive(r) is False for r in pending_requests(directory))


def _pending(args: argparse.Namespace) -> int:
    """List the gates waiting for a decision, as lines or as JSON."""
    requests = pending_requests(args.dir)
    if args.json:
        shown = [{k: v for k, v in r.items() if k != "state"} for r in requests]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    elif not requests:
        print(f"no run is waiting for approval (in {approvals_dir(args.dir)})")
    else:
        for request in requests:
            print(_pending_line(request))
        print("decide with: meshflow-nb approve RUN_ID --reviewer NAME "
              "[--reject --reason TEXT]")
    return 0


def _pending_line(request: dict[str, Any]) -> str:
    """One waiting gate on one line, marked when its process is gone."""
    timeout = request.get("timeout_s")
    parts = [str(request.get("run_id")), str(request.get("node_id")),
             str(request.get("risk_tier")), f"since {request.get('requested_at')}",
             f"timeout {timeout:g} s" if isinstance(timeout, (int, float)) else "no timeout",
             repr(request.get("prompt", ""))]
    if waiting_process_alive(request) is False:
        parts.append(f"(its process {request.get('pid')} is gone: nothing will read a decision)")
    return "  ".join(parts)


def _open_ledger(location: str | None, *, immutable: bool = False) -> ReplayLedger:
    """An existing ledger; a missing file is a mistake here, not a new ledger."""
    target = location or default_location()
    if is_file_location(target) and not os.path.exists(target):
        raise CliError(f"no ledger at {target}: make one by running the capstone on it "
                       f"(MESHFLOW_LEDGER_DB={target} ./dev capstone), or pass --db with "
                       "the ledger you meant")
    return ReplayLedger(target, immutable=immutable)


def _load_anchors(path: str) -> list[Anchor]:
    """The anchors kept in ``path``; a file that holds none is a usage mistake, not a
    damaged ledger (`Anchor.load` fails with the JSON or constructor error)."""
    try:
        anchors = Anchor.load(path)
    except (ValueError, TypeError) as err:
        raise CliError(f"{path} is not an anchor file ({_one_line(err)}): it should hold "
                       "what 'meshflow-nb ledger anchor RUN -o FILE' writes") from None
    if not anchors or not all(_well_formed(a) for a in anchors):
        raise CliError(f"{path} is not an anchor file: each anchor needs a length, a "
                       "head_hash and a run_id (null for the whole ledger), as "
                       "'meshflow-nb ledger anchor RUN -o FILE' writes them")
    return anchors


def _well_formed(anchor: Anchor) -> bool:
    """Whether a loaded anchor has the types a check can compare against (a run id, or
    None for an anchor of the whole ledger)."""
    return (isinstance(anchor.run_id, str | None) and isinstance(anchor.head_hash, str)
            and isinstance(anchor.length, int) and not isinstance(anchor.length, bool))


def _ledger_verify(args: argparse.Namespace) -> int:
    """Check the chain (against anchors if given): exit 0 valid, 1 damaged."""
    ledger = _open_ledger(args.db)
    anchors = _load_anchors(args.anchor) if args.anchor else None
    result = ledger.verify_chain(args.run, anchor=anchors)
    print(result.report())
    return 0 if result.valid else 1


def _ledger_runs(args: argparse.Namespace) -> int:
    """One line per run in the ledger."""
    runs = _open_ledger(args.db).runs()
    columns = ["run_id", "workflow", "status", "entry_count", "started_at", "ended_at"]
    print(runs[columns].to_string(index=False) if not runs.empty else "no runs yet")
    return 0


def _ledger_export(args: argparse.Namespace) -> int:
    """A run as JSON, to stdout or to ``-o``."""
    text = _open_ledger(args.db).export_run(args.run_id)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote run {args.run_id} to {args.output}")
    else:
        print(text)
    return 0


def _ledger_anchor(args: argparse.Namespace) -> int:
    """A run's anchor, printed or added to the ``-o`` file (replacing its older one)."""
    anchor = _open_ledger(args.db).anchor(args.run_id)
    if args.output:
        kept = _load_anchors(args.output) if os.path.exists(args.output) else []
        save_anchors([*(a for a in kept if a.run_id != anchor.run_id), anchor], args.output)
        print(f"anchored run {anchor.run_id} ({plural(anchor.length, 'entry', 'entries')}) "
              f"in {args.output}")
    else:
        print(json.dumps(anchor.to_dict(), indent=2))
    return 0


def _ledger_sql(args: argparse.Namespace) -> int:
    """Run SQL on an existing ledger and print the result: exit 1 when a change is refused."""
    if args.width < 0:
        raise CliError(f"--width {args.width}: give a number of characters, or 0 for whole cells")
    ledger = _open_ledger(args.db, immutable=args.immutable)
    try:
        frame = ledger.sql(args.query)
    except ImmutableLedgerError as err:
        print(f"meshflow-nb: refused: {_one_line(err)}; nothing was changed", file=sys.stderr)
        return REFUSED
    print(_table(frame, args.width))
    if not is_read_only(args.query):
        shown = redacted_location(ledger.location)
        print(f"the ledger was changed: 'meshflow-nb ledger verify --db {shown}' "
              "shows what the verifier makes of it", file=sys.stderr)
    return 0


def _table(frame: pd.DataFrame, width: int) -> str:
    """A query result as a table of one-line cells (NULL shown as NULL), long cells cut."""
    if frame.empty:
        columns = ", ".join(map(str, frame.columns))
        return f"(no rows; columns: {columns})" if columns else "(no result)"
    return frame.astype(object).map(lambda value: _cell(value, width)).to_string(index=False)


def _cell(value: object, width: int) -> str:
    """One cell on one line: cut to ``width`` characters with an ellipsis (0: whole)."""
    if _is_null(value):
        return "NULL"
    return short_text(value, width) if width else str(value).replace("\n", "\\n")


def _is_null(value: object) -> bool:
    """SQL NULL as pandas holds it: None, NaN, NaT or NA (a list cell is not NULL)."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _ledger_new(args: argparse.Namespace) -> int:
    """Start an empty DuckDB ledger; an existing file is moved aside, never deleted."""
    target = args.db or default_location()
    if not is_file_location(target):
        raise CliError(f"'ledger new' starts DuckDB files only; for "
                       f"{redacted_location(target)}, create a new database and pass its URI "
                       "as --db or MESHFLOW_LEDGER_DB")
    if os.path.isdir(target):
        raise CliError(f"{target} is a directory: pass the path of a ledger file")
    kept = _move_aside(Path(target)) if os.path.lexists(target) else None
    ReplayLedger(target).flush()  # creates the file and its tables
    if kept:
        print(f"moved the old ledger aside to {kept} (kept: an audit ledger is never deleted)")
    print(f"new empty ledger at {target}")
    return 0


def _move_aside(path: Path) -> Path:
    """Rename the ledger (and its DuckDB write-ahead log) to ``<name>.<UTC time>.bak``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = path.with_name(f"{path.name}.{stamp}.bak")
    for n in range(1, 1000):
        if not os.path.lexists(kept):
            break
        kept = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    os.rename(path, kept)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        os.rename(wal, kept.with_name(kept.name + ".wal"))
    return kept


def _run(args: argparse.Namespace) -> int:
    """Build the named workflow and run it: exit 0 completed, 1 otherwise."""
    workflow = build(args.builder)
    if args.reject:
        approver = fixed_approver(False, args.reviewer, "rejected with --reject", channel="cli")
    else:  # settled here, so a setting that cannot work is a usage mistake, not a run
        approver = resolve_approver(workflow.policy, None)
    preview = estimate_cost(workflow, args.task)
    if preview.calls:  # live agents: what the run may cost, before anything is called
        print(preview.describe(), file=sys.stderr if args.stream else sys.stdout)
    check_cost(preview, args.max_cost)
    if workflow.policy is not None:
        check_cost(preview, workflow.policy.budget_usd, what="the policy's budget")
    result = run_and_print(workflow, args.task, stream=args.stream, approver=approver)
    return 0 if result.ok else 1


def _serve_fake(args: argparse.Namespace) -> int:
    """Serve the local Messages API until interrupted; print where it listens."""
    models = None if args.all_models else current_models()
    with LocalMessagesServer(port=args.port, models=models) as server:
        print(f"meshflow-nb: local Messages API (not a real model) at {server.url}\n"
              f"  export ANTHROPIC_BASE_URL={server.url}   # then run a lesson live, no key\n"
              "  Ctrl-C stops it.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
