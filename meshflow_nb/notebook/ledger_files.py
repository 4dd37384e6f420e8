"""Ledger files for a lesson: a new, empty ledger on a fresh name, and a copy to tamper with.

    ledger = new_ledger("audit/lesson11.duckdb")        # that name, or lesson11-2.duckdb, ...
    copy = ledger_copy(ledger, "audit/edited.duckdb")   # every run, exported and imported

A lesson that prints ``seq`` numbers needs a ledger that starts empty, and a lesson that
tampers needs a copy per damage, so that one cell's damage is not the next cell's input.
Neither ever overwrites or deletes a file: an earlier session's ledger is kept, and the
next free name is used (``name-2``, ``name-3``, ...). A copy goes through the ledger's own
`export_run` and `import_run`, so it holds the runs exactly as stored (same ``seq``, same
hashes, same records) on whatever database the original is on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, shown
from ..ledger.location import redacted_location
from ..ledger.replay import ReplayLedger

__all__ = ["ledger_copy", "new_ledger"]

MAX_NAMES = 1000
"""How many numbered names (``name-2`` ... ) are tried before giving up."""


def new_ledger(path: str | os.PathLike, **options: object) -> ReplayLedger:
    """A ledger on a new, empty DuckDB file: ``path`` if it is free, else the first free
    ``<stem>-N<suffix>`` beside it (nothing is overwritten); its folder is made if needed.
    ``options`` go to `ReplayLedger` (``durability=``, ``immutable=``)."""
    return ReplayLedger(free_path(path), **options)


def free_path(path: str | os.PathLike) -> str:
    """``path``, or the first ``<stem>-N<suffix>`` beside it that no file has yet."""
    wanted = _ledger_path(path)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_NAMES + 1):
        candidate = wanted if n == 1 else wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
        if not _taken(candidate):
            return str(candidate)
    raise ConfigError(f"{wanted} and {MAX_NAMES - 1} numbered names beside it are taken",
                      argument="path", fix="pass a path in another folder, or clear that one")


def ledger_copy(ledger: ReplayLedger, path: str | os.PathLike,
                runs: Sequence[str] | None = None) -> ReplayLedger:
    """A new ledger at ``path`` (or the next free name) holding the runs of ``ledger``
    exactly as stored, oldest first: all of them, or only ``runs`` (ids it has entries of)."""
    if not isinstance(ledger, ReplayLedger):
        raise ConfigError(f"ledger must be a ReplayLedger, not {shown(ledger)}",
                          argument="ledger", fix="pass the ledger to copy, e.g. "
                                                 "ledger_copy(ledger, 'copies/one.duckdb')")
    chosen = _runs_to_copy(ledger, runs)
    copy = new_ledger(path)
    for run_id in chosen:
        copy.import_run(ledger.export_run(run_id))
    return copy


def _runs_to_copy(ledger: ReplayLedger, runs: Sequence[str] | None) -> list[str]:
    """The run ids to copy, in the order of their first entries (an import keeps seq)."""
    ledger.flush()
    held = [str(r) for r in ledger.sql(
        "SELECT run_id FROM ledger_entries GROUP BY run_id ORDER BY min(seq)")["run_id"]]
    if runs is None:
        return held
    if isinstance(runs, str) or not isinstance(runs, Sequence):
        raise ConfigError(f"runs must be a list of run ids, not {shown(runs)}",
                          argument="runs", fix="pass e.g. runs=[first.run_id, second.run_id], "
                                               "or leave runs out to copy every run")
    unknown = [r for r in runs if r not in held]
    if unknown:
        raise ConfigError(f"runs names {shown(unknown[0])}, which has no entries in "
                          f"{redacted_location(ledger.location)}", argument="runs",
                          fix="pass ids of runs in this ledger (result.run_id)")
    return [r for r in held if r in set(runs)]


def _ledger_path(path: object) -> Path:
    """``path`` as a Path to a file, or a ConfigError naming the argument."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ConfigError(f"path must be the path of a ledger file, not {shown(path)}",
                          argument="path", fix="pass e.g. 'audit/copy.duckdb'")
    text = str(path)
    if "://" in text:
        raise ConfigError(f"path {text!r} is a database URI: new ledgers here are DuckDB "
                          "files", argument="path", fix="pass a file path such as "
                                                        "'audit/copy.duckdb'")
    if os.path.isdir(text):
        raise ConfigError(f"path {text!r} is a folder", argument="path",
                          fix=f"pass a file inside it, e.g. {os.path.join(text, 'copy.duckdb')!r}")
    return Path(text)


def _taken(path: Path) -> bool:
    """A file (or its DuckDB write-ahead log) is already there."""
    return os.path.lexists(path) or os.path.lexists(f"{path}.wal")
