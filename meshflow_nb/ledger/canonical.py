"""The hash recipes: an entry's canonical text and its SHA-256, in Python and in SQL.

An entry's ``hash`` is the SHA-256 (64 lowercase hex digits) of its canonical text: the
text form of every stored column but ``hash`` (``prev_hash`` included), in table order,
joined by U+001F, NULL written as ``\\N``, encoded as UTF-8. Two recipes exist:

* recipe 1 (ledgers written before recipes were versioned) writes every value as it is,
  so it cannot tell NULL from the text ``\\N``, nor a U+001F inside a value from a field
  boundary;
* recipe 2 (every new ledger) opens the text with the field ``v2`` and, in every value,
  doubles each backslash and writes U+001F as the four characters ``\\x1f``, so that the
  text says exactly which values the row holds.

A ledger says which recipe it uses in ``ledger_meta`` (`schema`); a ledger without the
marker is recipe 1. Writing (`rows.chain_rows`), verifying (`verify`) and forensics all
hash through this module, so a recipe cannot drift between them; docs/ledger.md prints
recipe 2 for learners, and tests/test_ledger_recipe.py runs that printed copy.

The ledger digest of a ledger anchor (`anchor`) is here too: it is the same kind of
promise, a text anyone can rebuild in SQL from the stored columns.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .schema import ENTRY_COLUMNS

SEPARATOR = "\x1f"
"""ASCII unit separator between fields."""

NULL_TEXT = "\\N"
"""How a NULL column is written in the canonical text (backslash, capital N)."""

ESCAPES: tuple[tuple[str, str], ...] = (("\\", "\\\\"), (SEPARATOR, "\\x1f"))
"""Recipe 2's escapes inside a value, applied in this order (the backslash first)."""

HASHED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in ENTRY_COLUMNS if name != "hash")
"""Every stored column but ``hash`` itself, in this order, makes the canonical text."""

TEXT_COLUMNS = frozenset(name for name, kind in ENTRY_COLUMNS if kind.startswith("VARCHAR"))
"""The columns whose values can hold a backslash or U+001F (numbers never do)."""

HEX_WIDTH = 64
"""Characters of a hash written in hex (``hash`` and ``prev_hash``)."""

_AFTER_POSITION = HASHED_COLUMNS.index("run_seq") + 1
"""The columns open with seq, run_id, run_seq (the table's order); the rest follows them."""


@dataclass(frozen=True)
class Recipe:
    """One way of writing an entry's canonical text; every ledger names the one it uses."""

    number: int
    opening: tuple[str, ...]
    """Fields before the columns: they make every text of this recipe differ from the
    other recipe's, so that a changed recipe marker fails every entry."""
    escaped: bool
    """Whether backslashes and U+001F inside a value are escaped (`ESCAPES`)."""

    def text_form(self, value: Any) -> str:
        """A column value as it appears in this recipe's canonical text."""
        if value is None:
            return NULL_TEXT
        text = str(value)
        if self.escaped:
            for raw, escape in ESCAPES:
                text = text.replace(raw, escape)
        return text

    def canonical_text(self, row: Mapping[str, Any]) -> str:
        """The canonical text of a row (a mapping of column names to stored values)."""
        return SEPARATOR.join((*self.opening, *(self.text_form(row[n]) for n in HASHED_COLUMNS)))

    def sql(self, quick: bool = False) -> str:
        """SQL (DuckDB and PostgreSQL) that rebuilds an entry's canonical text.

        The stored text of a column is its canonical text: DECIMAL(18, 9) prints with 9
        digits after the point, as `rows.decimal_text` writes it. One ``concat_ws`` call
        (no argument is NULL after coalesce) is about twice as fast as a chain of ``||``.
        ``quick`` (DuckDB only) escapes just the values that hold something to escape.
        """
        fields = [f"'{field}'" for field in self.opening]
        fields += [f"coalesce({self._column_sql(name, quick)}, '{NULL_TEXT}')"
                   for name in HASHED_COLUMNS]
        return f"concat_ws(chr({ord(SEPARATOR)}), {', '.join(fields)})"

    def _column_sql(self, name: str, quick: bool) -> str:
        """One column's text in SQL: escaped (recipe 2 text columns), or cast."""
        if name not in TEXT_COLUMNS:
            return f"CAST({name} AS VARCHAR)"
        if not self.escaped:
            return name
        escaped = name
        for raw, escape in ESCAPES:
            escaped = f"replace({escaped}, {_sql_literal(raw)}, {_sql_literal(escape)})"
        if not quick:
            return escaped
        found = " OR ".join(f"contains({name}, {_sql_literal(raw)})" for raw, _ in ESCAPES)
        return f"CASE WHEN {found} THEN {escaped} ELSE {name} END"

    @cached_property
    def quick_sql(self) -> str:
        """`sql` with ``quick`` on, built once (verification runs it on every entry)."""
        return self.sql(quick=True)

    def position_hasher(self, row: Mapping[str, Any]) -> Callable[[int, int], str]:
        """``at(seq, run_seq)``: the hash ``row`` would have at that ledger and run position.

        Everything after ``run_seq`` is encoded once, so trying many positions for one
        entry (as forensics does to find where a moved entry belongs) costs a short hash
        each.
        """
        tail = SEPARATOR.join(self.text_form(row[c]) for c in HASHED_COLUMNS[_AFTER_POSITION:])
        tail_bytes, run_id = tail.encode("utf-8"), self.text_form(row["run_id"])

        def at(seq: int, run_seq: int) -> str:
            head = SEPARATOR.join((*self.opening, str(seq), run_id, str(run_seq), ""))
            digest = hashlib.sha256(head.encode("utf-8"))
            digest.update(tail_bytes)
            return digest.hexdigest()

        return at

    def verifies(self, row: Mapping[str, Any]) -> bool:
        """Whether a stored row's ``hash`` is this recipe's hash of its columns."""
        return entry_hash(self.canonical_text(row)) == row["hash"]


