"""Lesson 11's self-checks: one hash recomputed by hand, a tamper only an anchor sees, and
a damaged ledger restored from its archive.

The names the checks read are the lesson's: what its cells made (``ledger``, ``ex2_copy``,
``ex2_anchors``, ``ex3_archive``, ``ex3_anchors``, ``ex3_damaged``) and the answer
variables (``ex1_seq``, ``ex1_hash``, ``ex2_check``, ``ex3_restored``, ``ex3_check``).

Exercise 1 cannot be passed by copying a stored hash: the check calls the learner's own
function on the row without its ``hash`` column, then on a row the ledger never held (its
output and role changed, with a backslash, a U+001F and a NULL in it), and wants the
recipe's hash of that row too. A function that looks the hash up, or returns a copied
value, gives the stored hash there, and is told so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import shown
from ...events import plural
from ...ledger.anchor import Anchor
from ...ledger.canonical import CURRENT_RECIPE, HASHED_COLUMNS, SEPARATOR, entry_hash
from ...ledger.replay import ReplayLedger
from ...ledger.verify import VerificationResult
from .expect import Count, Instance, ListOf, Text, Unfit
from .framework import Verdict, hint, passed, self_check

LEDGER = "a ledger (a ReplayLedger)"
CHECK = "what verify_chain() returns"
FUNCTION = "a function, def ex1_hash(row): ..."

PROBE_OUTPUT = "a row the ledger never held: a backslash \\ and a unit separator \x1f"
"""The output of the probe row: both characters recipe 2 escapes inside a value."""

ANCHOR_ONLY = frozenset({"rewritten", "run_removed", "truncated"})
"""Kinds a chain that agrees with itself can still show, against an anchor."""
SHOWN_IN_SECTION = "truncated"
"""The anchor-only damage the lesson itself demonstrates, in section 7 (exercise 2 asks
for another)."""

HEX_DIGITS = frozenset("0123456789abcdef")
DECIMAL_COLUMNS = ("uncertainty", "cost_usd", "carbon_g")


# --- exercise 1 --------------------------------------------------------------------------


@self_check(
    given={"ledger": Instance(ReplayLedger, "the lesson's ledger", kind=LEDGER)},
    answers={"ex1_seq": Count("the seq of the entry you recompute"),
             "ex1_hash": Instance(Callable, "your function: a row in, its hash out",
                                  kind=FUNCTION)})
def hash_by_hand(ledger: ReplayLedger, ex1_seq: int,
                 ex1_hash: Callable[[pd.Series], Any]) -> Verdict:
    """Exercise 1: the learner's function gives the stored hash of the entry at ex1_seq,
    from its row without the hash, and the recipe's hash of a row the ledger never held."""
    row, texts = _entry(ledger, ex1_seq)
    stored = row["hash"]
    if entry_hash(CURRENT_RECIPE.canonical_text(texts)) != stored:
        return hint(f"the entry at seq {ex1_seq} no longer matches its stored hash (was this "
                    "ledger tampered with?): pick an entry of the lesson's own ledger, untouched")
    given = row.drop(labels=["hash"])
    ours = _called(ex1_hash, given)
    if ours != stored:
        return hint(_mismatch_hint(ours, texts, given))
    probe, probe_texts = _probe(given, texts)
    theirs = _called(ex1_hash, probe)
    if theirs == stored:
        return hint("ex1_hash gives the stored hash of seq "
                    f"{ex1_seq} for a row the ledger never held (its output changed): it "
                    "should compute the hash from the row it is given, not look it up or "
                    "return a value copied from the hash column")
    if theirs != entry_hash(CURRENT_RECIPE.canonical_text(probe_texts)):
        return hint(_probe_hint(theirs, probe_texts))
    what = f"the {row['event_type']} entry" + (f" of {row['node_id']}"
                                                if isinstance(row["node_id"], str) else "")
    return passed(f"ex1_hash gives the stored hash of seq {ex1_seq} ({what}), and the recipe's "
                  "hash of a row the ledger never held (a NULL, a backslash and a U+001F in "
                  "it): you computed the hash from the row's values, not copied it")


