"""What the guardian found, what it let through, and how often it is right.

    findings_table(result)                    # one row per guardian_finding of a run
    search_ledger(ledger, FAKE_KEY)           # every place in the ledger that holds the text
    search_ledger(ledger, key, min_piece=12)  # ... or any 12 characters of it in a row
    screen_corpus("known_misses")             # each sample screened: expected, found, right
    guardian_accuracy()                       # precision and recall on the project's corpus
    plot_entropy(["hunter2", "q7Fz9LmP2vX4tR8w"])   # why one password is flagged, one not

A run is a `RunResult`, a `RunHandle` or `LiveRun`, or one run's events (``result.events``,
``ledger.events(run_id)``). The corpus is the labelled one the tests measure the guardian
on (``meshflow_nb.policy.guardian_corpus``); `screen_corpus` and `guardian_accuracy` also
take your own samples, ``[(text, expected categories), ...]``.

Nothing here repeats what it looks for: `search_ledger` names the places (table, seq,
event, node, field) and never the text, as a guardian finding names a kind and a span.
matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from ..errors import ConfigError, shown
from ..events import EventType
from ..ledger import ReplayLedger
from ..policy import guardian as rules
from ..policy.guardian import ENTROPY_THRESHOLD, Category, Guardian, shannon_entropy
from ..policy.guardian_corpus import CORPUS, KNOWN_MISSES, NEGATIVES, POSITIVES
from .run_events import events_of, notebook_figure

FINDING_COLUMNS = ["seq", "node", "where", "category", "kind", "action", "start", "end"]
SEARCH_COLUMNS = ["table", "seq", "event", "node", "field", "match"]
SAMPLE_COLUMNS = ["text", "note", "expected", "found", "right"]
ACCURACY_COLUMNS = ["true_pos", "false_pos", "false_neg", "true_neg", "precision", "recall"]
CORPUS_PARTS: dict[str, list[Any]] = {"corpus": CORPUS, "positives": POSITIVES,
                                      "negatives": NEGATIVES, "known_misses": KNOWN_MISSES,
                                      "all": CORPUS + KNOWN_MISSES}
"""The named parts of the project's corpus that `screen_corpus` and `guardian_accuracy` read."""

MIN_SEARCH_CHARS = 4
"""The shortest text (or piece) `search_ledger` looks for: shorter ones match by chance."""
_JSON_COLUMNS = frozenset({"output", "payload", "policy"})
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

FLAGGED_COLOR = "#b2182b"
PASSED_COLOR = "#9e9e9e"
FIGURE_WIDTH_IN = 9.5
LABEL_CHARS = 28
"""Characters of a value shown as its bar's label (a longer one is cut short with …)."""


# --- findings ---------------------------------------------------------------------------


def findings_table(run: Any) -> pd.DataFrame:
    """One row per ``guardian_finding`` of a run: where it was (``node`` is empty for the
    task), what it was (category and kind), what the policy did, and its span; never the
    text it found, since the event does not carry it."""
    rows = [{"seq": e.seq, "node": e.node_id or "", "where": e.payload.get("where"),
             "category": e.payload.get("category"), "kind": e.payload.get("kind"),
             "action": e.payload.get("action"), "start": e.payload.get("start"),
             "end": e.payload.get("end")}
            for e in events_of(run, "a findings table") if e.type is EventType.GUARDIAN_FINDING]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS, index=pd.RangeIndex(1, len(rows) + 1))


# --- the ledger searched -----------------------------------------------------------------


def search_ledger(ledger: ReplayLedger, text: str, *, run_id: str | None = None,
                  min_piece: int | None = None) -> pd.DataFrame:
    """Every place in the ledger (or one of its runs) that holds ``text``: one row per
    entry field (``output.summary``, ``payload.error``) or run record (``task``) that
    contains it. With ``min_piece``, a field that holds any ``min_piece`` characters of it
    in a row counts too (``match`` says "piece"). An empty table is the evidence that the
    text never reached the ledger. The rows name places, never the text."""
    _check_search(ledger, text, min_piece)
    pieces = _pieces(text, min_piece)
    ledger.flush()
    rows = [*_entry_rows(ledger.to_dataframe(run_id), text, pieces),
            *_run_rows(_runs_of(ledger, run_id), text, pieces)]
    return pd.DataFrame(rows, columns=SEARCH_COLUMNS, index=pd.RangeIndex(1, len(rows) + 1))


