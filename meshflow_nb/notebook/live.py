"""Start a run in a notebook with everything a learner watches: one call, one cell.

    live = run_live(pipeline, task, decision=hitl_decision)   # returns at once
    result = await live                                       # a later cell

`run_live` shows the `LiveView` (graph, totals, event table) and the `ApprovalPanel`,
then starts the run in the background (``workflow.start``) with the panel as its
approver. The cell ends while the run goes on; the widgets stay live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.display import display

from ..engine.launch import RunHandle
from ..engine.results import RunResult
from ..errors import MeshflowError
from ..workflow import WorkflowDefinition
from .approval_panel import ApprovalPanel
from .liveview import LiveView


class WouldBlockKernelError(MeshflowError, RuntimeError):
    """A blocking wait was asked for while only the kernel could end it (a panel click)."""


@dataclass
class LiveRun:
    """A run started by `run_live`: its handle, its live view and its approval panel."""

    handle: RunHandle
    view: LiveView
    panel: ApprovalPanel

    @property
    def run_id(self) -> str:
        return self.handle.run_id

    def __await__(self):
        """``await live``: the run's `RunResult`, while the kernel keeps taking clicks."""
        return self.handle.__await__()

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the end of the run (blocking: prefer ``await live`` in a notebook)."""
        if self.panel.waiting and not self.handle.done():
            raise WouldBlockKernelError(
                "the approval panel is waiting for a click, and result() would block the "
                "kernel so the click could never arrive: use 'result = await live' instead")
        return self.handle.result(timeout)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"<LiveRun {self.run_id} {self.handle.status.value}>")


def run_live(workflow: WorkflowDefinition, task: str, *, decision: str | None = None,
             reviewer: str | None = None, show: bool = True, **options: Any) -> LiveRun:
    """Show the live view and the approval panel, then start ``workflow`` on ``task``.

    ``decision`` ("approve"/"reject") decides the gates without a person (papermill);
    otherwise ``MESHFLOW_HITL`` does, or the panel's buttons. Other ``options`` go to
    ``workflow.start`` (``policy=``, ``on_event=``, ``tracer_provider=``).
    """
    panel = ApprovalPanel(decision, reviewer=reviewer)
    view = LiveView(workflow)
    if show:
        display(view, panel)
    handle = workflow.start(task, approver=panel, **options)
    view.watch(handle)
    return LiveRun(handle, view, panel)
