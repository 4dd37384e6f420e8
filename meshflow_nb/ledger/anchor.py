"""Anchors: a run's length and head hash, kept outside the ledger table.

A rewrite that recomputes every hash leaves a self-consistent chain; only a copy of the
head hash stored elsewhere (a file, object storage, an append-only log) reveals it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..events import utc_now


@dataclass(frozen=True)
class Anchor:
    """Run id, number of entries and the hash of the last one, at one moment."""

    run_id: str
    length: int
    head_hash: str
    complete: bool = True
    taken_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write this anchor to a JSON file (a list, so several anchors can share one)."""
        save_anchors([self], path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> list[Anchor]:
        """Every anchor in a file written by `save` or `save_anchors`."""
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        items = data if isinstance(data, list) else [data]
        return [cls(**item) for item in items]


def save_anchors(anchors: Iterable[Anchor], path: str | os.PathLike) -> None:
    """Write several anchors to one JSON file, to keep outside the ledger's database."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([a.to_dict() for a in anchors], handle, indent=2)
        handle.write("\n")


def new_anchor(run_id: str, length: int, head_hash: str, complete: bool) -> Anchor:
    return Anchor(run_id, length, head_hash, complete, utc_now())
