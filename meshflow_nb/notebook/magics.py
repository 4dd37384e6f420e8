"""IPython magics: draw, run, query and verify from a notebook cell.

    %load_ext meshflow_nb
    %meshflow_draw wf                        # the workflow as SVG (--text: an outline)
    %meshflow_run wf "solid-state batteries" --reject --var result
    %meshflow_run wf "solid-state batteries" --live --var live   # then: await live
    %%meshflow_sql --ledger ledger           # the cell's SQL -> pandas DataFrame
    SELECT run_id, node_id, hash FROM ledger_entries ORDER BY seq;
    %meshflow_verify --ledger ledger         # LedgerView: damaged rows highlighted

Rich objects (workflows, ledgers) are passed by variable name and looked up in the
user namespace. Mistakes give a one-line `UsageError`, never a traceback: IPython's
own class, the one exception here that is not a `MeshflowError`, because IPython prints
exactly that class in one line. Errors of the ledger arrive as `LedgerError` (the
ledger wraps its database driver's), so this module imports no driver. See
docs/magics.md.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import SVG, Pretty, display

from ..engine.results import RunResult
from ..errors import MeshflowError
from ..events import plural
from ..hitl.local import fixed_approver
from ..hitl.requests import Approver
from ..ledger.errors import LedgerError
from ..ledger.replay import ReplayLedger, default_location
from ..model.graph import Edge, Node
from ..workflow import WorkflowDefinition
from .drawing import GraphvizNotInstalled, render_svg
from .explorer import LedgerView, explore
from .live import LiveRun, run_live
from .runview import RunView

DEFAULT_RESULT_VAR = "_meshflow_result"
"""Where ``%meshflow_run`` stores the RunResult unless ``--var`` names another variable."""

DEFAULT_REVIEWER = "notebook"
"""The reviewer recorded for ``--approve``/``--reject`` without ``--reviewer``."""


@magics_class
class MeshflowMagics(Magics):
    """``%meshflow_draw``, ``%meshflow_run``, ``%%meshflow_sql`` and ``%meshflow_verify``."""

    @magic_arguments()
    @argument("workflow", help="name of a variable holding a WorkflowDefinition")
    @argument("--text", action="store_true", help="a plain-text outline instead of the SVG")
    @line_magic
    def meshflow_draw(self, line: str) -> SVG | Pretty:
        """Draw a workflow: ``%meshflow_draw wf`` returns its SVG drawing."""
        args = _parse(self.meshflow_draw, line)
        workflow = self._lookup(args.workflow, WorkflowDefinition)
        if args.text:
            return Pretty(outline(workflow))
        return SVG(data=_svg(workflow))

    @magic_arguments()
    @argument("workflow", help="name of a variable holding a WorkflowDefinition")
    @argument("task", nargs="+", help="the task (several words are joined with spaces)")
    @argument("--approve", action="store_true", help="approve at every human gate")
    @argument("--reject", action="store_true", help="reject at every human gate")
    @argument("--reviewer", default=DEFAULT_REVIEWER,
              help=f"reviewer named in --approve/--reject decisions (default {DEFAULT_REVIEWER})")
    @argument("--live", action="store_true",
              help="show the live view and the approval panel and return at once; the "
                   "variable receives a LiveRun: 'result = await <var>' in a later cell")
    @argument("--var", default=DEFAULT_RESULT_VAR,
              help=f"variable that receives the RunResult (default {DEFAULT_RESULT_VAR})")
    @line_magic
    def meshflow_run(self, line: str) -> None:
        """Run a workflow on a task, show the final drawing and summary, keep the result.

        ``%meshflow_run wf some task --reject --var result`` stores the `RunResult` in
        ``result``; a failed or rejected run is shown like any other. With ``--live``
        the run goes on in the background under the live view, and the gate waits for
        the panel's buttons unless --approve/--reject (or MESHFLOW_HITL) decides it.
        """
        args = _parse(self.meshflow_run, line)
        workflow = self._lookup(args.workflow, WorkflowDefinition)
        if not args.var.isidentifier():
            raise UsageError(f"--var {args.var!r} is not a valid variable name")
        if args.live:
            self.shell.user_ns[args.var] = _run_live(workflow, " ".join(args.task), args)
            return
        result = _run(workflow, " ".join(args.task), _approver(args))
        self.shell.user_ns[args.var] = result
        show_result(workflow, result)

    @magic_arguments()
    @argument("--db", help="ledger database path or postgresql:// URI "
                           "(default: MESHFLOW_LEDGER_DB or meshflow_ledger.duckdb)")
    @argument("--ledger", help="name of a variable holding a ReplayLedger (instead of --db)")
    @cell_magic
    def meshflow_sql(self, line: str, cell: str) -> pd.DataFrame:
        """Run the cell's SQL on the ledger and return a pandas DataFrame."""
        args = _parse(self.meshflow_sql, line)
        ledger = self._ledger(args)
        if not cell.strip():
            raise UsageError("%%meshflow_sql: the cell holds no SQL")
        ledger.flush()
        try:
            return ledger.sql(cell)
        except LedgerError as err:
            raise UsageError(f"%%meshflow_sql: {_one_line(err)}") from None

    @magic_arguments()
    @argument("run_id", nargs="?", default=None, help="verify only this run (default: all)")
    @argument("--db", help="ledger database path or postgresql:// URI "
                           "(default: MESHFLOW_LEDGER_DB or meshflow_ledger.duckdb)")
    @argument("--ledger", help="name of a variable holding a ReplayLedger (instead of --db)")
    @argument("--anchor", help="anchor file written by Anchor.save (detects truncation)")
    @line_magic
    def meshflow_verify(self, line: str) -> LedgerView:
        """Verify the ledger (or one run) and return the explorer's `LedgerView`."""
        args = _parse(self.meshflow_verify, line)
        ledger = self._ledger(args)
        try:
            return explore(ledger, args.run_id, args.anchor)
        except (OSError, ValueError, MeshflowError) as err:  # ValueError: a bad anchor
            raise UsageError(f"%meshflow_verify: {_one_line(err)}") from None

    # --- helpers -----------------------------------------------------------------

    def _lookup(self, name: str, kind: type) -> Any:
        """The user variable ``name``, which must be a ``kind`` (UsageError otherwise)."""
        namespace = self.shell.user_ns
        if name not in namespace:
            raise UsageError(f"no variable {name!r}: expected a {kind.__name__}")
        value = namespace[name]
        if not isinstance(value, kind):
            raise UsageError(f"variable {name!r} is a {type(value).__name__}, "
                             f"not a {kind.__name__}")
        return value

    def _ledger(self, args: Any) -> ReplayLedger:
        """The ledger named by ``--ledger``, else opened from ``--db`` or the default."""
        if args.ledger and args.db:
            raise UsageError("give either --ledger or --db, not both")
        if args.ledger:
            return self._lookup(args.ledger, ReplayLedger)
        try:
            return ReplayLedger(args.db or default_location())
        except (OSError, MeshflowError) as err:
            raise UsageError(f"cannot open the ledger: {_one_line(err)}") from None