def _entry(ledger: ReplayLedger, seq: int) -> tuple[pd.Series, dict[str, str | None]]:
    """The entry at ``seq``: its row as to_dataframe() gives it, and its columns' text."""
    frame = ledger.to_dataframe()
    if frame.empty:
        raise Unfit("the ledger has no entries yet: run the lesson's cells from the top")
    found = frame[frame["seq"] == seq]
    if found.empty:
        raise Unfit(f"ex1_seq: the ledger has no entry at seq {seq}: its seqs run from "
                    f"{int(frame['seq'].min())} to {int(frame['seq'].max())}")
    casts = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in (*HASHED_COLUMNS, "hash"))
    text = ledger.sql(f"SELECT {casts} FROM ledger_entries WHERE seq = {int(seq)}")
    texts = {c: (None if _is_null(v) else str(v)) for c, v in text.iloc[0].items()}
    return found.iloc[0].copy(), texts


def _probe(row: pd.Series, texts: dict[str, str | None]
           ) -> tuple[pd.Series, dict[str, str | None]]:
    """The row (and its texts) with another output and a NULL role: never stored."""
    probe, probe_texts = row.copy(), dict(texts)
    probe["output"], probe_texts["output"] = PROBE_OUTPUT, PROBE_OUTPUT
    probe["role"], probe_texts["role"] = None, None
    return probe, probe_texts


def _called(function: Callable[[pd.Series], Any], row: pd.Series) -> str:
    """What the learner's function returns for a copy of ``row``, as 64 hex digits; an
    error, or anything else, is a HINT."""
    try:
        value = function(row.copy())
    except KeyError as err:
        if err.args and err.args[0] == "hash":
            raise Unfit("ex1_hash reads the row's hash column, and the row it is given has "
                        "none: the hash is what you compute, from the other columns") from None
        raise Unfit(f"ex1_hash(row) raised KeyError: {err}: the row's columns are "
                    f"{', '.join(row.index)}") from None
    except Exception as err:  # the learner's own code: say what it raised
        raise Unfit(f"ex1_hash(row) raised {type(err).__name__}: {shown(str(err))}: run it on "
                    "a row of ledger.to_dataframe() yourself and read the traceback") from None
    if isinstance(value, (bytes, bytearray)) and len(value) == 32:
        raise Unfit("ex1_hash returns the 32 raw bytes of the digest: the ledger stores it as "
                    "64 hex digits (hexdigest(), not digest())")
    if not isinstance(value, str):
        raise Unfit(f"ex1_hash returned {shown(value)}: it should return the SHA-256 of the "
                    "row's canonical text as 64 hex digits (text)")
    if len(value.strip()) != 64 or not set(value.strip().lower()) <= HEX_DIGITS:
        raise Unfit(f"ex1_hash returned {shown(value)}: a SHA-256 in hex is 64 digits 0-9 "
                    "and a-f (hexdigest() of the UTF-8 bytes of the canonical text)")
    return value.strip().lower()


def _mismatch_hint(ours: str, texts: dict[str, str | None], row: pd.Series) -> str:
    """Where to look when the learner's hash of the stored row is not the stored one."""
    for reason, text in _slips(texts, row):
        if entry_hash(text) == ours:
            return f"ex1_hash does not give the stored hash: {reason}"
    return ("ex1_hash does not give the stored hash: build the canonical text as the recipe "
            "in section 3 says (the opening field, then every column but hash in table order, "
            "joined by U+001F) and compare it with yours field by field")


