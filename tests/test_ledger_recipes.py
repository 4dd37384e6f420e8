"""Recipe versions on real ledgers, DuckDB and PostgreSQL: a new ledger is marked recipe 2
and hashed with it; a ledger written before markers existed is recipe 1, verifies with
it, and keeps it for its new runs; exports carry their recipe into other ledgers; the
SQL of each recipe rebuilds exactly the Python text; and a changed marker is caught.

An old ledger is made as the old code made it: its rows hashed with recipe 1 (the tests
in test_ledger_canonical.py pin that recipe 1 is the old recipe, byte for byte) and no
``ledger_meta`` table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_ledger_forensics
from test_ledger_forensics import EVENTS, Db, capstone, found

from meshflow_nb.events import EventType, MeshEvent
from meshflow_nb.ledger import LedgerError, ReplayLedger
from meshflow_nb.ledger.canonical import (
    CURRENT_RECIPE,
    HASHED_COLUMNS,
    LEGACY_RECIPE,
    RECIPES,
    entry_hash,
)
from meshflow_nb.ledger.replay import _stores
from meshflow_nb.ledger.schema import create_statements
from meshflow_nb.ledger.stores import DuckDBStore, Store
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")

other_location = test_ledger_forensics.other_location
"""A second, empty ledger on the same backend (the forensics tests' fixture)."""


def reopen(ledger: ReplayLedger) -> ReplayLedger:
    """The same ledger opened afresh, as by a new process (its store forgotten)."""
    key = next(k for k, s in _stores.items() if s is ledger.store)
    _stores.pop(key).close()
    return ReplayLedger(ledger.location)


def old_ledger(location: str, monkeypatch: pytest.MonkeyPatch, runs: int = 2
               ) -> tuple[ReplayLedger, Db, list[str]]:
    """Capstone runs written the way the code before recipe markers wrote them."""
    with monkeypatch.context() as patch:
        patch.setattr(Store, "ensure_schema", _old_schema)
        ledger, db, ids = capstone(location, runs)
    return reopen(ledger), db, ids


def _old_schema(store: Store) -> None:
    """What the old code's opening did: the two tables, and its recipe for appends."""
    with store.transaction("create the ledger tables") as cur:
        for statement in create_statements(LEGACY_RECIPE.number)[:2]:
            cur.execute(statement)
    store.recipe = LEGACY_RECIPE


def recipe_of(db: Db) -> list[int]:
    """The recipe each stored entry verifies with (0: none), in seq order."""
    return [next((n for n, r in RECIPES.items() if r.verifies(row)), 0) for row in db.entries()]


def test_a_new_ledger_is_marked_and_hashed_with_recipe_2(location):
    ledger, db, _ = capstone(location)
    assert db.sql("SELECT key, value FROM ledger_meta") == [("recipe", "2")]
    assert ledger.store.recipe is CURRENT_RECIPE
    assert recipe_of(db) == [2] * EVENTS
    assert reopen(ledger).store.recipe is CURRENT_RECIPE


def test_an_old_ledger_verifies_with_recipe_1(location, monkeypatch):
    ledger, db, runs = old_ledger(location, monkeypatch)
    assert recipe_of(db) == [1] * 2 * EVENTS
    assert db.sql("SELECT count(*) FROM ledger_meta") == [(0,)]  # opening does not mark it
    assert ledger.store.recipe is LEGACY_RECIPE
    check = ledger.verify_chain(anchor=[ledger.anchor(r) for r in runs] + [ledger.anchor()])
    assert check.valid and check.entries_checked == 2 * EVENTS, check.report()
    db.sql("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
    assert found(ledger.verify_chain()) == [("edited", 2, runs[0])]


def test_new_runs_on_an_old_ledger_keep_recipe_1(location, monkeypatch):
    ledger, db, _ = old_ledger(location, monkeypatch, runs=1)
    ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run("appended")
    assert recipe_of(db) == [1] * 2 * EVENTS
    assert ledger.verify_chain().valid


def test_an_old_ledger_keeps_recipe_1s_blind_spot_but_reading_it_back_names_the_row(
        location, monkeypatch):
    """Recipe 1 hashes NULL and the text \\N alike: documented, and why recipe 2 exists."""
    ledger, db, (run,) = old_ledger(location, monkeypatch, runs=1)
    db.sql("UPDATE ledger_entries SET output = '\\N' WHERE output IS NULL")
    assert ledger.verify_chain().valid
    with pytest.raises(LedgerError, match="is not the JSON text the ledger writes"):
        ledger.events(run)


@pytest.mark.parametrize("statement, says", [
    ("INSERT INTO ledger_meta (key, value) VALUES ('recipe', '2')", "says '2'"),
    ("INSERT INTO ledger_meta (key, value) VALUES ('recipe', '9')", "names no recipe"),
], ids=["marked-2", "unknown"])
def test_a_marker_added_to_an_old_ledger_is_caught(location, monkeypatch, statement, says):
    ledger, db, _ = old_ledger(location, monkeypatch, runs=1)
    db.sql(statement)
    check = ledger.verify_chain()
    assert found(check) == [("recipe_changed", None, None)] and says in str(check)


def test_a_marker_set_to_recipe_1_on_a_new_ledger_is_caught_and_its_entries_still_checked(
        location):
    """The downgrade that would hide a NULL turned into \\N: every recipe 2 text opens
    with v2, so recipe 1 fails every entry, and the entries are checked as written."""
    ledger, db, (run,) = capstone(location)
    db.sql("UPDATE ledger_meta SET value = '1'")
    db.sql("UPDATE ledger_entries SET output = '\\N' WHERE seq = 1")
    assert not any(LEGACY_RECIPE.verifies(row) for row in db.entries())
    assert found(ledger.verify_chain()) == [("edited", 1, run), ("recipe_changed", None, None)]


def test_a_marker_several_times_over_is_caught(location):
    ledger, db, _ = capstone(location)
    db.sql("INSERT INTO ledger_meta (key, value) VALUES ('recipe', '2')")
    check = ledger.verify_chain()
    assert found(check) == [("recipe_changed", None, None)] and "'2, 2'" in str(check)


# --- exports carry their recipe ---------------------------------------------------


def test_an_old_export_imports_into_an_empty_ledger_which_takes_recipe_1(
        location, other_location, monkeypatch):
    ledger, _, runs = old_ledger(location, monkeypatch)
    data = json.loads(ledger.export_run(runs[0]))
    assert data["recipe"] == 1
    del data["recipe"]  # an export written before exports named their recipe
    target = ReplayLedger(other_location)
    target.import_run(json.dumps(data))
    assert Db(target).sql("SELECT value FROM ledger_meta") == [("1",)]
    assert target.verify_chain(anchor=ledger.anchor(runs[0])).valid
    target.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85])).run("after import")
    assert target.verify_chain().valid  # its new runs are recipe 1 too
    assert reopen(target).verify_chain().valid