def outline(workflow: WorkflowDefinition) -> str:
    """A plain-text outline of the workflow: its nodes, then its edges."""
    lines = [f"workflow {workflow.name!r}: {plural(len(workflow.nodes), 'node')}, "
             f"{plural(len(workflow.edges), 'edge')}", "nodes:"]
    lines += [f"  {_node_line(node)}" for node in workflow.nodes]
    lines.append("edges:")
    lines += [f"  {_edge_line(edge)}" for edge in workflow.edges]
    return "\n".join(lines)


def show_result(workflow: WorkflowDefinition, result: RunResult) -> RunView:
    """Replay ``result`` into a `RunView`; display its drawing and its text summary."""
    view = RunView(workflow)
    for event in result.events:
        view.apply(event)
    try:
        display(SVG(data=view.svg()))
    except GraphvizNotInstalled as err:
        display(Pretty(f"(no drawing: {err})"))
    summary = view.text() + (f"\nerror: {result.error}" if result.error else "")
    display(Pretty(f"run {result.run_id}\n{summary}"))
    return view


def _node_line(node: Node) -> str:
    if node.is_gate:
        return f"{node.id}  (human gate)"
    tier = getattr(node.risk_tier, "name", node.risk_tier)
    details = ", ".join(str(d) for d in (node.role, tier) if d)
    return f"{node.id}  ({details})" if details else str(node.id)


def _edge_line(edge: Edge) -> str:
    guard = f"  if {edge.condition}" if edge.condition else ""
    limit = f"  (max {edge.max_iterations})" if edge.max_iterations else ""
    return f"{edge.label}{guard}{limit}"


def _svg(workflow: WorkflowDefinition) -> str:
    try:
        return render_svg(workflow)
    except GraphvizNotInstalled as err:
        raise UsageError(str(err)) from None


def _decision(args: Any) -> str | None:
    """"approve" or "reject" from the flags, None when neither is given."""
    if args.approve and args.reject:
        raise UsageError("give either --approve or --reject, not both")
    return "approve" if args.approve else "reject" if args.reject else None


def _approver(args: Any) -> Approver | None:
    """A fixed headless decision for ``--approve``/``--reject``; else the usual rules."""
    decision = _decision(args)
    if decision is None:
        return None
    return fixed_approver(decision == "approve", args.reviewer,
                          reason="decided by %meshflow_run")


def _run_live(workflow: WorkflowDefinition, task: str, args: Any) -> LiveRun:
    """Start under the live view; the gate decision from the flags, or the buttons."""
    decision = _decision(args)
    reviewer = args.reviewer if decision else None
    try:
        return run_live(workflow, task, decision=decision, reviewer=reviewer)
    except Exception as err:  # a bad MESHFLOW_HITL, a task that is not text ...
        raise UsageError(f"%meshflow_run: {type(err).__name__}: {_one_line(err)}") from None


def _run(workflow: WorkflowDefinition, task: str, approver: Approver | None) -> RunResult:
    """Run to the end; a run that cannot even start becomes a one-line UsageError."""
    try:
        return workflow.run(task, approver=approver)
    except Exception as err:  # shown in one line: the magic never prints a traceback
        raise UsageError(f"%meshflow_run: {type(err).__name__}: {_one_line(err)}") from None


def _parse(magic: Any, line: str) -> Any:
    """Parse a magic's arguments; argparse's own errors already are UsageErrors."""
    return parse_argstring(magic, line)


def _one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