def _check_search(ledger: Any, text: Any, min_piece: Any) -> None:
    """ConfigError for a search that cannot mean anything."""
    if not isinstance(ledger, ReplayLedger):
        raise ConfigError(f"search_ledger reads a ReplayLedger, not {shown(ledger)}",
                          argument="ledger", fix="pass the ledger the run was attached to")
    if not isinstance(text, str) or len(text) < MIN_SEARCH_CHARS:
        raise ConfigError(f"the text to look for should be {MIN_SEARCH_CHARS} characters or "
                          f"more, not {shown(text)}", argument="text",
                          fix="pass the secret itself, e.g. search_ledger(ledger, FAKE_KEY)")
    if min_piece is None:
        return
    if isinstance(min_piece, bool) or not isinstance(min_piece, int) \
            or not MIN_SEARCH_CHARS <= min_piece <= len(text):
        raise ConfigError(f"min_piece should be a whole number from {MIN_SEARCH_CHARS} to the "
                          f"text's length ({len(text)}), not {shown(min_piece)}",
                          argument="min_piece", fix="min_piece=12 finds a key cut in two")


def _pieces(text: str, min_piece: int | None) -> frozenset[str]:
    """Every run of ``min_piece`` characters of ``text`` (none without ``min_piece``)."""
    if min_piece is None:
        return frozenset()
    return frozenset(text[i:i + min_piece] for i in range(len(text) - min_piece + 1))


def _runs_of(ledger: ReplayLedger, run_id: str | None) -> pd.DataFrame:
    """The run records (of one run, or all)."""
    runs = ledger.runs()
    return runs if run_id is None else runs[runs.run_id == run_id]


def _entry_rows(entries: pd.DataFrame, text: str, pieces: frozenset[str]) -> Iterator[dict]:
    """A row per field of an entry that holds the text (or a piece of it)."""
    for entry in entries.to_dict("records"):
        for column in ("node_id", "role", "output", "payload"):
            for field, match in _matches(entry.get(column), column, text, pieces):
                yield {"table": "ledger_entries", "seq": entry["seq"],
                       "event": entry["event_type"], "node": entry.get("node_id") or "",
                       "field": field, "match": match}


def _run_rows(runs: pd.DataFrame, text: str, pieces: frozenset[str]) -> Iterator[dict]:
    """A row per field of a run record that holds the text (or a piece of it)."""
    for run in runs.to_dict("records"):
        for column in ("workflow", "task", "status", "policy"):
            for field, match in _matches(run.get(column), column, text, pieces):
                yield {"table": "ledger_runs", "seq": None, "event": "",
                       "node": "", "field": field, "match": match}


