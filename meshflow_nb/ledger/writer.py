"""The ledger's event subscriber: a write-behind writer with two durability modes.

``step`` (default): events queue up and a writer thread commits them in batches while
the run goes on; the run waits for its events to be committed when a human gate pauses
and when the run ends. A crash loses at most the events of the step in progress.
``event``: every event is committed before the run goes on (slower, loses nothing).

One writer thread per store serialises "read head -> insert", so concurrent runs get a
gapless ledger sequence and valid chains. A batch that fails to write stays queued and
is retried: a failed write loses no entry.
"""

from __future__ import annotations

import logging
import threading
import weakref
from enum import Enum

from ..events import EventType, MeshEvent
from .hashing import Row, event_row
from .stores import LedgerWriteError, Store

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)


class Durability(str, Enum):
    """When an event is committed relative to the run that emitted it."""

    STEP = "step"
    EVENT = "event"

    def __str__(self) -> str:
        return self.value


BARRIERS = frozenset({EventType.GATE_PAUSE, EventType.RUN_COMPLETE})
"""Events after which a run waits until the ledger has committed everything it sent."""


class LedgerWriter:
    """Subscriber that persists events; call it with each event (``wf.subscribe``)."""

    def __init__(self, store: Store, durability: Durability = Durability.STEP) -> None:
        self.store = store
        self.durability = Durability(durability)
        self._pending: list[tuple[int, Row]] = []
        self._queued = 0
        self._committed = 0
        self._error: Exception | None = None
        self._active_runs: set[str] = set()
        self._lease = None
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="meshflow-ledger", daemon=True)
        self._thread.start()
        _open_writers.add(self)

    def __call__(self, event: MeshEvent) -> None:
        ticket = self._enqueue(event)
        if self.durability is Durability.EVENT or event.type in BARRIERS:
            self.wait(ticket)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until everything queued so far is committed (raises if writes fail)."""
        with self._cond:
            ticket = self._queued
        self.wait(ticket, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def wait(self, ticket: int, timeout: float | None = 30.0) -> None:
        """Block until event ``ticket`` is committed, through retries, up to ``timeout``."""
        with self._cond:
            if self._cond.wait_for(lambda: self._committed >= ticket, timeout):
                return
            cause = f" ({self._error})" if self._error is not None else ""
            raise LedgerWriteError(
                f"the ledger at {self.store.location} has not committed within {timeout} s"
                f"{cause}; the events are kept and retried") from self._error

    def _enqueue(self, event: MeshEvent) -> int:
        with self._cond:
            self._track(event)
            self._queued += 1
            self._pending.append((self._queued, event_row(event)))
            self._cond.notify_all()
            return self._queued

    def _track(self, event: MeshEvent) -> None:
        """Hold the store open while any run is going on (DuckDB closes when idle)."""
        if event.type is EventType.RUN_START:
            if not self._active_runs:
                self._lease = self.store.lease()
                self._lease.__enter__()
            self._active_runs.add(event.run_id)

    def _loop(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closing)
                if not self._pending:
                    return
                batch = list(self._pending)
            try:
                self.store.append([row for _, row in batch])
            except Exception as err:  # keep the batch, report, retry with backoff
                log.warning("ledger write failed (attempt %d): %s", attempt + 1, err)
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                    self._cond.wait(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
                attempt += 1
                continue
            attempt = 0
            self._committed_batch(batch)

    def _committed_batch(self, batch: list[tuple[int, Row]]) -> None:
        with self._cond:
            del self._pending[: len(batch)]
            self._committed = batch[-1][0]
            self._error = None
            for _, row in batch:
                if row["event_type"] == EventType.RUN_COMPLETE.value:
                    self._active_runs.discard(row["run_id"])
            if not self._active_runs and not self._pending and self._lease is not None:
                lease, self._lease = self._lease, None
                lease.__exit__(None, None, None)
            self._cond.notify_all()


_open_writers: weakref.WeakSet[LedgerWriter] = weakref.WeakSet()


def close_all_writers() -> None:
    """Commit every queued event and stop the writer threads (used at exit)."""
    for writer in list(_open_writers):
        writer.close()
