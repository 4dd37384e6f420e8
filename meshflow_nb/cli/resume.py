"""Resuming a run that paused at a human gate after its waiting process went away.

The run left its state in the approval store when it paused (see hitl/store.py). Once
a reviewer has decided (``meshflow-nb approve``), `resume_run` rebuilds the workflow
from its recorded builder, restores the run and continues from the gate, appending to
the same ledger chain. Nodes that were running elsewhere in the graph when the process
died are run again. The recorded builder is only called if this process trusts it
(builders.py): a request file is data, never a licence to run code.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..engine.results import RunResult
from ..engine.run import Run
from ..errors import MeshflowError
from ..events import EventBus
from ..hitl.requests import ApprovalError
from ..hitl.store import (
    clear_request,
    find_request,
    recorded_decision,
    waiting_process_alive,
)
from ..ledger.replay import ReplayLedger
from ..policy.config import Policy
from .builders import rebuild


def resume_run(run_id: str, dir: str | os.PathLike | None = None, *,
               trust_builder: str | None = None) -> RunResult:
    """Continue ``run_id`` from the gate it paused at, with the decision on file.

    Its workflow is rebuilt by a registered builder (`register_builder`), or by the one
    it records if ``trust_builder`` names exactly that one; any other is refused.
    """
    record = _paused(run_id, dir)
    decision = recorded_decision(record, dir)
    if decision is None:
        raise ApprovalError(f"run {run_id} has no decision yet: decide first with "
                            f"'meshflow-nb approve {run_id} --reviewer NAME'")
    state = record["state"]
    run = _restored(run_id, state, trust_builder)
    result = asyncio.run(run.resume(state["gate"], state["gate_content"], decision))
    if run.ledger is not None:
        run.ledger.flush()
    clear_request(record, dir)
    return result


def _restored(run_id: str, state: dict[str, Any], trust_builder: str | None) -> Run:
    """The paused run, rebuilt from its saved state by a builder this process trusts."""
    recorded = state.get("builder") if isinstance(state.get("builder"), dict) else {}
    definition = rebuild(recorded.get("function"), recorded.get("kwargs", {}), trust_builder)
    try:
        if state.get("ledger"):
            ReplayLedger(state["ledger"]).attach(definition)
        policy = Policy.from_dict(state["policy"]) if state.get("policy") else None
        return Run.restore(definition, state, bus=EventBus(definition.subscribers),
                           policy=policy, ledger=definition.ledger)
    except MeshflowError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a file, not our code
        raise ApprovalError(f"run {run_id} cannot be resumed: its saved state is incomplete "
                            f"or malformed ({type(err).__name__}: {err}); remove its "
                            "request file") from None


def _paused(run_id: str, dir: str | os.PathLike | None) -> dict[str, Any]:
    """The request of a run that can be resumed here: saved state, no waiting process."""
    record = find_request(run_id, dir)
    if record is None:
        raise ApprovalError(f"no run {run_id} is paused at a gate")
    if not isinstance(record.get("state"), dict) or not record["state"]:
        raise ApprovalError(f"run {run_id} cannot be resumed: its workflow records no "
                            "builder (build it with a function such as "
                            "build_capstone_pipeline to make its runs resumable)")
    if waiting_process_alive(record):
        raise ApprovalError(f"run {run_id} is still waiting in process {record.get('pid')}; "
                            "'meshflow-nb approve' alone lets it go on")
    return record