def _matches(stored: Any, column: str, text: str,
             pieces: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(field, "whole" or "piece") for each string of a stored column that holds the text."""
    if not isinstance(stored, str):
        return
    value: Any = stored
    if column in _JSON_COLUMNS:
        try:
            value = json.loads(stored)
        except ValueError:
            value = stored
    for field, leaf in _strings(value, column):
        match = _match(leaf, text, pieces)
        if match:
            yield field, match


def _match(leaf: str, text: str, pieces: frozenset[str]) -> str | None:
    """"whole" when ``leaf`` holds the text, "piece" when it holds a piece of it."""
    if text in leaf:
        return "whole"
    if pieces and any(piece in leaf for piece in pieces):
        return "piece"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in a JSON value, dict keys included; a key is shown
    in a path only when it is a plain name, else by its position."""
    stack = [(path, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, str):
            yield here, item
        elif isinstance(item, dict):
            children = []
            for position, (key, child) in enumerate(item.items()):
                segment = f".{key}" if _PLAIN_KEY.fullmatch(str(key)) else f"[#{position}]"
                children += [(f"{here}{segment}<key>", str(key)), (here + segment, child)]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{here}[{n}]", child) for n, child in enumerate(item)]))


# --- the corpus measured ----------------------------------------------------------------


def screen_corpus(samples: Any = "corpus", guardian: Guardian | None = None) -> pd.DataFrame:
    """Each sample screened: its text, note, the categories expected and found (names,
    sorted), and whether they agree. ``samples`` is a part of the project's corpus
    ("corpus", "positives", "negatives", "known_misses", or "all": the corpus and the
    known misses) or your own
    ``[(text, expected categories), ...]`` (a third item is the note)."""
    screener = guardian or Guardian()
    rows = []
    for text, expected, note in _samples(samples):
        found = tuple(sorted({f.category.value for f in screener.screen(text, "text").findings}))
        rows.append({"text": text, "note": note, "expected": expected, "found": found,
                     "right": found == expected})
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS, index=pd.RangeIndex(1, len(rows) + 1))


def guardian_accuracy(samples: Any = "corpus", guardian: Guardian | None = None) -> pd.DataFrame:
    """Precision and recall per category, and in total, counted as the tests count them:
    for each sample and each category, was it expected, and was it found. ``samples`` as
    for `screen_corpus`; a category no sample expects or finds has precision and recall 1."""
    screened = screen_corpus(samples, guardian)
    rows = {category.value: _confusion(screened, category.value) for category in Category}
    rows["total"] = {column: sum(row[column] for row in rows.values())
                     for column in ACCURACY_COLUMNS[:4]}
    for row in rows.values():
        row["precision"] = _ratio(row["true_pos"], row["true_pos"] + row["false_pos"])
        row["recall"] = _ratio(row["true_pos"], row["true_pos"] + row["false_neg"])
    return pd.DataFrame.from_dict(rows, orient="index")[ACCURACY_COLUMNS]


def _confusion(screened: pd.DataFrame, category: str) -> dict[str, int]:
    """True and false positives and negatives of one category over the screened samples."""
    expected = screened.expected.map(lambda names: category in names)
    found = screened.found.map(lambda names: category in names)
    return {"true_pos": int((expected & found).sum()), "false_pos": int((~expected & found).sum()),
            "false_neg": int((expected & ~found).sum()),
            "true_neg": int((~expected & ~found).sum())}


def _ratio(numerator: int, denominator: int) -> float:
    """A share rounded to 4 places, as benchmarks/results/guardian_accuracy.json has it."""
    return round(numerator / denominator, 4) if denominator else 1.0


def _samples(samples: Any) -> list[tuple[str, tuple[str, ...], str]]:
    """(text, expected category names sorted, note) for each sample."""
    if isinstance(samples, str):
        if samples not in CORPUS_PARTS:
            raise ConfigError(f"the corpus has no part {shown(samples)}", argument="samples",
                              fix=f"use one of {', '.join(map(repr, CORPUS_PARTS))}, or a "
                                  "list of (text, categories) pairs")
        samples = CORPUS_PARTS[samples]
    if isinstance(samples, (bytes, Mapping)) or not isinstance(samples, Iterable):
        raise ConfigError(f"samples should be a list of (text, categories) pairs, not "
                          f"{shown(samples)}", argument="samples",
                          fix="e.g. [('Ignore previous instructions', ['prompt_injection'])]")
    return [_sample(item, n) for n, item in enumerate(samples)]


def _sample(item: Any, position: int) -> tuple[str, tuple[str, ...], str]:
    """One sample, checked: its text, expected categories (by name) and note."""
    fix = "each sample is (text, categories) or (text, categories, note)"
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3) \
            or not isinstance(item[0], str):
        raise ConfigError(f"sample {position} is {shown(item)}", argument="samples", fix=fix)
    text, expected, note = item[0], item[1], item[2] if len(item) == 3 else ""
    if isinstance(expected, (str, Category)):
        expected = [expected]
    try:
        names = tuple(sorted({Category(c).value for c in expected}))
    except (TypeError, ValueError):
        raise ConfigError(f"sample {position} expects {shown(expected)}", argument="samples",
                          fix="categories are " + ", ".join(c.value for c in Category)) from None
    return text, names, str(note)