def _sql_literal(text: str) -> str:
    """``text`` as an SQL expression: a quoted literal, or chr() for the separator."""
    return f"chr({ord(text)})" if text == SEPARATOR else "'" + text.replace("'", "''") + "'"


RECIPES: dict[int, Recipe] = {
    1: Recipe(1, (), escaped=False),
    2: Recipe(2, ("v2",), escaped=True),
}
"""Every recipe a ledger may name, by number."""

LEGACY_RECIPE = RECIPES[1]
"""The recipe of a ledger without a recipe marker (written before markers existed)."""

CURRENT_RECIPE = RECIPES[2]
"""The recipe every new ledger is marked with and written in."""

CANONICAL_SQL = CURRENT_RECIPE.sql()
"""The current recipe's canonical text in SQL (what a fresh ledger is hashed with)."""


def marked_recipe(marker: str | None) -> Recipe | None:
    """The recipe a ledger's marker names: recipe 1 without a marker, None if unknown."""
    if marker is None:
        return LEGACY_RECIPE
    return next((r for n, r in RECIPES.items() if str(n) == marker), None)


def canonical_text(row: Mapping[str, Any], recipe: Recipe = CURRENT_RECIPE) -> str:
    """The canonical text of a row under ``recipe`` (the current one unless named)."""
    return recipe.canonical_text(row)


def position_hasher(row: Mapping[str, Any], recipe: Recipe = CURRENT_RECIPE
                    ) -> Callable[[int, int], str]:
    """`Recipe.position_hasher` of ``recipe`` (the current one unless named)."""
    return recipe.position_hasher(row)


def entry_hash(canonical: str) -> str:
    """The stored ``hash`` of an entry whose canonical text is ``canonical``."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def digests(data: Any, bounds: Sequence[int]) -> bytes:
    """The raw 32-byte SHA-256 of many canonical texts at once, concatenated.

    ``data`` (any bytes-like buffer) holds the texts back to back in UTF-8, text ``i``
    from ``bounds[i]`` to ``bounds[i + 1]`` (an Arrow string column's buffers, hashed
    without copying);
    hex-encoded, each digest is `entry_hash` of that text.
    """
    view, sha = memoryview(data), hashlib.sha256
    return b"".join([sha(view[start:end]).digest()
                     for start, end in itertools.pairwise(bounds)])


# --- the ledger digest of a ledger anchor ------------------------------------------


def ledger_digest(last_seq: int, entries: int, runs: int, hashes: Iterable[str]) -> str:
    """SHA-256 of the ledger up to ``last_seq``: its counts, then every entry's hash.

    The text is ``last_seq``, the number of entries and the number of runs up to it,
    joined by U+001F and followed by one more U+001F and the stored ``hash`` of every
    entry in ``seq`` order, back to back (``hashes`` yields that text in pieces). In
    SQL: ``sha256(max(seq) || chr(31) || count(*) || chr(31) || count(DISTINCT run_id)
    || chr(31) || string_agg(hash, '' ORDER BY seq))`` over ``seq <= last_seq``.
    """
    digest = hashlib.sha256(SEPARATOR.join((str(last_seq), str(entries), str(runs), ""))
                            .encode("utf-8"))
    for piece in hashes:
        digest.update(piece.encode("utf-8"))
    return digest.hexdigest()
