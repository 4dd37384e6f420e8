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
import operator
from collections.abc import Iterable, Mapping
from typing import Any

from ..events import EventType, MeshEvent, short_text
from .canonical import CURRENT_RECIPE, Recipe, entry_hash
from .errors import LedgerValueError
from .schema import DECIMALS, GENESIS

Row = dict[str, Any]

RUN_FIELDS = "run_fields"
"""Key of a row's run-record fields: workflow, task and policy (JSON text) on a
run_start row, status on a run_complete row. Not a column: never stored or hashed."""


_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
"""What ``json.dumps`` with these options builds on every call: one, shared (it keeps no
state between calls), for the same text at a fraction of the cost."""


def to_json_text(value: Any) -> str | None:
    """The stored JSON text of an output or payload (None stays NULL)."""
    if value is None:
        return None
    return _JSON.encode(value)


_FIXED_POINT = f"%.{DECIMALS}f"
_NEGATIVE_ZERO = "-0." + "0" * DECIMALS


def decimal_text(value: float | None) -> str | None:
    """Fixed-point text with 9 decimals, exactly how DECIMAL(18, 9) prints in SQL."""
    if value is None:
        return None
    text = _FIXED_POINT % float(value)
    return text[1:] if text == _NEGATIVE_ZERO else text


DECIMAL_LIMIT = 10.0 ** (18 - DECIMALS)
"""DECIMAL(18, 9) keeps 9 digits before the point: a stored amount is smaller than this."""
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
SHOWN_CHARS = 60
"""Characters of a refused value quoted in the error message."""


def event_row(event: MeshEvent) -> Row:
    """The stored columns of an event, before it has a ledger position and a hash.

    Raises `LedgerValueError` naming the field when a value fits no column (a NaN or
    huge amount, a count beyond BIGINT, text with a NUL): the database would refuse
    the whole batch holding it, and every later entry would queue behind that batch.
    """
    try:
        row: Row = {
            "run_id": event.run_id, "run_seq": event.seq, "ts": event.ts,
            "event_type": event.type.value, "node_id": event.node_id, "role": event.role,
            "output": to_json_text(event.output), "payload": to_json_text(event.payload),
            "uncertainty": _fixed(event.uncertainty), "cost_usd": _fixed(event.cost_usd),
            "tokens_in": event.tokens_in, "tokens_out": event.tokens_out,
            "carbon_g": _fixed(event.carbon_g),
        }
    except Exception:  # a value that does not convert, or an amount out of range
        row = {}
    if not (row and isinstance(event.type, EventType) and _fits(row)):
        raise _refusal(event)
    fields = run_fields(event)
    if fields is not None:
        row[RUN_FIELDS] = fields
    return row


def run_fields(event: MeshEvent) -> dict[str, Any] | None:
    """What the run's record takes from a run_start or run_complete event (else None):
    text as it is, anything else as JSON text, so that every database stores it alike."""
    if event.type is not EventType.RUN_START and event.type is not EventType.RUN_COMPLETE:
        return None
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    names = ("workflow", "task", "policy") if event.type is EventType.RUN_START else ("status",)
    return {name: _record_text(event, name, payload.get(name)) for name in names}


# --- what a column can hold ------------------------------------------------------------


def _fits(row: Row) -> bool:
    """Whether every value of a converted row can be stored as it is: the usual case,
    checked in one pass (`_refusal` then finds the field that does not fit)."""
    seq, tokens_in, tokens_out = row["run_seq"], row["tokens_in"], row["tokens_out"]
    if type(seq) is not int or not 0 < seq <= BIGINT_MAX:
        return False
    if tokens_in is not None and (type(tokens_in) is not int
                                  or not BIGINT_MIN <= tokens_in <= BIGINT_MAX):
        return False
    if tokens_out is not None and (type(tokens_out) is not int
                                   or not BIGINT_MIN <= tokens_out <= BIGINT_MAX):
        return False
    node, role = row["node_id"], row["role"]
    if (node is not None and not isinstance(node, str)) or (
            role is not None and not isinstance(role, str)):
        return False
    try:  # joining checks that run_id and ts are text too
        text = "".join((row["run_id"], row["ts"], node or "", role or "", row["output"] or "",
                        row["payload"] or ""))
    except TypeError:
        return False
    return "\x00" not in text and (text.isascii() or _encodes(text))


def _fixed(value: Any) -> str | None:
    """`decimal_text` of an amount DECIMAL(18, 9) holds; for any other it raises (and
    `event_row` then names the field)."""
    if value is None:
        return None
    number = float(value)
    if not -DECIMAL_LIMIT < number < DECIMAL_LIMIT:  # NaN fails both comparisons
        raise LedgerValueError(f"{number} does not fit DECIMAL(18, 9)")
    return decimal_text(number)


