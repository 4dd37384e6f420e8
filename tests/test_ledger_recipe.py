"""The hash recipes in docs/ledger.md (and the ledger digest in docs/ledger-forensics.md),
executed exactly as printed, match the ledger."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import duckdb
import pytest

from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline

DOCS = Path(__file__).resolve().parents[1] / "docs"


def recipe(name: str, page: str = "ledger.md") -> str:
    """The code block that follows ``<!-- recipe: name -->`` in the doc."""
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"<!-- recipe: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"docs/{page} has no '{name}' recipe"
    return match.group(1)


@pytest.fixture
def ledger_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    path = tmp_path / "production.db"
    ledger = ReplayLedger(path)
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    workflow.run("Grüße, 😀 and a \\ backslash")
    workflow.run("a second run")
    ledger.flush()
    ledger.store.close()
    return path


def test_the_pandas_recipe_recomputes_the_stored_hashes(ledger_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(recipe("pandas"), {"LEDGER": str(ledger_path)})  # our own doc's code, verbatim
    lines = printed.getvalue().split()
    assert lines == ["1", "True", "2", "True", "3", "True"]


def test_the_sql_recipe_recomputes_every_stored_hash(ledger_path):
    with duckdb.connect(str(ledger_path)) as con:
        rows = con.execute(recipe("sql")).fetchall()
        assert len(rows) == 46 and all(ok for _, _, ok in rows)
        con.execute("""UPDATE ledger_entries SET output = '{"tampered": true}' WHERE seq = 2""")
        damaged = [seq for seq, _, ok in con.execute(recipe("sql")).fetchall() if not ok]
    assert damaged == [2]


def test_the_first_entry_of_each_run_links_to_the_genesis_value(ledger_path):
    with duckdb.connect(str(ledger_path)) as con:
        starts = con.execute("SELECT prev_hash FROM ledger_entries WHERE run_seq = 1").fetchall()
    assert starts == [("0" * 64,), ("0" * 64,)]


def test_the_ledger_digest_in_sql_is_the_ledger_anchors(ledger_path):
    anchor = ReplayLedger(ledger_path).anchor()
    ReplayLedger(ledger_path).store.close()
    assert (anchor.last_seq, anchor.length, anchor.runs) == (46, 46, 2)
    with duckdb.connect(str(ledger_path)) as con:
        (digest,) = con.execute(recipe("ledger-digest", "ledger-forensics.md")).fetchone()
    assert digest == anchor.head_hash


def test_the_recipe_marker_query_reads_recipe_2(ledger_path):
    with duckdb.connect(str(ledger_path)) as con:
        assert con.execute(recipe("marker")).fetchall() == [("2",)]