def _slips(texts: dict[str, str | None], row: pd.Series) -> list[tuple[str, str]]:
    """Canonical texts built with one common slip each, and what the slip is."""
    recipe = CURRENT_RECIPE

    def joined(fields: list[str], sep: str = SEPARATOR, opening: tuple[str, ...] = ("v2",)
               ) -> str:
        return sep.join((*opening, *fields))

    fields = [recipe.text_form(texts[c]) for c in HASHED_COLUMNS]
    slips = [("the text opens with the field v2, before seq", joined(fields, opening=()))]
    slips += [(f"fields are joined by the unit separator U+001F (chr(31)), not {sep!r}",
               joined(fields, sep)) for sep in ("|", ",", "", " ", "\t", "\n")]
    for null in ("None", "nan", "<NA>", "", "NULL"):
        slips.append((f"a NULL (None, NaN or <NA> in pandas) is written as \\N, not {null!r}",
                      joined([null if texts[c] is None else recipe.text_form(texts[c])
                              for c in HASHED_COLUMNS])))
    plain = [recipe.text_form(_plain_decimal(row[c])) if c in DECIMAL_COLUMNS
             and texts[c] is not None else recipe.text_form(texts[c]) for c in HASHED_COLUMNS]
    slips.append(("decimals are written with 9 digits after the point (f'{value:.9f}')",
                  joined(plain)))
    raw = ["\\N" if texts[c] is None else texts[c] for c in HASHED_COLUMNS]
    slips.append(("inside a value, each backslash is doubled and each U+001F written as the "
                  "four characters \\x1f", joined(raw)))
    with_hash = [*fields, recipe.text_form(texts["hash"])]
    slips.append(("every column but hash goes into the text", joined(with_hash)))
    return slips


def _plain_decimal(value: Any) -> str:
    """A decimal as Python writes a float, the slip the recipe's 9 digits avoid."""
    return str(float(value))


def _probe_hint(theirs: str, texts: dict[str, str | None]) -> str:
    """Where to look when the learner's hash of the probe row is not the recipe's."""
    unescaped = SEPARATOR.join(("v2", *("\\N" if texts[c] is None else texts[c]
                                        for c in HASHED_COLUMNS)))
    if entry_hash(unescaped) == theirs:
        return ("ex1_hash gives the right hash for the stored row, but not for a row whose "
                "output holds a backslash and a U+001F: inside a value, each backslash is "
                "doubled and each U+001F written as the four characters \\x1f (in that order)")
    return ("ex1_hash gives the right hash for the stored row, but not the recipe's hash for "
            "a row the ledger never held (another output, and a NULL role): make it follow "
            "every rule of the recipe in section 3, for any row it is given")


