"""The ledger's event subscriber: a write-behind writer with two durability modes.

``step`` (default): events queue up and a writer thread commits them in batches while
the run goes on; the run waits for its events to be committed when a human gate pauses
and when the run ends. A crash loses at most the events of the step in progress.
``event``: every event is committed before the run goes on (slower, loses nothing).

Commits are grouped: a thread that waits for its events (at a gate, at the end of a
run, in ``flush``, or after every event in ``event`` mode) commits everything queued
itself when no commit is under way, which saves two thread switches; otherwise the writer
thread lets a batch gather for at most ``LINGER_S`` after its first event. A fast run
thus costs two commits, not one every few events.

One writer thread per store serialises "read head -> insert", so concurrent runs get a
gapless ledger sequence and valid chains. A batch that fails to write stays queued and
is retried: a failed write loses no entry.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from enum import StrEnum

from ..events import EventType, MeshEvent
from .errors import LedgerWriteError
from .rows import Row, event_row
from .stores import Store

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)
LINGER_S = 0.005
"""How long a queued event may wait for others to share its commit, when nobody waits."""
MAX_BATCH = 1000
"""A batch this large is committed without lingering."""


class Durability(StrEnum):
    """When an event is committed relative to the run that emitted it."""

    STEP = "step"
    EVENT = "event"



BARRIERS = frozenset({EventType.GATE_PAUSE, EventType.RUN_COMPLETE})
"""Events after which a run waits until the ledger has committed everything it sent."""


class LedgerWriter:
    """Subscriber that persists events; call it with each event (``wf.subscribe``)."""

    def __init__(self, store: Store, durability: Durability = Durability.STEP) -> None:
        self.store = store
        self.durability = Durability(durability)
        self._pending: list[tuple[int, Row, float]] = []  # ticket, row, when queued
        self._queued = 0
        self._committed = 0
        self._wanted = 0  # the highest ticket someone waits for
        self._busy = False  # a batch is being written (by the writer thread or a waiter)
        self._error: Exception | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._active_runs: set[str] = set()
        self._lease = None
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="meshflow-ledger", daemon=True)
        self._thread.start()
        _open_writers.add(self)

    def __call__(self, event: MeshEvent) -> None:
        waits = self.durability is Durability.EVENT or event.type in BARRIERS
        ticket = self._enqueue(event, wake_writer=not waits)
        if waits:
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
        """Block until event ``ticket`` is committed, through retries, up to ``timeout``.

        When no batch is being written and no failed write awaits its retry, the caller
        writes the queued batch itself; failures are left to the writer thread's retries.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                self._wanted = max(self._wanted, ticket)
                if self._committed >= ticket:
                    return
                batch = self._claim() if self._error is None else None
                if batch is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise self._late(timeout)
                    self._cond.notify_all()  # the writer commits now instead of lingering
                    self._cond.wait(left)
                    continue
            self._write(batch)

    def _late(self, timeout: float | None) -> LedgerWriteError:
        cause = f" ({self._error})" if self._error is not None else ""
        error = LedgerWriteError(
            f"{self.store.where} has not committed within {timeout} s"
            f"{cause}; the events are kept and retried")
        error.__cause__ = self._error
        return error

    def _enqueue(self, event: MeshEvent, wake_writer: bool = True) -> int:
        """Queue the event's row; ``wake_writer=False`` when the caller commits it now."""
        row = event_row(event)
        with self._cond:
            self._track(event)
            self._queued += 1
            self._pending.append((self._queued, row, time.monotonic()))
            if wake_writer and (len(self._pending) == 1 or len(self._pending) >= MAX_BATCH):
                self._cond.notify_all()  # start the linger clock, or commit a full batch
            return self._queued

    def _track(self, event: MeshEvent) -> None:
        """Hold the store open while any run is going on (DuckDB closes when idle)."""
        if event.type is EventType.RUN_START:
            if not self._active_runs:
                self._lease = self.store.lease()
                self._lease.__enter__()
            self._active_runs.add(event.run_id)

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._write(batch)

    def _next_batch(self) -> list[tuple[int, Row, float]] | None:
        """Claim everything queued once it is due (None when closing with nothing left)."""
        with self._cond:
            while True:
                if self._pending and not self._busy:
                    left = max(self._linger_left(), self._retry_at - time.monotonic())
                    if left <= 0:
                        return self._claim()
                    self._cond.wait(left)
                elif self._closing and not self._pending:
                    return None
                else:
                    self._cond.wait()

    def _linger_left(self) -> float:
        """Seconds the pending batch may still gather; 0 when it must be committed now."""
        if (self._wanted > self._committed or self._closing
                or self.durability is Durability.EVENT or len(self._pending) >= MAX_BATCH):
            return 0.0
        return self._pending[0][2] + LINGER_S - time.monotonic()

    def _claim(self) -> list[tuple[int, Row, float]] | None:
        """Everything queued, marked as being written (call holding ``_cond``)."""
        if self._busy or not self._pending:
            return None
        self._busy = True
        return list(self._pending)

    def _write(self, batch: list[tuple[int, Row, float]]) -> None:
        """Append a claimed batch; on failure keep it queued for a retry with backoff."""
        try:
            self.store.append([row for _, row, _ in batch])
        except Exception as err:
            log.warning("ledger write failed (attempt %d): %s", self._failures + 1, err)
            with self._cond:
                delay = RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
                self._busy, self._error = False, err
                self._failures += 1
                self._retry_at = time.monotonic() + delay
                self._cond.notify_all()
            return
        except BaseException:  # interrupted: the batch stays queued for the writer thread
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            raise
        self._committed_batch(batch)

    def _committed_batch(self, batch: list[tuple[int, Row, float]]) -> None:
        with self._cond:
            del self._pending[: len(batch)]
            self._committed = batch[-1][0]
            self._busy, self._error, self._failures = False, None, 0
            for _, row, _ in batch:
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