def _refusal(event: MeshEvent) -> LedgerValueError:
    """The refusal of an event `_fits` turned down, naming its first unstorable field."""
    try:
        _text(event, "run_id", event.run_id, required=True)
        _position(event)
        _text(event, "ts", event.ts, required=True)
        _kind(event)
        _text(event, "node_id", event.node_id)
        _text(event, "role", event.role)
        _json(event, "output", event.output)
        _json(event, "payload", event.payload)
        for name in ("uncertainty", "cost_usd", "carbon_g"):
            _decimal(event, name, getattr(event, name))
        _bigint(event, "tokens_in", event.tokens_in)
        _bigint(event, "tokens_out", event.tokens_out)
    except LedgerValueError as err:
        return err
    return _refused(event, "the event", event, "has a value the ledger cannot store")


def _text(event: MeshEvent, name: str, value: Any, required: bool = False) -> str | None:
    """A VARCHAR value: text, or None where the column takes NULL."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _refused(event, name, value, "is not text" if value is not None
                       else "is missing (every entry has one)")
    return _storable(event, name, value, value)


def _json(event: MeshEvent, name: str, value: Any) -> str | None:
    """The JSON text of an output or payload, refused when it cannot be written."""
    try:
        text = to_json_text(value)
    except Exception as err:  # mixed-type keys, a cycle, a __str__ that raises: all refusals
        raise _refused(event, name, value, f"cannot be written as JSON ({err})") from err
    return None if text is None else _storable(event, name, value, text)


def _record_text(event: MeshEvent, name: str, value: Any) -> str | None:
    """A run-record field as stored: text as it is, anything else as its JSON text."""
    if isinstance(value, str):
        return _storable(event, name, value, value)
    return _json(event, name, value)


def _storable(event: MeshEvent, name: str, value: Any, text: str) -> str:
    """``text``, if every database can store it: PostgreSQL holds no NUL, and UTF-8
    (which the hash needs too) no lone surrogate."""
    if "\x00" not in text and (text.isascii() or _encodes(text)):
        return text
    raise _refused(event, name, value, "holds a NUL character or a lone surrogate, which "
                   "no text column can hold")


def _encodes(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (a lone surrogate has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decimal(event: MeshEvent, name: str, value: Any) -> str | None:
    """A DECIMAL(18, 9) value as its fixed-point text: finite and below 1e9 in size."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _refused(event, name, value, "is not a number") from None
    if not -DECIMAL_LIMIT < number < DECIMAL_LIMIT:  # NaN fails both comparisons
        raise _refused(event, name, value, "is not a finite amount below 1e9 in size "
                       "(the column is DECIMAL(18, 9))")
    return decimal_text(number)


def _bigint(event: MeshEvent, name: str, value: Any) -> int | None:
    """A BIGINT value: a whole number within 64 bits (a float without a fraction counts)."""
    if value is None:
        return None
    if type(value) is not int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            try:
                value = operator.index(value)
            except TypeError:
                raise _refused(event, name, value, "is not a whole number") from None
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise _refused(event, name, value, "does not fit the column's 64 bits (BIGINT)")
    return value


def _position(event: MeshEvent) -> int:
    """The event's number within its run (its ``seq``): a BIGINT from 1 up."""
    seq = _bigint(event, "seq", event.seq)
    if seq is None or seq < 1:
        raise _refused(event, "seq", event.seq, "is not a position in a run (they count "
                       "from 1)")
    return seq


def _kind(event: MeshEvent) -> str:
    """The stored event_type: the value of an `EventType`."""
    if not isinstance(event.type, EventType):
        raise _refused(event, "type", event.type, "is not an EventType")
    return event.type.value


def _refused(event: MeshEvent, name: str, value: Any, why: str) -> LedgerValueError:
    """The refusal of ``event``, naming the field and its value (cut short)."""
    kind = getattr(event.type, "value", event.type)
    which = short_text(f"the {kind} event #{event.seq} of run {event.run_id}", SHOWN_CHARS)
    return LedgerValueError(f"cannot record {which}: {name} = {_shown(value)} {why}; "
                            "nothing was queued for it")


def _shown(value: Any) -> str:
    """``repr(value)`` on one line, cut to `SHOWN_CHARS`."""
    try:
        text = repr(value)
    except Exception:  # a repr that raises still names the type
        text = f"<{type(value).__name__}>"
    return short_text(text, SHOWN_CHARS)


def chain_rows(rows: Iterable[Row], next_seq: int, heads: dict[str, str],
               recipe: Recipe = CURRENT_RECIPE) -> list[Row]:
    """Give rows their ledger ``seq``, link each to its run's head, and hash them.

    ``heads`` maps run ids to the hash of their last entry and is updated in place;
    ``recipe`` is the ledger's own (an old ledger keeps the recipe it was written in).
    """
    chained = []
    for offset, row in enumerate(rows):
        row = {**row, "seq": next_seq + offset}
        row["prev_hash"] = heads.get(row["run_id"], GENESIS) if row["run_seq"] > 1 else GENESIS
        row["hash"] = entry_hash(recipe.canonical_text(row))
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
