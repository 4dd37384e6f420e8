"""Approvers that decide in this process: a fixed answer, ``MESHFLOW_HITL``, the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .requests import (
    Approver,
    Decision,
    GateRequest,
    content_preview,
    parse_verdict,
    unattended,
)

log = logging.getLogger("meshflow_nb.approvals")

DEFAULT_APPROVAL = ("approved by default: no approver configured (no terminal to ask and "
                    "MESHFLOW_HITL not set); set MESHFLOW_HITL=reject to reject, or "
                    "MESHFLOW_HITL=store to wait for 'meshflow-nb approve'")
"""The reason recorded, and the warning logged, when a gate is approved by default."""


def headless_approver(environ: Mapping[str, str] | None = None) -> Approver:
    """Approver that decides from ``MESHFLOW_HITL`` (unset: approve, with a warning).

    Without the setting every gate is approved by default and says so: a warning on the
    ``meshflow_nb.approvals`` logger and the decision's reason. ``MESHFLOW_REVIEWER``
    names the reviewer recorded with the decision.
    """
    env = os.environ if environ is None else environ
    reviewer = env.get("MESHFLOW_REVIEWER", "headless")
    if "MESHFLOW_HITL" not in env:
        return _default_approver(reviewer)
    setting = env["MESHFLOW_HITL"]
    return fixed_approver(parse_verdict(setting), reviewer,
                          f"MESHFLOW_HITL={setting.strip().lower()}")


def _default_approver(reviewer: str) -> Approver:
    """Approve at every gate, logging a warning each time: nobody was asked."""

    async def decide(request: GateRequest) -> Decision:
        log.warning("meshflow-nb: warning: gate %s of run %s %s", request.node_id,
                    request.run_id, DEFAULT_APPROVAL)
        return Decision(True, reviewer, DEFAULT_APPROVAL, channel="headless",
                        node_id=request.node_id)

    return unattended(decide)


def fixed_approver(approved: bool, reviewer: str, reason: str = "",
                   channel: str = "headless") -> Approver:
    """Approver that gives the same decision at every gate (scripts, tests, CI)."""

    async def decide(request: GateRequest) -> Decision:
        return Decision(approved, reviewer, reason, channel=channel, node_id=request.node_id)

    return unattended(decide)


# --- the terminal prompt ---------------------------------------------------------------

_YES = {"y", "yes"}


def terminal_approver(read: Callable[[str], str] | None = None) -> Approver:
    """Approver that asks on the terminal: ``Approve <node> (<tier>) for run <id>? [y/N]``.

    Then it asks the reviewer's name and a reason. Anything but y/yes rejects; end of
    input rejects with a reason saying so. The blocking ``input()`` runs in a daemon
    thread, so the event loop (and every other branch of the run) keeps going, and a
    gate timeout is never held up by an unanswered prompt. ``read`` replaces ``input``.
    """
    lock = threading.Lock()  # one question at a time, even with parallel gates

    async def decide(request: GateRequest) -> Decision:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Decision] = loop.create_future()
        cancelled = threading.Event()

        def ask() -> None:
            try:
                decision = _ask(request, read or input, lock, cancelled)
            except Exception as exc:  # handed to the waiting coroutine
                _deliver(loop, answer, None, exc)
            else:
                _deliver(loop, answer, decision, None)

        threading.Thread(target=ask, name=f"meshflow-prompt-{request.node_id}",
                         daemon=True).start()
        try:
            return await answer
        except asyncio.CancelledError:
            cancelled.set()
            print(f"\n(no decision in time for {request.node_id}: the gate is rejected; "
                  "press Enter to dismiss the prompt)", flush=True)
            raise

    return decide


def _ask(request: GateRequest, read: Callable[[str], str], lock: threading.Lock,
         cancelled: threading.Event) -> Decision | None:
    """The questions, in the prompt thread; None when the gate stopped waiting."""
    with lock:
        if cancelled.is_set():
            return None
        tier = getattr(request.risk_tier, "name", request.risk_tier)
        print(f"\n{request.prompt}\n{_preview(request.content)}", flush=True)
        default_reviewer = _default_reviewer()
        try:
            answer = read(f"Approve {request.node_id} ({tier}) for run {request.run_id}? "
                          "[y/N] ").strip()
            if cancelled.is_set():
                return None
            reviewer = read(f"Reviewer [{default_reviewer}]: ").strip() or default_reviewer
            reason = read("Reason: ").strip()
        except EOFError:
            return Decision(False, default_reviewer,
                            "end of input on the terminal before a decision: rejected",
                            channel="terminal", node_id=request.node_id)
        approved = answer.lower() in _YES
        if not approved and not reason:
            reason = ("empty answer: rejected (the default is N)" if not answer
                      else f"answered {answer!r}, not y: rejected")
        return Decision(approved, reviewer, reason, channel="terminal", node_id=request.node_id)


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Decision],
             value: Decision | None, error: BaseException | None) -> None:
    """Hand the prompt thread's outcome to the event loop (if it is still there)."""

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # a closed loop: the run ended without it
        loop.call_soon_threadsafe(settle)


def _default_reviewer() -> str:
    try:
        return os.environ.get("MESHFLOW_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):  # no user name on this system
        return "terminal"


def _preview(content: Any, limit: int = 800) -> str:
    text, cut = content_preview(content, limit)
    return text + "… (cut short)" if cut else text
