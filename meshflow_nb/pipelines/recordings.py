"""Recorded runs of the ready-made pipelines, and what a replay needs to match them.

`CAPSTONE_CASSETTE` is one run of the capstone recorded against the local Messages API
server (``meshflow-nb serve-fake``, not a real model), approved at its gate; a rejected
run replays from a subset of its exchanges. It was recorded under `recorded_policy()`
with the live default model, and replays with ``MESHFLOW_REPLAY`` set to its path: no
key, no network. To record it again (docs/live-mode.md)::

    meshflow-nb serve-fake --port 8765          # another terminal; Ctrl-C stops it
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 python3 hands_on/15_real_models.py \\
        --record meshflow_nb/pipelines/cassettes/capstone_local.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..agents.client import live_target
from ..agents.errors import REPLAY_VAR, MissingKeyError
from ..agents.mock import mock_enabled
from ..policy.circuit import CircuitBreakerConfig
from ..policy.config import Policy

if TYPE_CHECKING:
    import pandas as pd

    from ..ledger.replay import ReplayLedger

CAPSTONE_CASSETTE = str(Path(__file__).resolve().with_name("cassettes") / "capstone_local.json")
"""The path of the shipped recording of the capstone, found from the package itself.

Lesson 15 and hands_on/15_real_models.py replay it, whatever the current directory is."""

ROW_COLUMNS = ("node_id", "iteration", "output", "tokens_in", "tokens_out", "cost_usd")
"""What a replayed run must reproduce of each node execution, as its ledger records it."""


def recorded_policy() -> Policy:
    """The policy the shipped cassette was recorded under (a new object each call).

    STANDARD, a $1 budget, a circuit breaker with short pauses, and no cross-run learning:
    earlier runs' lessons would enter the prompts, and a replay would miss. Each workflow
    built with a new object has circuit breakers of its own."""
    return Policy("standard", budget_usd=1.0,
                  circuit_breaker=CircuitBreakerConfig(max_retries=2, backoff_base_s=0.05,
                                                       max_retry_after_s=2.0))


def where_calls_go(environ: Mapping[str, str] | None = None) -> str:
    """Where a live agent's calls would go now, in words ("the replay of x.json").

    In the order the agents decide: MESHFLOW_MOCK=1, then a replay, then a local server
    or the API. A replay is named by its file alone, so that the words do not depend on
    where the course lives."""
    env = os.environ if environ is None else environ
    if mock_enabled(env):
        return "nowhere: the mock agents answer (MESHFLOW_MOCK=1 wins)"
    try:
        target = live_target(env)
    except MissingKeyError:
        return "nowhere: no ANTHROPIC_API_KEY, local server or recording is set"
    replay = env.get(REPLAY_VAR, "").strip()
    if replay:
        return f"the replay of {Path(replay).name}"
    return target if target.startswith("the ") else f"the {target}"


def replay_rows(ledger: ReplayLedger, run_id: str) -> pd.DataFrame:
    """What a replay of ``run_id`` must reproduce: one row per node execution in ``ledger``.

    The columns are `ROW_COLUMNS`, the rows in node order then iteration, whichever of
    two parallel nodes happened to finish first."""
    ledger.flush()
    frame = ledger.to_dataframe(run_id)
    done = frame[frame["event_type"] == "node_complete"].copy()
    done["iteration"] = [json.loads(p or "{}").get("iteration", 1) for p in done["payload"]]
    return (done.sort_values(["node_id", "iteration"], kind="stable")
            .loc[:, list(ROW_COLUMNS)].reset_index(drop=True))