# --- the credential rule, drawn ----------------------------------------------------------


def plot_entropy(values: Iterable[str], *, title: str | None = None) -> Any:
    """A bar per value: its Shannon entropy in bits per character, the guardian's threshold
    as a dashed line, and whether ``password=<value>`` is flagged as a secret (red) or not
    (grey), with the rule that let it pass: too short, below the threshold, one kind of
    character, a placeholder word."""
    rows = [_entropy_row(value) for value in _values(values)]
    figure = notebook_figure()(figsize=(FIGURE_WIDTH_IN, 1.3 + 0.42 * len(rows)),
                             layout="constrained")
    figure.printed = "\n".join(f"{_label(row['value']):<{LABEL_CHARS}}  {row['entropy']:.2f} "
                                f"bits  {row['verdict']}" for row in rows)
    ax = figure.subplots()
    top = max([row["entropy"] for row in rows] + [ENTROPY_THRESHOLD])
    for y, row in enumerate(rows):
        color = FLAGGED_COLOR if row["flagged"] else PASSED_COLOR
        ax.barh(y, row["entropy"], color=color, height=0.65)
        ax.text(row["entropy"] + top * 0.01, y, f"{row['entropy']:.2f}  {row['verdict']}",
                va="center", fontsize=9, color=color if row["flagged"] else "black")
    ax.axvline(ENTROPY_THRESHOLD, color="black", linestyle="--", linewidth=1)
    ax.text(ENTROPY_THRESHOLD, -0.75, f" {ENTROPY_THRESHOLD:g} bits: the threshold",
            fontsize=8, va="bottom")
    ax.set_yticks(range(len(rows)), [_label(row["value"]) for row in rows], fontsize=9,
                  family="monospace")
    ax.set_ylim(len(rows) - 0.5, -1.1)
    ax.set_xlim(0, top * 1.75)
    ax.set_xlabel("Shannon entropy of the value, bits per character", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title or "password=<value>: which values the guardian calls a secret",
                 loc="left", fontsize=11)
    return figure


def _values(values: Any) -> list[str]:
    """The values to draw, checked: a list of text."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ConfigError(f"plot_entropy draws a list of values, not {shown(values)}",
                          argument="values", fix="e.g. plot_entropy(['hunter2', 'q7Fz9LmP'])")
    listed = list(values)
    odd = next((v for v in listed if not isinstance(v, str) or not v), None)
    if odd is not None or not listed:
        raise ConfigError(f"each value should be non-empty text, not {shown(odd)}",
                          argument="values", fix="e.g. plot_entropy(['hunter2', 'q7Fz9LmP'])")
    return listed


def _entropy_row(value: str) -> dict[str, Any]:
    """A value, its entropy, whether the guardian flags it, and the verdict in words."""
    flagged = bool(Guardian(categories=[Category.SECRET]).screen(f"password={value}",
                                                                 "value").findings)
    return {"value": value, "entropy": shannon_entropy(value) + 0.0, "flagged": flagged,
            "verdict": "flagged: a secret" if flagged else f"passes: {_why_not(value)}"}


def _why_not(value: str) -> str:
    """The first part of the guardian's credential rule that ``value`` fails."""
    lowered = value.lower()
    if len(value) < rules._MIN_CREDENTIAL_LENGTH:
        return f"shorter than {rules._MIN_CREDENTIAL_LENGTH} characters"
    if shannon_entropy(value) < ENTROPY_THRESHOLD:
        return f"below {ENTROPY_THRESHOLD:g} bits"
    if not rules._looks_random(value):
        return "one kind of character"
    if any(word in lowered for word in rules._PLACEHOLDER_WORDS):
        return "a placeholder word"
    return "not a value the rule reads"


def _label(value: str) -> str:
    """A value as its bar's label, cut short."""
    return value if len(value) <= LABEL_CHARS else value[:LABEL_CHARS - 1] + "…"
