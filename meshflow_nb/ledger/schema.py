"""The ledger's tables: one row per entry, one per run, and the ledger's own facts.

The same SQL works on DuckDB and PostgreSQL. docs/ledger.md explains each column; the
hash recipe over an entry's columns is `canonical`, and ``ledger_meta`` says which recipe
the ledger is written in (a ledger without that row predates the marker: recipe 1).
"""

from __future__ import annotations

from typing import Any

GENESIS = "0" * 64
"""``prev_hash`` of the first entry of every run."""

DECIMALS = 9
"""Digits after the point for uncertainty, cost_usd and carbon_g (stored as DECIMAL)."""

ENTRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "BIGINT NOT NULL PRIMARY KEY"),
    ("run_id", "VARCHAR NOT NULL"),
    ("run_seq", "BIGINT NOT NULL"),
    ("ts", "VARCHAR NOT NULL"),
    ("event_type", "VARCHAR NOT NULL"),
    ("node_id", "VARCHAR"),
    ("role", "VARCHAR"),
    ("output", "VARCHAR"),
    ("payload", "VARCHAR"),
    ("uncertainty", "DECIMAL(18, 9)"),
    ("cost_usd", "DECIMAL(18, 9)"),
    ("tokens_in", "BIGINT"),
    ("tokens_out", "BIGINT"),
    ("carbon_g", "DECIMAL(18, 9)"),
    ("prev_hash", "VARCHAR NOT NULL"),
    ("hash", "VARCHAR NOT NULL"),
)

RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR NOT NULL PRIMARY KEY"),
    ("workflow", "VARCHAR"),
    ("task", "VARCHAR"),
    ("status", "VARCHAR NOT NULL"),
    ("started_at", "VARCHAR"),
    ("ended_at", "VARCHAR"),
    ("entry_count", "BIGINT NOT NULL"),
    ("head_hash", "VARCHAR"),
    ("policy", "VARCHAR"),
)

CHECKPOINTS = "ledger_checkpoints"
"""The table of verified checkpoints (`checkpoint`), made when the first is stored."""

CHECKPOINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("last_seq", "BIGINT NOT NULL PRIMARY KEY"),
    ("first_seq", "BIGINT NOT NULL"),
    ("entries", "BIGINT NOT NULL"),
    ("runs", "BIGINT NOT NULL"),
    ("head_hash", "VARCHAR NOT NULL"),
    ("recipe", "BIGINT NOT NULL"),
    ("open_runs", "VARCHAR NOT NULL"),
    ("digest", "VARCHAR NOT NULL"),
    ("prev_hash", "VARCHAR NOT NULL"),
    ("taken_at", "VARCHAR NOT NULL"),
    ("hash", "VARCHAR NOT NULL"),
)


RECIPE_KEY = "recipe"
"""The ``ledger_meta`` key whose value is the number of the ledger's hash recipe."""

_READ_MARKER = f"SELECT value FROM ledger_meta WHERE key = '{RECIPE_KEY}'"


def create_statements(recipe: int) -> list[str]:
    """DDL for the three tables (idempotent); a new ledger is marked with ``recipe``.

    ``ledger_meta`` is made by CREATE TABLE ... AS, which does nothing (and needs no
    right on the tables) once it exists, and marks only a ledger without entries: one
    that has entries but no ``ledger_meta`` was written before markers existed (recipe 1)
    and is left unmarked.
    """
    return [_create("ledger_entries", ENTRY_COLUMNS, ",\n    UNIQUE (run_id, run_seq)"),
            _create("ledger_runs", RUN_COLUMNS),
            f"CREATE TABLE IF NOT EXISTS ledger_meta AS SELECT '{RECIPE_KEY}' AS key, "
            f"'{int(recipe)}' AS value WHERE NOT EXISTS (SELECT 1 FROM ledger_entries)"]


def _create(name: str, columns: tuple[tuple[str, str], ...], extra: str = "") -> str:
    """CREATE TABLE IF NOT EXISTS for one table, with ``extra`` constraints after its columns."""
    body = ",\n    ".join(f"{column} {kind}" for column, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}{extra}\n)"


CREATE_CHECKPOINTS = _create(CHECKPOINTS, CHECKPOINT_COLUMNS)
"""DDL of the checkpoint table (idempotent): not among `create_statements`, so that a
role that may only read and append still opens a ledger that has none."""


def read_marker(cur: Any) -> str | None:
    """The ledger's recipe marker as stored (None when there is none; several are joined)."""
    cur.execute(_READ_MARKER)
    rows = cur.fetchall()
    return ", ".join(str(row[0]) for row in rows) if rows else None


def set_marker(cur: Any, recipe: int) -> None:
    """Mark the ledger as written in ``recipe`` (an import into an empty ledger does)."""
    cur.execute(f"DELETE FROM ledger_meta WHERE key = '{RECIPE_KEY}'")
    cur.execute("INSERT INTO ledger_meta (key, value) VALUES (?, ?)", [RECIPE_KEY, str(recipe)])
