"""Events to ledger rows and back, and chaining a batch of rows into the ledger.

Kept apart from `canonical` on purpose: this is how the event model maps onto the table
(JSON text for output and payload, fixed-point text for the decimals, what the run
record takes from an event), which grows with the events; `canonical` is the hash recipe
over stored columns, which must not change under ledgers already written.

A row is a dict of column values. A row made by `event_row` from a run_start or
run_complete event also holds `RUN_FIELDS`, which is not a column: what the run's record
in ``ledger_runs`` needs from the event, so that the store never parses the payload's
JSON text back (and a row read from the table, which lacks it, is still a whole entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..events import EventType, MeshEvent
from .canonical import canonical_text, entry_hash
from .schema import DECIMALS, GENESIS

Row = dict[str, Any]

RUN_FIELDS = "run_fields"
"""Key of a row's run-record fields: workflow, task and policy (JSON text) on a
run_start row, status on a run_complete row. Not a column: never stored or hashed."""


def to_json_text(value: Any) -> str | None:
    """The stored JSON text of an output or payload (None stays NULL)."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def decimal_text(value: float | None) -> str | None:
    """Fixed-point text with 9 decimals, exactly how DECIMAL(18, 9) prints in SQL."""
    if value is None:
        return None
    text = f"{float(value):.{DECIMALS}f}"
    return text[1:] if text == "-" + "0." + "0" * DECIMALS else text


def event_row(event: MeshEvent) -> Row:
    """The stored columns of an event, before it has a ledger position and a hash."""
    row: Row = {
        "run_id": event.run_id, "run_seq": event.seq, "ts": event.ts,
        "event_type": event.type.value, "node_id": event.node_id, "role": event.role,
        "output": to_json_text(event.output), "payload": to_json_text(event.payload),
        "uncertainty": decimal_text(event.uncertainty), "cost_usd": decimal_text(event.cost_usd),
        "tokens_in": event.tokens_in, "tokens_out": event.tokens_out,
        "carbon_g": decimal_text(event.carbon_g),
    }
    fields = run_fields(event)
    if fields is not None:
        row[RUN_FIELDS] = fields
    return row


def run_fields(event: MeshEvent) -> dict[str, Any] | None:
    """What the run's record takes from a run_start or run_complete event (else None)."""
    payload = event.payload
    if event.type is EventType.RUN_START:
        return {"workflow": payload.get("workflow"), "task": payload.get("task"),
                "policy": to_json_text(payload.get("policy"))}
    if event.type is EventType.RUN_COMPLETE:
        return {"status": payload.get("status")}
    return None


def chain_rows(rows: Iterable[Row], next_seq: int, heads: dict[str, str]) -> list[Row]:
    """Give rows their ledger ``seq``, link each to its run's head, and hash them.

    ``heads`` maps run ids to the hash of their last entry and is updated in place.
    """
    chained = []
    for offset, row in enumerate(rows):
        row = {**row, "seq": next_seq + offset}
        row["prev_hash"] = heads.get(row["run_id"], GENESIS) if row["run_seq"] > 1 else GENESIS
        row["hash"] = entry_hash(canonical_text(row))
        heads[row["run_id"]] = row["hash"]
        chained.append(row)
    return chained


def row_event(row: Mapping[str, Any]) -> MeshEvent:
    """Read a stored row back into the event it records."""
    return MeshEvent.from_dict({
        "run_id": row["run_id"], "seq": int(row["run_seq"]), "ts": row["ts"],
        "type": row["event_type"], "node_id": row["node_id"], "role": row["role"],
        "output": _from_json(row["output"]), "payload": _from_json(row["payload"]) or {},
        "uncertainty": _float(row["uncertainty"]), "cost_usd": _float(row["cost_usd"]),
        "tokens_in": _int(row["tokens_in"]), "tokens_out": _int(row["tokens_out"]),
        "carbon_g": _float(row["carbon_g"]),
    })


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _float(value: Any) -> float | None:
    return None if _is_null(value) else float(value)


def _int(value: Any) -> int | None:
    return None if _is_null(value) else int(value)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
