"""The one hash recipe (meshflow_nb/ledger/canonical.py): the bytes it hashes are fixed,
and the ways the ledger computes a hash in Python (writing, the batch digests of
verification, the position hasher of forensics) agree with it. The SQL that rebuilds
the text on each database is tested in test_ledger_stores.py."""

from __future__ import annotations

import binascii
import hashlib

from meshflow_nb.events import EventType, MeshEvent
from meshflow_nb.ledger.canonical import (
    HASHED_COLUMNS,
    canonical_text,
    digests,
    entry_hash,
    position_hasher,
)
from meshflow_nb.ledger.rows import chain_rows, event_row

ROW = {
    "seq": 7, "run_id": "r1", "run_seq": 2, "ts": "2024-01-02T03:04:05.000006+00:00",
    "event_type": "node_complete", "node_id": "writer", "role": None,
    "output": '"Grüße 😀 \\\\ x"', "payload": '{"a": 1}', "uncertainty": "0.250000000",
    "cost_usd": None, "tokens_in": 12, "tokens_out": None, "carbon_g": "0.000001000",
    "prev_hash": "ab" * 32,
}
TEXT = ("7\x1fr1\x1f2\x1f2024-01-02T03:04:05.000006+00:00\x1fnode_complete\x1fwriter\x1f\\N"
        '\x1f"Grüße 😀 \\\\ x"\x1f{"a": 1}\x1f0.250000000\x1f\\N\x1f12\x1f\\N\x1f0.000001000'
        "\x1f" + "ab" * 32)
HASH = "bf5c941e138f8b974b85e3592dd6d2cc87ef9eeb90b27d97326ac638fbb8d202"
"""What every ledger written so far hashes: these must not change with a refactoring."""


def test_the_canonical_text_and_its_hash_are_unchanged():
    assert HASHED_COLUMNS == ("seq", "run_id", "run_seq", "ts", "event_type", "node_id",
                              "role", "output", "payload", "uncertainty", "cost_usd",
                              "tokens_in", "tokens_out", "carbon_g", "prev_hash")
    assert canonical_text(ROW) == TEXT
    assert entry_hash(TEXT) == hashlib.sha256(TEXT.encode("utf-8")).hexdigest() == HASH


def test_events_chain_into_the_same_hashes_as_before():
    events = [
        MeshEvent("run-a", 1, "2024-01-02T03:04:05.000001+00:00", EventType.RUN_START,
                  payload={"workflow": "w", "task": "Grüße", "policy": {"b": 1, "a": [0.5]}}),
        MeshEvent("run-a", 2, "2024-01-02T03:04:05.000002+00:00", EventType.NODE_COMPLETE,
                  node_id="n", role="writer", output={"k": "v"}, uncertainty=0.125,
                  cost_usd=-0.0, tokens_in=3, tokens_out=4, carbon_g=1e-10),
    ]
    first, second = chain_rows([event_row(e) for e in events], 5, {})
    assert first["hash"] == "5fd4d0966a6a921affef23a5bcbb9bd8e9d9d1d7309e738c1743f95eec966a6f"
    assert second["prev_hash"] == first["hash"]
    assert second["hash"] == "3f9906b87d45edf7742d678afce475f326ae09a51fca3b88fe838c93b1fe2f80"


def test_batch_digests_are_the_entry_hashes():
    texts = [TEXT, "", "a\x1fb", "😀"]
    data = "".join(texts).encode("utf-8")
    bounds = [0]
    for text in texts:
        bounds.append(bounds[-1] + len(text.encode("utf-8")))
    raw = digests(data, bounds)
    assert binascii.hexlify(raw).decode() == "".join(entry_hash(t) for t in texts)


def test_the_position_hasher_is_the_entry_hash_at_that_position():
    at = position_hasher(ROW)
    assert at(7, 2) == HASH
    assert at(9, 4) == entry_hash(canonical_text({**ROW, "seq": 9, "run_seq": 4}))

