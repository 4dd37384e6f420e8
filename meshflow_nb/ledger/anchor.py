"""Anchors: a run's (or the whole ledger's) length and head, kept outside the database.

A rewrite that recomputes every hash leaves a self-consistent chain; only a copy of the
head stored elsewhere (a file, object storage, an append-only log) reveals it. A run
anchor holds one run's length and last hash. A ledger anchor (``run_id`` None) holds the
head of the whole ledger: its last ``seq``, how many entries and runs lie up to it, and
the ledger digest (`canonical.ledger_digest`) over every entry's hash up to it, so that
it also sees runs removed from the start and runs forged after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..events import utc_now


@dataclass(frozen=True)
class Anchor:
    """Run id, number of entries and the hash of the last one, at one moment.

    For the whole ledger (``run_id`` None): ``length`` is the number of entries up to
    ``last_seq``, ``runs`` the number of runs among them, and ``head_hash`` the ledger
    digest over them.
    """

    run_id: str | None
    length: int
    head_hash: str
    complete: bool = True
    taken_at: str = ""
    last_seq: int | None = None
    runs: int | None = None

    @property
    def covers_ledger(self) -> bool:
        """Whether this anchors the whole ledger rather than one run."""
        return self.run_id is None

    def to_dict(self) -> dict:
        """The anchor as saved: a run anchor leaves out the ledger anchor's fields."""
        data = asdict(self)
        if not self.covers_ledger:
            del data["last_seq"], data["runs"]
        return data

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
    """A run's anchor, taken now."""
    return Anchor(run_id, length, head_hash, complete, utc_now())


def new_ledger_anchor(last_seq: int, entries: int, runs: int, digest: str) -> Anchor:
    """The whole ledger's anchor, taken now."""
    return Anchor(None, entries, digest, True, utc_now(), last_seq, runs)
