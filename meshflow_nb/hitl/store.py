"""Approvals that cross process boundaries: a decision store and a signed webhook notice.

The **decision store** is a directory. A waiting run writes one JSON file per pending
gate (``<run_id>.<node_id>.request.json``); whoever decides (``meshflow-nb approve``, a
webhook receiver, a script calling `submit_decision`) writes the matching
``.decision.json``; the run polls for it, records the decision and removes both files.
Every file is written whole to a temporary name and then renamed, so a reader never
sees half a file.

The webhook (`webhook.py`) only tells someone that a run waits; its decision comes
back through this store as well. docs/approvals.md describes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..events import utc_now
from ..ledger.location import ledger_folder
from .requests import ApprovalError, Decision, GateRequest, content_preview

log = logging.getLogger("meshflow_nb.approvals")
"""One logger for the store and the webhook, so one setting silences both."""

REQUEST_SUFFIX = ".request.json"
DECISION_SUFFIX = ".decision.json"
DECIDE_HINT = "meshflow-nb approve {run_id} --reviewer NAME [--reject --reason TEXT]"

PathLike = str | os.PathLike



# --- where the store lives -------------------------------------------------------------


def approvals_dir(dir: PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Path:
    """The store directory: ``dir``, else ``MESHFLOW_APPROVALS_DIR``, else
    ``.meshflow/approvals/`` beside the ledger file (``MESHFLOW_LEDGER_DB``) or in the
    working directory. Not created until something is written."""
    env = os.environ if environ is None else environ
    chosen = dir or env.get("MESHFLOW_APPROVALS_DIR")
    if chosen:
        return Path(chosen).expanduser().absolute()
    return ledger_folder(environ=env) / ".meshflow" / "approvals"


@dataclass(frozen=True)
class _Files:
    request: Path
    decision: Path


def _files(store: Path, run_id: str, node_id: str) -> _Files:
    """File names for one gate; ids are escaped so that any id gives one safe name."""
    stem = f"{_escape(run_id)}.{_escape(node_id)}"
    return _Files(store / f"{stem}{REQUEST_SUFFIX}", store / f"{stem}{DECISION_SUFFIX}")


def _escape(part: str) -> str:
    return urllib.parse.quote(str(part), safe="").replace(".", "%2E")


# --- reading and writing whole files ---------------------------------------------------


def _write_json(path: Path, data: Mapping[str, Any], *, exclusive: bool = False) -> None:
    """Write to a temporary file, then rename it into place (``exclusive``: only if absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            _publish_once(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _publish_once(temporary: str, path: Path) -> None:
    """Rename into place unless the file exists, so two reviewers cannot both "win"."""
    try:
        os.link(temporary, path)  # atomic and fails if the name is taken
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, None if it does not exist; `ApprovalError` if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ApprovalError(f"{path} is not valid JSON ({err}); remove it") from None
    if not isinstance(data, dict):
        raise ApprovalError(f"{path} does not hold a JSON object; remove it")
    return data


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- requests ---------------------------------------------------------------------------


def request_record(request: GateRequest) -> dict[str, Any]:
    """The JSON written for a pending gate (and the basis of the webhook notice)."""
    preview, truncated = content_preview(request.content)
    return {
        "run_id": request.run_id, "node_id": request.node_id, "prompt": request.prompt,
        "risk_tier": getattr(request.risk_tier, "name", str(request.risk_tier)),
        "protects": list(request.protects), "content_preview": preview,
        "content_truncated": truncated, "requested_at": utc_now(),
        "timeout_s": request.timeout_s, "decide": DECIDE_HINT.format(run_id=request.run_id),
        "pid": os.getpid(), "host": socket.gethostname(), "state": request.checkpoint,
    }


def pending_requests(dir: PathLike | None = None) -> list[dict[str, Any]]:
    """Every gate waiting in the store, oldest first (unreadable files are skipped)."""
    store = approvals_dir(dir)
    if not store.is_dir():
        return []
    found = []
    for path in store.glob(f"*{REQUEST_SUFFIX}"):
        try:
            record = _read_json(path)
        except (ApprovalError, OSError) as err:  # broken, or another user's private file
            log.warning("skipping a pending request: %s", err)
            continue
        if record is not None:
            found.append(record)
    return sorted(found, key=lambda r: (str(r.get("requested_at", "")), str(r.get("run_id"))))


def waiting_process_alive(record: Mapping[str, Any]) -> bool | None:
    """Whether the process that waits for this request still exists (None: cannot tell).

    Only answerable on the same host, and not on Windows (signal 0 means something else).
    """
    pid = record.get("pid")
    if os.name == "nt" or not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot be asked
        return True
    return True


# --- decisions --------------------------------------------------------------------------


def submit_decision(run_id: str, approved: bool, reviewer: str, reason: str = "",
                    node_id: str | None = None, channel: str = "cli",
                    dir: PathLike | None = None) -> Decision:
    """Record a decision for a waiting run; the run picks it up at its next poll.

    Raises `ApprovalError` when nothing waits for ``run_id`` (naming what does), when the
    run waits at several gates and ``node_id`` is not given, or when someone has already
    decided; `ConfigError` for a blank reviewer.
    """
    if not str(reviewer).strip():
        raise ConfigError("a decision needs a reviewer name", argument="reviewer",
                          fix="pass the name of the person who decides")
    store = approvals_dir(dir)
    target = _pending_target(store, run_id, node_id)
    decision = Decision(bool(approved), str(reviewer).strip(), reason, channel=channel,
                        node_id=target)
    record = {"run_id": run_id, "node_id": target, **decision.to_dict()}
    try:
        _write_json(_files(store, run_id, target).decision, record, exclusive=True)
    except FileExistsError:
        raise ApprovalError(f"run {run_id} at {target} has already been decided; the run "
                            "will pick that decision up") from None
    return decision


def _pending_target(store: Path, run_id: str, node_id: str | None) -> str:
    """The node of ``run_id`` that the decision is for."""
    pending = pending_requests(store)
    waiting = [r["node_id"] for r in pending if r.get("run_id") == run_id]
    if not waiting:
        listed = ", ".join(f"{r.get('run_id')} ({r.get('node_id')})" for r in pending)
        raise ApprovalError(f"no run {run_id} is waiting for approval; pending: "
                            f"{listed or 'none'} (in {store})")
    if node_id is not None:
        if node_id not in waiting:
            raise ApprovalError(f"run {run_id} is not waiting at {node_id!r}; it waits at: "
                                f"{', '.join(waiting)}")
        return node_id
    if len(waiting) > 1:
        raise ApprovalError(f"run {run_id} waits at {len(waiting)} gates ({', '.join(waiting)});"
                            " say which with --node (node_id=...)")
    return waiting[0]


def _decision_from(record: Mapping[str, Any], node_id: str, path: Path) -> Decision:
    """A decision file as a `Decision`; `ApprovalError` naming the file if it is malformed."""
    approved, reviewer = record.get("approved"), record.get("reviewer")
    if not isinstance(approved, bool) or not isinstance(reviewer, str) or not reviewer.strip():
        raise ApprovalError(f"{path} needs \"approved\": true/false and a non-empty \"reviewer\"")
    return Decision(approved, reviewer, str(record.get("reason") or ""),
                    channel=str(record.get("channel") or "store"), node_id=node_id,
                    decided_at=str(record.get("decided_at") or utc_now()))


# --- approvers that wait on the store -------------------------------------------------


class StoreApprover:
    """Approver that writes a request file, then waits for a decision file.

    The gate's timeout (applied by the runner) ends the wait; the request is removed
    whatever happens, so `pending_requests` only ever lists gates that still wait.
    """

    def __init__(self, dir: PathLike | None = None, poll_s: float = 0.2, *,
                 environ: Mapping[str, str] | None = None) -> None:
        if not poll_s > 0:
            raise ConfigError(f"poll_s must be a positive number of seconds, got {poll_s!r}",
                              argument="poll_s")
        self.dir = approvals_dir(dir, environ)
        self.poll_s = poll_s

    async def __call__(self, request: GateRequest) -> Decision:
        """Publish the request, announce it, then wait for its decision file."""
        deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
        files = _files(self.dir, request.run_id, request.node_id)
        record = request_record(request)
        _remove(files.decision)  # never reuse an old decision (a gate inside a loop)
        _write_json(files.request, record)
        try:
            self._announce(record, deadline)
            return await self._wait(files.decision, request.node_id)
        finally:
            _remove(files.request, files.decision)

    def _announce(self, record: Mapping[str, Any], deadline: float | None) -> None:
        """Tell someone the gate waits, without blocking the wait for a decision (the
        webhook approver posts in a thread of its own, bounded by ``deadline``, the
        ``time.monotonic()`` at which the gate stops waiting; None: no timeout)."""

    async def _wait(self, path: Path, node_id: str) -> Decision:
        while True:
            record = _read_json(path)
            if record is not None:
                return _decision_from(record, node_id, path)
            await asyncio.sleep(self.poll_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.dir)!r})"


# --- for resuming a paused run in another process (resume.py) --------------------------


def find_request(run_id: str, dir: PathLike | None = None) -> dict[str, Any] | None:
    """The pending request of ``run_id`` (with its saved state), or None."""
    return next((r for r in pending_requests(dir) if r.get("run_id") == run_id), None)


def recorded_decision(record: Mapping[str, Any], dir: PathLike | None = None) -> Decision | None:
    """The decision submitted for a pending request, if any."""
    path = _files(approvals_dir(dir), record["run_id"], record["node_id"]).decision
    data = _read_json(path)
    return None if data is None else _decision_from(data, record["node_id"], path)


def clear_request(record: Mapping[str, Any], dir: PathLike | None = None) -> None:
    """Forget a request and its decision once the run has gone on."""
    files = _files(approvals_dir(dir), record["run_id"], record["node_id"])
    _remove(files.request, files.decision)
