"""The one hash recipe: an entry's canonical text and its SHA-256, in Python and in SQL.

An entry's ``hash`` is the SHA-256 (64 lowercase hex digits) of its canonical text: the
text form of every stored column but ``hash`` (``prev_hash`` included), in table order,
joined by U+001F, NULL written as ``\\N``, encoded as UTF-8. Writing (`rows.chain_rows`),
verifying (`verify`) and forensics all hash through this module, so the recipe cannot
drift between them; docs/ledger.md prints it for learners, and
tests/test_ledger_recipe.py runs that printed copy against real ledgers.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .schema import ENTRY_COLUMNS

SEPARATOR = "\x1f"
"""ASCII unit separator between fields: JSON text and our ids never contain it raw."""

NULL_TEXT = "\\N"
"""How a NULL column is written in the canonical text (backslash, capital N)."""

HASHED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in ENTRY_COLUMNS if name != "hash")
"""Every stored column but ``hash`` itself, in this order, makes the canonical text."""

HEX_WIDTH = 64
"""Characters of a hash written in hex (``hash`` and ``prev_hash``)."""

CANONICAL_SQL = f"concat_ws(chr({ord(SEPARATOR)}), " + ", ".join(
    f"coalesce(CAST({name} AS VARCHAR), '{NULL_TEXT}')" for name in HASHED_COLUMNS) + ")"
"""SQL (DuckDB and PostgreSQL) that rebuilds an entry's canonical text from its columns.

The stored text of a column is its canonical text: DECIMAL(18, 9) prints with 9 digits
after the point, as `rows.decimal_text` writes it. One ``concat_ws`` call (no argument is
NULL after coalesce) builds the same text as a chain of ``||``, about twice as fast."""

_AFTER_POSITION = HASHED_COLUMNS.index("run_seq") + 1
"""The text opens with seq, run_id, run_seq (the table's order); the rest follows them."""


def text_form(value: Any) -> str:
    """A column value as it appears in the canonical text."""
    return NULL_TEXT if value is None else str(value)


def canonical_text(row: Mapping[str, Any]) -> str:
    """The canonical text of a row (a mapping of column names to stored values)."""
    return SEPARATOR.join(text_form(row[name]) for name in HASHED_COLUMNS)


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


def position_hasher(row: Mapping[str, Any]) -> Callable[[int, int], str]:
    """``at(seq, run_seq)``: the hash ``row`` would have at that ledger and run position.

    Everything after ``run_seq`` is encoded once, so trying many positions for one
    entry (as forensics does to find where a moved entry belongs) costs a short hash each.
    """
    tail = SEPARATOR.join(text_form(row[c]) for c in HASHED_COLUMNS[_AFTER_POSITION:])
    tail_bytes, run_id = tail.encode("utf-8"), text_form(row["run_id"])

    def at(seq: int, run_seq: int) -> str:
        head = SEPARATOR.join((str(seq), run_id, str(run_seq), ""))
        digest = hashlib.sha256(head.encode("utf-8"))
        digest.update(tail_bytes)
        return digest.hexdigest()

    return at
