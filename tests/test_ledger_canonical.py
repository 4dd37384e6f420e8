"""The hash recipes (meshflow_nb/ledger/canonical.py): the bytes each one hashes are fixed,
recipe 2 tells every pair of different rows apart where recipe 1 could not, and the ways
the ledger computes a hash in Python (writing, the batch digests of verification, the
position hasher of forensics) agree with them. The SQL that rebuilds the text on each
database is tested in test_ledger_stores.py and test_ledger_recipes.py."""

from __future__ import annotations

import binascii
import hashlib

import pytest

from meshflow_nb.events import EventType, MeshEvent
from meshflow_nb.ledger.canonical import (
    CURRENT_RECIPE,
    HASHED_COLUMNS,
    LEGACY_RECIPE,
    RECIPES,
    canonical_text,
    digests,
    entry_hash,
    ledger_digest,
    marked_recipe,
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
"""What every ledger written before recipe markers hashes (recipe 1): must never change."""

TEXT_2 = ("v2\x1f7\x1fr1\x1f2\x1f2024-01-02T03:04:05.000006+00:00\x1fnode_complete\x1fwriter"
          '\x1f\\N\x1f"Grüße 😀 \\\\\\\\ x"\x1f{"a": 1}\x1f0.250000000\x1f\\N\x1f12\x1f\\N'
          "\x1f0.000001000\x1f" + "ab" * 32)
HASH_2 = "f97ad4f69e0b48ee2c7343f8b8cf87f71bfecf1b5e62d4f9b1e64355a301ed86"
"""What every ledger marked recipe 2 hashes: must never change either."""

EVENTS = [
    MeshEvent("run-a", 1, "2024-01-02T03:04:05.000001+00:00", EventType.RUN_START,
              payload={"workflow": "w", "task": "Grüße", "policy": {"b": 1, "a": [0.5]}}),
    MeshEvent("run-a", 2, "2024-01-02T03:04:05.000002+00:00", EventType.NODE_COMPLETE,
              node_id="n", role="writer", output={"k": "v"}, uncertainty=0.125,
              cost_usd=-0.0, tokens_in=3, tokens_out=4, carbon_g=1e-10),
]
CHAINED = {
    1: ("5fd4d0966a6a921affef23a5bcbb9bd8e9d9d1d7309e738c1743f95eec966a6f",
        "3f9906b87d45edf7742d678afce475f326ae09a51fca3b88fe838c93b1fe2f80"),
    2: ("25fbfb107b5f56ed0f55064043c29be5e1c2125a0f50ca60c067f7002b5bb0dc",
        "455409cee563bd79e0a097d8fc29bc9ca86139ce69a1a577fcf82b8365974fb3"),
}


def test_the_recipe_1_text_and_hash_are_unchanged():
    assert HASHED_COLUMNS == ("seq", "run_id", "run_seq", "ts", "event_type", "node_id",
                              "role", "output", "payload", "uncertainty", "cost_usd",
                              "tokens_in", "tokens_out", "carbon_g", "prev_hash")
    assert canonical_text(ROW, LEGACY_RECIPE) == TEXT
    assert entry_hash(TEXT) == hashlib.sha256(TEXT.encode("utf-8")).hexdigest() == HASH


def test_the_recipe_2_text_and_hash_are_fixed():
    assert CURRENT_RECIPE is RECIPES[2]
    assert canonical_text(ROW) == CURRENT_RECIPE.canonical_text(ROW) == TEXT_2
    assert entry_hash(TEXT_2) == HASH_2


@pytest.mark.parametrize("number", [1, 2])
def test_events_chain_into_each_recipes_pinned_hashes(number):
    first, second = chain_rows([event_row(e) for e in EVENTS], 5, {}, RECIPES[number])
    assert (first["hash"], second["hash"]) == CHAINED[number]
    assert second["prev_hash"] == first["hash"]


def test_chaining_uses_the_current_recipe_unless_told():
    first, _ = chain_rows([event_row(e) for e in EVENTS], 5, {})
    assert first["hash"] == CHAINED[CURRENT_RECIPE.number][0]


AMBIGUOUS = [
    ({"output": None}, {"output": "\\N"}),                        # NULL and the text \N
    ({"role": None}, {"role": "\\N"}),
    ({"node_id": "a\x1fb", "role": "c"}, {"node_id": "a", "role": "b\x1fc"}),  # a fake boundary
]


@pytest.mark.parametrize("changes", AMBIGUOUS, ids=["null-output", "null-role", "separator"])
def test_recipe_2_tells_apart_rows_recipe_1_confused(changes):
    a, b = ({**ROW, **c} for c in changes)
    assert LEGACY_RECIPE.canonical_text(a) == LEGACY_RECIPE.canonical_text(b)
    assert CURRENT_RECIPE.canonical_text(a) != CURRENT_RECIPE.canonical_text(b)


TRICKY = [None, "", "\\", "\\\\", "\\N", "\\\\N", "N", "\x1f", "\\x1f", "\\\x1f", "\x1f\\N",
          "a\x1fb", "\\x1f\x1f"]


def test_recipe_2_gives_every_pair_of_neighbouring_values_its_own_text():
    """Injective where it matters most: two adjacent columns, over values built from the
    separator, the backslash, N and the escape itself (recipe 1 confuses some pairs)."""
    rows = [{**ROW, "node_id": a, "role": b} for a in TRICKY for b in TRICKY]
    assert len({CURRENT_RECIPE.canonical_text(r) for r in rows}) == len(rows)
    assert len({LEGACY_RECIPE.canonical_text(r) for r in rows}) < len(rows)


def test_recipe_2_splits_back_into_its_fields():
    """No raw separator is left inside a value, and NULL is the only field that reads \\N."""
    row = {**ROW, "node_id": "a\x1fb\\N", "role": "\\N", "output": None}
    fields = CURRENT_RECIPE.canonical_text(row).split("\x1f")
    assert fields[0] == "v2" and len(fields) == 1 + len(HASHED_COLUMNS)
    assert fields[HASHED_COLUMNS.index("node_id") + 1] == "a\\x1fb\\\\N"
    assert fields[HASHED_COLUMNS.index("role") + 1] == "\\\\N"
    assert fields[HASHED_COLUMNS.index("output") + 1] == "\\N"


def test_every_recipe_2_text_differs_from_the_same_rows_recipe_1_text():
    """So a recipe marker changed from 2 to 1 (or back) fails every entry."""
    for row in (ROW, {**ROW, "node_id": None, "role": None, "output": None}):
        assert LEGACY_RECIPE.canonical_text(row) != CURRENT_RECIPE.canonical_text(row)


def test_markers_name_recipes():
    assert marked_recipe(None) is LEGACY_RECIPE  # no marker: written before markers
    assert marked_recipe("1") is LEGACY_RECIPE and marked_recipe("2") is CURRENT_RECIPE
    assert all(marked_recipe(m) is None for m in ("3", "02", " 2", "two", ""))


def test_batch_digests_are_the_entry_hashes():
    texts = [TEXT, "", "a\x1fb", "😀"]
    data = "".join(texts).encode("utf-8")
    bounds = [0]
    for text in texts:
        bounds.append(bounds[-1] + len(text.encode("utf-8")))
    raw = digests(data, bounds)
    assert binascii.hexlify(raw).decode() == "".join(entry_hash(t) for t in texts)


@pytest.mark.parametrize("number", [1, 2])
def test_the_position_hasher_is_the_entry_hash_at_that_position(number):
    recipe = RECIPES[number]
    at = position_hasher({**ROW, "node_id": "a\x1f\\b"}, recipe)
    moved = {**ROW, "node_id": "a\x1f\\b", "seq": 9, "run_seq": 4}
    assert at(7, 2) == entry_hash(recipe.canonical_text({**ROW, "node_id": "a\x1f\\b"}))
    assert at(9, 4) == entry_hash(recipe.canonical_text(moved))
    assert position_hasher(ROW, recipe)(7, 2) == (HASH, HASH_2)[number - 1]


def test_the_ledger_digest_is_its_counts_then_every_hash():
    hashes = ["a" * 64, "b" * 64]
    text = "2\x1f2\x1f1\x1f" + "a" * 64 + "b" * 64
    assert ledger_digest(2, 2, 1, hashes) == ledger_digest(2, 2, 1, ["".join(hashes)]) \
        == hashlib.sha256(text.encode()).hexdigest()
    assert ledger_digest(2, 2, 2, hashes) != ledger_digest(2, 2, 1, hashes)
