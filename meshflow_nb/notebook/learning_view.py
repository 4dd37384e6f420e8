"""Cross-run learning in a notebook: the store beside a ledger, a run's revisions, whether
a run learned, and revisions over several runs as a plot.

The store itself is `meshflow_nb.policy.learning.LearningStore` (docs/cross-run-learning.md);
`learning_store(ledger)` gives the one a ledger's runs write to, so a lesson reaches it
through the notebook layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..events import EventType
from ..policy.learning import LearningStore, learning_location
from .run_events import events_of, notebook_figure, what

__all__ = ["learned", "learning_store", "plot_revisions", "revisions"]

FIGURE_WIDTH_IN = 7.5
LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
SERIES_EXAMPLE = "{'learning on': [run1, run2], 'learning off': [run3, run4]}"


def learning_store(ledger: Any) -> LearningStore:
    """The learning store a ledger's runs write to: beside its file (a `ReplayLedger`, or
    its location as text or a path)."""
    location = getattr(ledger, "location", ledger)
    if not isinstance(location, (str, os.PathLike)):
        raise ConfigError(f"the learning store belongs to a ledger, not {what(ledger)}",
                          argument="ledger", fix="pass a ReplayLedger, or its location")
    return LearningStore(learning_location(location))


def revisions(run: Any, node: str = "writer") -> int:
    """How often a loop sent ``node`` back for revision in one run (its loop_iteration
    events whose edge ends at ``node``)."""
    return sum(1 for e in events_of(run, "a revision count")
               if e.type is EventType.LOOP_ITERATION
               and str(e.payload.get("edge", "")).rsplit(" -> ", 1)[-1].strip() == node)


def learned(run: Any) -> bool | None:
    """Whether the run had cross-run learning on, from the policy its run_start recorded
    (None: the run recorded no policy)."""
    start = next((e for e in events_of(run, "learning") if e.type is EventType.RUN_START), None)
    policy = start.payload.get("policy") if start is not None else None
    if not isinstance(policy, Mapping) or "enable_cross_run_learning" not in policy:
        return None
    return bool(policy["enable_cross_run_learning"])


def plot_revisions(series: Mapping[str, Sequence[Any]], *, node: str = "writer",
                   resets: Sequence[int] = (), title: str | None = None) -> Any:
    """Revisions of ``node`` per run, one line per series ({label: [run, run, ...]}, in the
    order the runs were made); ``resets`` marks the runs before which the store was emptied."""
    counts = _counted(series, node)
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 3.4), layout="constrained")
    figure.printed = "\n".join(
        [f"{label:<14} {' '.join(str(c) for c in values)}" for label, values in counts.items()]
        + [f"store emptied before run {n}" for n in resets])
    ax = figure.subplots()
    longest = max(len(values) for values in counts.values())
    top = max(max(values) for values in counts.values())
    for n, (label, values) in enumerate(counts.items()):
        ax.plot(range(1, len(values) + 1), values, marker="o", label=label,
                color=LINE_COLORS[n % len(LINE_COLORS)], linewidth=2 - 0.4 * n)
    for n in resets:
        ax.axvline(n - 0.5, color="#888888", linestyle="--", linewidth=1)
        ax.text(n - 0.45, top + 0.35, "store reset", fontsize=9, color="#555555")
    ax.set_xticks(range(1, longest + 1))
    ax.set_yticks(range(0, top + 2))
    ax.set_ylim(-0.3, top + 0.8)
    ax.set_xlabel("run, in the order they were made")
    ax.set_ylabel(f"revisions of {node}")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, loc="upper right")
    ax.set_title(title or f"Revisions of {node} per run", loc="left", fontsize=11)
    return figure


def _counted(series: Any, node: str) -> dict[str, list[int]]:
    """{label: revisions per run}; a ConfigError says what to pass instead."""
    if not isinstance(series, Mapping) or not series:
        raise ConfigError(f"plot_revisions draws series of runs, not {what(series)}",
                          argument="series", fix=f"pass {SERIES_EXAMPLE}")
    counts = {}
    for label, runs in series.items():
        if not isinstance(label, str):
            raise ConfigError(f"the labels of the series should be text, not {what(label)}",
                              argument="series", fix=f"pass {SERIES_EXAMPLE}")
        if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Sequence) or not runs:
            raise ConfigError(f"the series {label!r} should be a list of runs, not {what(runs)}",
                              argument="series", fix=f"pass {SERIES_EXAMPLE}")
        counts[label] = [revisions(run, node) for run in runs]
    return counts
