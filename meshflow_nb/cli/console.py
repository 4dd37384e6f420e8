"""Terminal presentation of a run: progress lines, the event stream, the summary.

Shared by the hands-on scripts and the CLI so that both print a run the same way.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from ..engine.results import RunResult
from ..events import BOOKKEEPING_KEYS, EventType, MeshEvent, headline, short_text
from ..hitl.requests import Approver
from ..workflow import WorkflowDefinition

_TERMINAL_SKIP = BOOKKEEPING_KEYS | {"feedback"}
"""Left out of a progress line's headline: bookkeeping, and the critic's feedback, prose
that a terminal line has no room for (the notebook table shows it when it is short)."""

EXTRA_CHARS = 40
"""Characters of one headline value a progress line shows."""


def progress_line(event: MeshEvent) -> str | None:
    """A short line for the events a person follows in standard mode, else None."""
    p = event.payload
    if event.type is EventType.NODE_COMPLETE:
        return _done_line(event)
    if event.type is EventType.NODE_FAILED:
        return f"  FAILED  {event.node_id:<14} {p['error']}"
    if event.type is EventType.NODE_SKIPPED:
        return f"  skipped {event.node_id:<14} {p['reason']}"
    if event.type is EventType.LOOP_ITERATION:
        return (f"  loop    {p['edge']} [{p['condition']}] -> revision {p['iteration']} "
                f"of {p['max_iterations']}")
    if event.type is EventType.LOOP_EXHAUSTED:
        return f"  loop    {p['message']}"
    if event.type is EventType.GATE_PAUSE:
        return f"  paused  {event.node_id:<14} waiting for a human decision ({p['prompt']})"
    if event.type in (EventType.GATE_RESUME, EventType.GATE_REJECT):
        verdict = "approved" if event.type is EventType.GATE_RESUME else "REJECTED"
        why = f": {p['reason']}" if p.get("reason") else ""
        return f"  gate    {event.node_id:<14} {verdict} by {p['reviewer']} via {p['channel']}{why}"
    if event.type is EventType.PREFLIGHT_REJECTED:
        return "  pre-flight rejected the workflow; no node ran"
    return None


def _done_line(event: MeshEvent) -> str:
    """A completed node: its columns, then its headline (the variables the agent set)."""
    p = event.payload
    cost = f"${event.cost_usd:.4f}" if event.cost_usd else "$0"
    unc = f"  uncertainty {event.uncertainty:.2f}" if event.uncertainty is not None else ""
    extra = "".join(f"  {k}={_value(v)}" for k, v in headline(p, skip=_TERMINAL_SKIP))
    again = f" (pass {p['iteration']})" if p.get("iteration", 1) > 1 else ""
    return (f"  done    {event.node_id:<14} {event.role or '':<12} {p['duration_ms']:>7.1f} ms"
            f"  {event.tokens or 0:>5} tokens  {cost}{unc}{extra}{again}")


def _value(value: object) -> str:
    """A headline value in a progress line: numbers at two decimals, to line up with the
    line's uncertainty column (the other faces show them as recorded), else `short_text`."""
    return f"{value:.2f}" if isinstance(value, float) else short_text(value, EXTRA_CHARS)


def run_and_print(workflow: WorkflowDefinition, task: str, *, stream: bool = False,
                  approver: Approver | None = None, out: TextIO = sys.stdout) -> RunResult:
    """Run, printing progress lines, or with ``stream`` one JSON line per event.

    In stream mode ``out`` carries only the JSON lines; the header and the summary go
    to stderr so that the stream can be piped into another program.
    """
    notes = sys.stderr if stream else out

    def show(event: MeshEvent) -> None:
        if event.type is EventType.RUN_START:  # the task as screened, never as typed
            _print_or_silence(f"Running '{workflow.name}' on: {event.payload['task']}", notes)
        line = event.to_json() if stream else progress_line(event)
        if line is not None:
            _print_or_silence(line, out)

    result = workflow.run(task, approver=approver, on_event=show)
    _print_or_silence("\n" + result.summary(), notes)
    if result.ok:
        _print_or_silence("\nFinal output:\n" + _indent(result.output), notes)
    return result


def _print_or_silence(line: str, out: TextIO) -> None:
    """Print; once the reader has gone (``| head``), send the rest to /dev/null."""
    try:
        print(line, file=out, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


def _indent(value: Any) -> str:
    return "\n".join("  " + line for line in str(value).splitlines())
