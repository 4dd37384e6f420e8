"""The ledger's event subscriber: a write-behind writer with two durability modes.

``step`` (default): events queue up and a writer thread commits them in batches while
the run goes on; the run waits for its events to be committed when it ends (and, through
``flush``, before a person is asked at a gate and, under audit, before a node that acts
on the world: the engine decides those). A crash loses at most the events of the step
in progress.
``event``: every event is committed before the run goes on (slower, loses nothing).

Commits are grouped: a thread that waits for its events (at a gate, at the end of a
run, in ``flush``, or after every event in ``event`` mode) commits everything queued
itself when no commit is under way, which saves two thread switches; otherwise the writer
thread lets a batch gather for at most ``LINGER_S`` after its first event. A fast run
thus costs two commits, not one every few events.

One writer thread per store serialises "read head -> insert", so concurrent runs get a
gapless ledger sequence and valid chains.

Nothing here can stall the process. An event holding a value no column can store is
refused when it is recorded (`rows.event_row`), before it is queued. A batch the store
refuses is tried again after each pause of ``RETRY_DELAYS_S``, run by run after its
first failure (one run's trouble does not sink the others), and then given up: the runs
whose entries it held have lost them, their waiters and `flush` raise `LedgerWriteError`
with the reason, and their later entries are refused with `LedgerGapError`, so that what
is stored of each run stays a whole chain. A run whose entry was refused is treated the
same way. Every wait is bounded: a busy DuckDB file by the store's own wait, a failing
store by the retries (about two seconds, or one attempt while nothing has committed
since the last batch was given up).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from enum import StrEnum

from ..events import EventType, MeshEvent, plural
from .errors import LedgerBusyError, LedgerGapError, LedgerValueError, LedgerWriteError
from .rows import Row, event_row
from .stores import Store

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0)
"""Pauses before each further attempt at a batch that failed; after the last it is given up."""
LINGER_S = 0.005
"""How long a queued event may wait for others to share its commit, when nobody waits."""
MAX_BATCH = 1000
"""A batch this large is committed without lingering."""
RUNS_KEPT = 10_000
"""Runs whose next position, or whose loss, the writer remembers (the oldest go first)."""

Pending = tuple[int, Row, float]
"""A queued entry: its ticket, its row, and when it was queued."""


class Durability(StrEnum):
    """When an event is committed relative to the run that emitted it."""

    STEP = "step"
    EVENT = "event"


_END = EventType.RUN_COMPLETE.value


@dataclass(frozen=True)
class Loss:
    """Why a run's chain stopped: its entries from ``first`` on are not in the ledger."""

    run_id: str
    first: int
    reason: str
    cause: BaseException | None = None

    def write_error(self, others: int = 0) -> LedgerWriteError:
        """What a waiter or `flush` raises (``others``: more runs that lost entries)."""
        also = (f"; {plural(others, 'other run')} lost entries too (flush(run_id=...) "
                "says which)") if others else ""
        error = LedgerWriteError(f"run {self.run_id} lost its entries from #{self.first} "
                                 f"on: {self.reason}{also}", first_lost=self.first)
        error.__cause__ = self.cause
        return error

    def gap_error(self, seq: int) -> LedgerGapError:
        """What recording a later entry of the run raises."""
        error = LedgerGapError(
            f"not recording entry #{seq} of run {self.run_id}: the run lost its entries "
            f"from #{self.first} on ({self.reason}), and a later entry would leave a hole "
            "in its chain")
        error.__cause__ = self.cause
        return error