def test_an_export_of_another_recipe_is_refused_by_a_ledger_with_entries(
        location, other_location, monkeypatch):
    ledger, _, runs = old_ledger(location, monkeypatch, runs=1)
    target, _, _ = capstone(other_location)
    with pytest.raises(LedgerError, match=r"it is hashed with recipe 1 and .* with recipe 2; "
                                          r"import it into an empty ledger"):
        target.import_run(ledger.export_run(runs[0]))
    data = json.loads(ledger.export_run(runs[0]))
    data["recipe"] = 7
    with pytest.raises(LedgerError, match="names hash recipe 7, which this version"):
        ReplayLedger(other_location).import_run(json.dumps(data))


def test_a_new_export_says_recipe_2_and_imports_as_it_is(location, other_location):
    ledger, _, (run,) = capstone(location)
    exported = ledger.export_run(run)
    assert json.loads(exported)["recipe"] == 2
    target = ReplayLedger(other_location)
    target.import_run(exported)
    assert target.verify_chain().valid and target.store.recipe is CURRENT_RECIPE


def test_an_export_names_the_recipe_its_entries_use_even_when_the_marker_is_gone(
        location, other_location):
    ledger, db, (run,) = capstone(location)
    db.sql("DROP TABLE ledger_meta")
    assert json.loads(ledger.export_run(run))["recipe"] == 2
    target = ReplayLedger(other_location)
    target.import_run(ledger.export_run(run))
    assert target.verify_chain().valid


# --- each recipe's SQL is its Python text --------------------------------------------

AWKWARD = ["a\x1fb", "\\N", "\\\\", "\\x1f", "Grüße 😀", "'quoted'", "", "tab\there"]


@pytest.mark.parametrize("number", [1, 2])
def test_each_recipes_sql_rebuilds_its_python_text(location, number):
    ledger = ReplayLedger(location)
    for seq, value in enumerate(AWKWARD, start=1):
        ledger.record(MeshEvent(f"r{value}", 1, f"2026-01-01T00:00:0{seq % 10}+00:00",
                                EventType.NODE_START, node_id=value, role=value or None,
                                output=value, payload={"v": value}, cost_usd=seq / 3))
    ledger.flush()
    recipe = RECIPES[number]
    columns = ", ".join(f"CAST({c} AS VARCHAR)" for c in HASHED_COLUMNS)
    variants = [recipe.sql()] + ([recipe.quick_sql] if isinstance(ledger.store, DuckDBStore)
                                 else [])
    for sql in variants:
        rows = ledger.store.rows(f"SELECT {sql}, {columns} FROM ledger_entries ORDER BY seq")
        for text, *values in rows:
            assert text == recipe.canonical_text(dict(zip(HASHED_COLUMNS, values, strict=True)))
    assert all(entry_hash(t) == h for t, h in ledger.store.rows(
        f"SELECT {CURRENT_RECIPE.sql()}, hash FROM ledger_entries"))


def test_the_docs_describe_recipe_1_as_the_old_recipe():
    page = (Path(__file__).resolve().parents[1] / "docs" / "ledger.md").read_text("utf-8")
    assert "### Recipes: old ledgers and new ones" in page and "recipe 1" in page