def _is_null(value: Any) -> bool:
    """NULL as pandas gives it: None, NaN or NA."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# --- exercise 2 --------------------------------------------------------------------------


@self_check(
    given={"ex2_copy": Instance(ReplayLedger, "the copy you tamper with", kind=LEDGER),
           "ex2_anchors": ListOf(Instance(Anchor, kind="an Anchor"),
                                 "the anchors taken before the tamper", min_len=1,
                                 kind="a list of anchors")},
    answers={"ex2_check": Instance(VerificationResult, "ex2_copy verified against ex2_anchors",
                                   kind=CHECK)})
def anchor_only(ex2_copy: ReplayLedger, ex2_anchors: list[Anchor],
                ex2_check: VerificationResult) -> Verdict:
    """Exercise 2: the copy verifies VALID on its own, its anchors name the damage, and
    ex2_check is that verification."""
    plain = ex2_copy.verify_chain()
    if not plain.valid:
        return hint(f"plain verification of ex2_copy already finds {_kinds(plain)}: the table "
                    "shows that damage by itself; make the chain agree with itself again: "
                    "every later link and hash recomputed, and the run's record (step 3)")
    anchored = ex2_copy.verify_chain(anchor=ex2_anchors)
    if anchored.valid:
        return hint("ex2_copy verifies against ex2_anchors too: nothing they cover has changed "
                    "(or they were taken after your change): change what an entry of ex2_copy "
                    "says, then recompute the chain after it (steps 2 and 3)")
    if _findings(ex2_check) != _findings(anchored):
        return hint("ex2_check is not ex2_copy verified against ex2_anchors as the copy is "
                    "now: verify it with anchor=ex2_anchors after your change")
    kinds = {p.kind for p in anchored.problems}
    if kinds == {SHOWN_IN_SECTION}:
        return hint("that is the truncation of section 7: this time change what an entry says "
                    "and make the chain agree with itself (steps 2 and 3)")
    if not kinds <= ANCHOR_ONLY:
        return hint(f"the anchors name {_kinds(anchored)}: make the chain agree with itself, "
                    "so that plain verification finds nothing (step 3)")
    return passed(f"plain verification says VALID, and the anchors name {_kinds(anchored)}: "
                  "the chain agrees with itself, so only the copy of its head kept outside "
                  "the table shows that it changed")


def _findings(check: VerificationResult) -> list[tuple[Any, ...]]:
    """What a verification found, comparable between two verifications."""
    return [(p.kind, p.seq, p.run_id) for p in check.problems]


def _kinds(check: VerificationResult) -> str:
    """The kinds of damage a verification named, each once, in its order."""
    return ", ".join(dict.fromkeys(p.kind for p in check.problems))


# --- exercise 3 --------------------------------------------------------------------------


@self_check(
    given={"ex3_archive": ListOf(Text("an exported run's file"), "the archive's files",
                                 min_len=1, kind="a list of file paths"),
           "ex3_anchors": Text("the anchors file, kept outside the ledger"),
           "ex3_damaged": Instance(ReplayLedger, "the damaged ledger", kind=LEDGER)},
    answers={"ex3_restored": Instance(ReplayLedger, "the ledger you restored", kind=LEDGER),
             "ex3_check": Instance(VerificationResult, "ex3_restored verified against "
                                   "ex3_anchors", kind=CHECK)})
def restored_archive(ex3_archive: list[str], ex3_anchors: str, ex3_damaged: ReplayLedger,
                     ex3_restored: ReplayLedger, ex3_check: VerificationResult) -> Verdict:
    """Exercise 3: every run of the archive imported, unchanged, into a new ledger, which
    verifies VALID against the anchors taken before the damage; ex3_check says so."""
    if _same_file(ex3_restored, ex3_damaged):
        return hint("ex3_restored is the damaged ledger itself: restore into a new, empty "
                    "ledger (new_ledger(...)) and keep the damaged one as evidence")
    archived = [_exported_run(path) for path in ex3_archive]
    held = _runs_held(ex3_restored)
    missing = [r for r in archived if r not in held]
    if missing:
        return hint(f"ex3_restored holds {len(archived) - len(missing)} of the archive's "
                    f"{plural(len(archived), 'run')}: import every file of ex3_archive, "
                    "oldest first")
    if len(held) != len(archived):
        return hint("ex3_restored holds runs that are not in the archive: restore into a new, "
                    "empty ledger")
    check = ex3_restored.verify_chain(anchor=ex3_anchors)
    if not check.valid:
        return hint(f"ex3_restored does not verify against ex3_anchors ({_kinds(check)}): "
                    "import the archive's files unchanged, oldest first, into a new ledger")
    if ex3_check.anchors_checked == 0:
        return hint("ex3_check was verified without the anchors: pass anchor=ex3_anchors, "
                    "since without them a forged archive would verify too")
    if not ex3_check.valid or ex3_check.entries_checked != check.entries_checked:
        return hint("ex3_check is not ex3_restored verified as it is now: verify it again, "
                    "after the imports")
    return passed(f"the archive's {plural(len(archived), 'run')}, imported into a new ledger, "
                  f"verify VALID against the anchors taken before the damage "
                  f"({plural(check.entries_checked, 'entry', 'entries')}): it is the ledger "
                  "as it was, and the damaged one is kept as evidence")


def _exported_run(path: str) -> str:
    """The run id an exported run's file holds; a HINT when it is not such a file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise Unfit(f"ex3_archive names {path!r}, which is not an exported run "
                    f"({type(err).__name__}): run the exercise's first cell again") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("run_id"), str):
        raise Unfit(f"ex3_archive names {path!r}, which is not an exported run: run the "
                    "exercise's first cell again")
    return data["run_id"]


def _runs_held(ledger: ReplayLedger) -> list[str]:
    """The runs the ledger holds entries of, oldest first."""
    frame = ledger.sql("SELECT run_id FROM ledger_entries GROUP BY run_id ORDER BY min(seq)")
    return [str(r) for r in frame["run_id"]]


def _same_file(one: ReplayLedger, other: ReplayLedger) -> bool:
    """Whether two ledgers are one database."""
    def where(ledger: ReplayLedger) -> str:
        text = ledger.location
        return text if "://" in text else os.path.realpath(text)
    return where(one) == where(other)