class LedgerWriter:
    """Subscriber that persists events; call it with each event (``wf.subscribe``)."""

    def __init__(self, store: Store, durability: Durability = Durability.STEP) -> None:
        self.store = store
        self.durability = Durability(durability)
        self._pending: list[Pending] = []
        self._queued = 0
        self._wanted = 0  # the highest ticket someone waits for
        self._busy = False  # a batch is being written (by the writer thread or a waiter)
        self._failing = False  # a batch was given up, and nothing has committed since
        self._next_seq: dict[str, int] = {}  # run -> the run_seq its next entry must have
        self._lost: dict[str, Loss] = {}
        self._unreported: list[Loss] = []  # failed writes nobody has been told of yet
        self._closing = False
        self._warmed_for = 0  # the first ticket of the batch the store was readied for
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="meshflow-ledger", daemon=True)
        self._thread.start()
        _open_writers.add(self)

    def __call__(self, event: MeshEvent) -> None:
        """Queue the event, or raise why it cannot be; wait for its commit where due."""
        try:
            row = event_row(event)
        except LedgerValueError as err:
            self._refused(event, err)
            raise
        # a run's end waits (identity: no enum hash)
        waits = event.type is EventType.RUN_COMPLETE or self.durability is Durability.EVENT
        ticket = self._enqueue(row, wake_writer=not waits)
        if waits:
            self.wait(ticket, run_id=row["run_id"])

    def flush(self, timeout: float | None = 30.0, run_id: str | None = None) -> None:
        """Wait until everything queued so far is committed or given up.

        Raises `LedgerWriteError` when ``run_id`` has lost entries (every time); without
        a run, when entries were given up that nobody has been told of yet (once).
        """
        with self._cond:
            ticket = self._queued
        self._wait_for(ticket, timeout)
        with self._cond:
            error = self._loss_error(run_id) if run_id else self._unreported_error()
        if error is not None:
            raise error

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (or give it up), then stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def wait(self, ticket: int, timeout: float | None = 30.0, run_id: str | None = None
             ) -> None:
        """Block until event ``ticket`` is committed; raise if ``run_id`` lost entries."""
        self._wait_for(ticket, timeout)
        if run_id is not None:
            with self._cond:
                error = self._loss_error(run_id)
            if error is not None:
                raise error

    def _wait_for(self, ticket: int, timeout: float | None) -> None:
        """Block until everything up to ``ticket`` is committed or given up.

        When no batch is being written, the caller writes the queued batch itself.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                self._wanted = max(self._wanted, ticket)
                if self._done_through() >= ticket:
                    return
                batch = self._claim()
                if batch is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise self._late(timeout)
                    self._cond.notify_all()  # the writer commits now instead of lingering
                    self._cond.wait(left)
                    continue
            self._write(batch)

    def _done_through(self) -> int:
        """The highest ticket up to which every entry is committed or given up."""
        return self._pending[0][0] - 1 if self._pending else self._queued

    def _late(self, timeout: float | None) -> LedgerWriteError:
        return LedgerWriteError(
            f"{self.store.where} has not committed within {timeout} s: a write is still "
            "under way (the database does not answer); the entries stay queued")

    # --- taking entries in ----------------------------------------------------------

    def _enqueue(self, row: Row, wake_writer: bool = True) -> int:
        """Queue the row; ``wake_writer=False`` when the caller commits it now."""
        with self._cond:
            self._admit(row)
            self._queued += 1
            self._pending.append((self._queued, row, time.monotonic()))
            if wake_writer and (len(self._pending) == 1 or len(self._pending) >= MAX_BATCH):
                self._cond.notify_all()  # start the linger clock, or commit a full batch
            return self._queued

    def _admit(self, row: Row) -> None:
        """Refuse an entry of a run that lost one before it, or that does not follow the
        run's previous entry (recorded twice, or out of order); else note its position."""
        run, seq = row["run_id"], row["run_seq"]
        if self._lost and run in self._lost:
            self._told(run)
            raise self._lost[run].gap_error(seq)
        expected = self._next_seq.get(run)
        if expected is not None and seq != expected:
            twice = "it would be stored twice" if seq < expected else "it is out of order"
            raise LedgerValueError(f"cannot record entry #{seq} of run {run}: the run's next "
                                   f"entry is #{expected}, so {twice}; nothing was queued for it")
        if row["event_type"] == _END:
            self._next_seq.pop(run, None)
        else:
            self._next_seq[run] = seq + 1
            if expected is None and len(self._next_seq) > RUNS_KEPT:
                del self._next_seq[next(iter(self._next_seq))]  # the oldest run goes

    def _refused(self, event: MeshEvent, err: LedgerValueError) -> None:
        """The run of a refused event has a hole from it on: refuse its later entries."""
        run = event.run_id
        if isinstance(run, str) and isinstance(event.seq, int):
            with self._cond:
                if run not in self._lost:
                    _remember(self._lost, run, Loss(run, event.seq, f"#{event.seq} was "
                                                    f"refused: {err}", err))
                self._next_seq.pop(run, None)

    # --- writing ------------------------------------------------------------------

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                self._write(batch)
            else:
                self.store.warm()

    def _next_batch(self) -> list[Pending] | None:
        """Claim everything queued once it is due (None when closing with nothing left;
        an empty batch first, for each new batch: open the store while it gathers)."""
        with self._cond:
            while True:
                if self._pending and not self._busy:
                    left = self._linger_left()
                    if left <= 0:
                        return self._claim()
                    if self._warmed_for != self._pending[0][0]:
                        self._warmed_for = self._pending[0][0]
                        return []
                    self._cond.wait(left)
                elif self._closing and not self._pending:
                    return None
                else:
                    self._cond.wait()

    def _linger_left(self) -> float:
        """Seconds the pending batch may still gather; 0 when it must be committed now."""
        if (self._wanted > self._done_through() or self._closing
                or self.durability is Durability.EVENT or len(self._pending) >= MAX_BATCH):
            return 0.0
        return self._pending[0][2] + LINGER_S - time.monotonic()

    def _claim(self) -> list[Pending] | None:
        """Everything queued, marked as being written (call holding ``_cond``)."""
        if self._busy or not self._pending:
            return None
        self._busy = True
        return list(self._pending)

    def _write(self, batch: list[Pending]) -> None:
        """Commit a claimed batch; after a failure retry it run by run with backoff, and
        give up on what still fails after the last retry."""
        committed: list[Pending] = []
        failing, error, attempts, began = [batch], None, 0, time.monotonic()
        try:
            for pause in (*RETRY_DELAYS_S, None):
                failing, error = self._attempt(failing, committed)
                attempts += 1
                if not failing or pause is None or self._hopeless(error, committed):
                    break
                log.warning("ledger write failed (attempt %d), trying again in %g s: %s",
                            attempts, pause, error)
                failing = by_run(batch) if attempts == 1 else failing
                time.sleep(pause)
        except BaseException:  # interrupted: what is not committed stays queued
            self._settle(batch, committed)
            raise
        if not failing:
            self._settle(batch, committed)
            return
        reason = f"{error} (given up after {plural(attempts, 'attempt')} in " \
                 f"{time.monotonic() - began:.1f} s)"
        self._settle(batch, committed, [p for part in failing for p in part], reason, error)

    def _attempt(self, parts: list[list[Pending]], committed: list[Pending]
                 ) -> tuple[list[list[Pending]], Exception | None]:
        """Append each part in a transaction of its own; the parts that failed, and why."""
        failed, error = [], None
        for part in parts:
            try:
                self.store.append([row for _, row, _ in part])
            except Exception as err:
                failed.append(part)
                error = err
            else:
                committed.extend(part)
        return failed, error

    def _hopeless(self, error: Exception | None, committed: list[Pending]) -> bool:
        """Whether retrying is pointless: the store already waited for a busy file, or it
        was failing before this batch and nothing of the batch has committed."""
        return isinstance(error, LedgerBusyError) or (self._failing and not committed)

    def _settle(self, batch: list[Pending], committed: list[Pending],
                failed: list[Pending] = (), reason: str = "", error: Exception | None = None
                ) -> None:
        """Take committed and given-up entries off the queue, and mark the runs that lost
        entries (their queued later entries go too: they could only leave a hole)."""
        with self._cond:
            if len(committed) == len(batch):  # the usual case: the batch heads the queue
                del self._pending[:len(batch)]
                self._failing = False
            else:
                done = {ticket for ticket, _, _ in committed}
                if failed:
                    done |= self._give_up(failed, reason, error)
                    self._failing = not committed  # else the store works: one run's trouble
                self._pending = [p for p in self._pending if p[0] not in done]
            self._busy = False
            self._cond.notify_all()

    def _give_up(self, entries: list[Pending], reason: str, error: Exception | None
                 ) -> set[int]:
        """Mark the runs of ``entries`` as lost; the tickets to drop from the queue."""
        log.error("ledger entries given up: %s", reason)
        for _, row, _ in entries:
            run = row["run_id"]
            if run not in self._lost:
                loss = Loss(run, row["run_seq"], reason, error)
                _remember(self._lost, run, loss)
                self._unreported = [*self._unreported[-RUNS_KEPT:], loss]
                self._next_seq.pop(run, None)
        return {ticket for ticket, row, _ in self._pending if row["run_id"] in self._lost}

    # --- what waiters learn ---------------------------------------------------------

    def _loss_error(self, run_id: str) -> LedgerWriteError | None:
        """Why ``run_id`` has a hole (a refusal or a failed write), if it has one."""
        loss = self._lost.get(run_id)
        if loss is None:
            return None
        self._told(run_id)
        return loss.write_error()

    def _unreported_error(self) -> LedgerWriteError | None:
        """The failed writes nobody has been told of, now told (None if there are none)."""
        losses, self._unreported = self._unreported, []
        return losses[-1].write_error(len(losses) - 1) if losses else None

    def _told(self, run_id: str) -> None:
        """The run has heard of its loss: a flush of the whole ledger need not repeat it."""
        if self._unreported:
            self._unreported = [loss for loss in self._unreported if loss.run_id != run_id]


def by_run(batch: list[Pending]) -> list[list[Pending]]:
    """The batch split into one part per run, each in its order (runs as they came)."""
    parts: dict[str, list[Pending]] = {}
    for entry in batch:
        parts.setdefault(entry[1]["run_id"], []).append(entry)
    return list(parts.values())


def _remember(memory: dict, key: str, value: object) -> None:
    """Set ``memory[key]``, forgetting the oldest key beyond `RUNS_KEPT`."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > RUNS_KEPT:
        del memory[next(iter(memory))]


_open_writers: weakref.WeakSet[LedgerWriter] = weakref.WeakSet()


def close_all_writers() -> None:
    """Commit every queued event and stop the writer threads (used at exit)."""
    for writer in list(_open_writers):
        writer.close()
