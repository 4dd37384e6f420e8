"""What the plots read: one run's events from whatever a learner has at hand, and the
figure class they draw on.

A run is a `RunResult`, a `RunHandle`, a `LiveRun`, or its events (`MeshEvent`s or their
``to_dict()``, as read back from a JSON line or ``ledger.events(run_id)``); anything else
is a `ConfigError` that says what to pass. The figure shows itself in a notebook as PNG
without pyplot, and prints as text where there are no images.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping
from typing import Any

from ..engine.launch import RunHandle
from ..engine.results import RunResult
from ..errors import ConfigError, shown
from ..events import MeshEvent
from .live import LiveRun

RUN_FIX = ("pass a run's result (wf.run(...)), its events (result.events, "
           "ledger.events(run_id)), or a dict {'label': run, ...}")
PNG_DPI = 100


def events_of(source: Any, shows: str) -> list[MeshEvent]:
    """One run's events in order; ``shows`` names the view for the errors ("a timeline")."""
    if isinstance(source, LiveRun):
        source = source.handle
    if isinstance(source, (RunResult, RunHandle)):
        source = source.events
    if isinstance(source, (str, bytes, Mapping)) or not isinstance(source, Iterable):
        raise ConfigError(f"{shows} is drawn from a run, not {what(source)}", argument="run",
                          fix=RUN_FIX)
    events = [event_of(item, n) for n, item in enumerate(source)]
    if not events:
        raise ConfigError(f"{shows} needs the events of a run, and this list is empty",
                          argument="run", fix=RUN_FIX)
    runs = list(dict.fromkeys(e.run_id for e in events))
    if len(runs) > 1:
        raise ConfigError(f"these events come from {len(runs)} runs; {shows} shows one",
                          argument="run", fix="pass one run's events, e.g. "
                          "ledger.events(run_id), or a dict {'label': run, ...} to compare runs")
    return sorted(events, key=lambda e: e.seq)


def labelled_runs(runs: Any, shows: str, example: str) -> list[tuple[str, Any]]:
    """(label, run) per run to draw: a dict {'label': run} gives one per entry, anything
    else is one unlabelled run. ``shows`` names the view and ``example`` a dict of runs
    for the errors."""
    if isinstance(runs, Mapping) and {"run_id", "seq", "type"} <= set(runs):
        raise ConfigError(f"that is one event; {shows} needs all the events of a run",
                          argument="runs", fix=RUN_FIX)
    if not isinstance(runs, Mapping):
        return [("", runs)]
    if not runs:
        raise ConfigError("the dict of runs to compare is empty", argument="runs",
                          fix="pass {'label': run, ...} with at least one run")
    bad = next((k for k in runs if not isinstance(k, str)), None)
    if bad is not None:
        raise ConfigError(f"the labels of the runs should be text, not {what(bad)}",
                          argument="runs", fix=f"pass {example}")
    return list(runs.items())


def event_of(item: Any, position: int) -> MeshEvent:
    """One event, given as itself or as its ``to_dict()`` (a JSON line read back)."""
    if isinstance(item, MeshEvent):
        return item
    if isinstance(item, Mapping):
        try:
            return MeshEvent.from_dict(dict(item))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"item {position} is not an event's dict ({type(err).__name__}: "
                              f"{err})", argument="run", fix=RUN_FIX) from None
    raise ConfigError(f"item {position} is {what(item)}, not an event", argument="run",
                      fix=RUN_FIX)


def what(value: Any) -> str:
    """A value as an error message names it: its type and a short repr."""
    return f"{type(value).__name__} {shown(value)}"


@functools.cache
def notebook_figure() -> type:
    """A matplotlib Figure that shows itself as PNG and prints as its ``printed`` text
    (set it to what the figure shows); made on first use, so that importing a plot module
    loads no matplotlib."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        """PNG in a notebook, text elsewhere."""

        printed: str = ""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=PNG_DPI, facecolor="white")
            return buffer.getvalue()

        def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
            printer.text(self.printed)

        def text(self) -> str:
            """What the figure shows, as text."""
            return self.printed

    return NotebookFigure
