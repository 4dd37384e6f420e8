"""Ways to run a workflow: blocking, awaited, streamed, or started in the background.

`run_blocking` works both in a plain script and inside a running event loop (Jupyter):
in the second case the run gets its own thread and loop, so the caller never sees
"asyncio.run() cannot be called from a running event loop".
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Any

from ..events import EventType, MeshEvent
from ..model.status import RunStatus
from .results import RunResult
from .run import Run


class RunHandle:
    """A run going on in a background thread: observe it, wait for it, cancel it.

    The notebook widgets subscribe to it; ``handle.result()`` blocks, ``await handle``
    does not block the event loop.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._future: Future[RunResult] = Future()
        self._loop_ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"meshflow-run-{run.run_id}",
                                        daemon=True)

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def status(self) -> RunStatus:
        return self._run.status

    @property
    def events(self) -> list[MeshEvent]:
        return self._run.bus.history

    def subscribe(self, subscriber: Callable[[MeshEvent], None], *, replay: bool = True
                  ) -> Callable[[], None]:
        """Receive every event; with ``replay`` (default) the ones already emitted first."""
        return self._run.bus.subscribe(subscriber, replay=replay)

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end and return its result."""
        return self._future.result(timeout)

    def cancel(self) -> None:
        """Stop the run: no new node starts, running nodes are cancelled."""
        if not self._loop_ready.wait(timeout=5) or self.done():
            return
        with contextlib.suppress(RuntimeError):  # its loop closed after the check: it ended
            self._run_loop.call_soon_threadsafe(self._run.cancel)

    def __await__(self):
        return asyncio.wrap_future(self._future).__await__()

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.status.value}>"

    def start(self) -> RunHandle:
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            self._future.set_result(asyncio.run(self._execute()))
        except BaseException as exc:  # surface it through result(), not a dying thread
            self._future.set_exception(exc)

    async def _execute(self) -> RunResult:
        self._run_loop = asyncio.get_running_loop()
        self._loop_ready.set()
        return await self._run.execute()


def run_blocking(run: Run) -> RunResult:
    """Run to the end from synchronous code, whether or not a loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run.execute())
    return RunHandle(run).start().result()


def stream_blocking(run: Run) -> Iterator[MeshEvent]:
    """Yield events as they happen; leaving the loop early cancels the run."""
    events: queue.Queue[MeshEvent] = queue.Queue()
    run.bus.subscribe(events.put)
    handle = RunHandle(run).start()
    try:
        yield from _until_complete(events.get)
    finally:
        if not handle.done():
            handle.cancel()
        handle.result()


async def stream_async(run: Run) -> AsyncIterator[MeshEvent]:
    """Async version of `stream_blocking`, running in the caller's event loop."""
    events: asyncio.Queue[MeshEvent] = asyncio.Queue()
    run.bus.subscribe(events.put_nowait)
    task = asyncio.ensure_future(run.execute())
    try:
        while True:
            event = await events.get()
            yield event
            if event.type is EventType.RUN_COMPLETE:
                break
    finally:
        if not task.done():
            run.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _until_complete(get: Callable[[], Any]) -> Iterator[MeshEvent]:
    while True:
        event = get()
        yield event
        if event.type is EventType.RUN_COMPLETE:
            return
