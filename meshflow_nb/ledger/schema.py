"""The ledger's tables: one row per entry, one per run.

The same SQL works on DuckDB and PostgreSQL. docs/ledger.md explains each column; the
hash recipe over an entry's columns is `canonical`.
"""

from __future__ import annotations

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


def create_statements() -> list[str]:
    """DDL for both tables (idempotent)."""
    entries = ",\n    ".join(f"{name} {kind}" for name, kind in ENTRY_COLUMNS)
    runs = ",\n    ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS ledger_entries (\n    {entries},\n"
        "    UNIQUE (run_id, run_seq)\n)",
        f"CREATE TABLE IF NOT EXISTS ledger_runs (\n    {runs}\n)",
    ]

