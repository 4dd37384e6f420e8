"""The ledger explorer: the ledger as a table, with the verifier's verdict on every row.

    view = explore(ledger)                 # or explore(ledger, run_id, anchor=...)
    view = explore(ledger, node_id="writer", event_type="node_complete")   # filters
    view                                   # in a notebook: verdict banner + compact table
    view.damaged()                         # only the rows the verifier names
    print(view)                            # plain text, for papermill and GitHub

Framework-free: pandas only, so the notebook widgets can build on it and the tests can
run it without Jupyter. The notebook view is six columns (seq, chain status, run, node,
event, summary) that fit a JupyterLab cell; each row's full entry is folded in a
``<details>`` element, damaged rows are red with the verifier's sentence under them, and
the table scrolls inside a bounded box under a sticky header. The HTML is a ``<style>``
block, inline styles and a ``<table>``: no JavaScript, nothing fetched from a CDN.
docs/ledger-explorer.md shows it in the course's exercise 4.
"""

from __future__ import annotations

import html
import json
import os
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import ConfigError, shown
from ..events import BOOKKEEPING_KEYS, EventType, headline, short_text
from ..ledger.anchor import Anchor
from ..ledger.forensics import Finding
from ..ledger.replay import ReplayLedger
from ..ledger.verify import VerificationResult

OK = "ok"
"""``chain_status`` of a row no problem names."""

PREVIEW_CHARS = 80
"""Characters of ``output`` kept in ``output_preview``."""

SUMMARY_CHARS = 100
"""Longest one-line ``summary`` of an entry (its payload's headline and its output)."""

HASH_CHARS = 12
"""Characters of a hash shown in the styled table (the frame keeps all 64)."""

RUN_CHARS = 8
"""Characters of a run id shown in the compact table and the text (the frame keeps it all)."""

HASH_COLUMNS = ("prev_hash", "hash")

DAMAGED_STYLE = "background-color: #f8d7da; color: #58151c"
"""A damaged row: red-ish, readable in light and dark themes (inline, so it survives
sanitizers that drop ``<style>`` blocks)."""

DAMAGED_CLASS = "mf-damaged"
"""The CSS class of a damaged row, and of the row with its sentence under it."""

TEXT_WIDTH = 110
"""Longest line of the plain-text view."""

TEXT_COLUMNS = [("seq", 5), ("chain_status", 12), ("run", RUN_CHARS), ("node", 12),
                ("event", 16), ("summary", 0)]
"""The columns of the plain-text table and their widths (0: the rest of the line)."""

HTML_COLUMNS = [("seq", "3.5em"), ("chain status", "9.5em"), ("run", "6.5em"),
                ("node", "8.5em"), ("event", "9.5em"), ("summary", "auto")]
"""The visible columns of the notebook table and their widths."""

DETAIL_FIELDS = ("run_id", "run_seq", "ts", "role", "uncertainty", "cost_usd", "tokens_in",
                 "tokens_out", "carbon_g", "prev_hash", "hash")
"""The entry's fields shown, with its payload, when a row is opened."""

FILTER_WORDS = {"node_id": "nodes", "event_type": "event types"}
"""What the values of each filter's column are called in a sentence."""

LISTED = 8
"""How many run ids, nodes or damaged rows a sentence lists before "and N more"."""

AnchorArg = Anchor | Iterable[Anchor] | str | os.PathLike | None

STYLE = """<style>
.mf-ledger{max-width:100%;line-height:1.4}
.mf-ledger .mf-scroll{max-height:28em;overflow:auto;max-width:100%}
.mf-ledger table.mf-table{width:100%;max-width:100%;table-layout:fixed;
border-collapse:collapse;margin:0}
.mf-ledger table.mf-table th,.mf-ledger table.mf-table td{text-align:left;vertical-align:top;
padding:2px 6px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:none}
.mf-ledger table.mf-table thead th{position:sticky;top:0;z-index:1;
background:var(--jp-layout-color1,#fff);border-bottom:1px solid var(--jp-border-color1,#ccc)}
.mf-ledger details>summary{cursor:pointer;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.mf-ledger details pre{white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;
max-height:20em;overflow:auto;margin:2px 0;font-size:11px}
.mf-ledger table.mf-table td.mf-sentence{white-space:normal;overflow-wrap:anywhere;
word-break:break-word}
.mf-ledger .mf-bad{font-weight:bold}
</style>"""
"""The table's CSS, scoped to ``.mf-ledger`` (the essentials are repeated inline)."""


def explore(ledger: ReplayLedger, run_id: str | None = None, anchor: AnchorArg = None, *,
            node_id: str | None = None, event_type: str | EventType | None = None,
            ) -> LedgerView:
    """Read the ledger (or one run), verify it, and pair each row with its problems.

    ``run_id`` (a full id, or the start the table shows) limits the verification to
    that run; ``node_id`` and ``event_type`` only hide rows. A bad value is a
    `ConfigError` naming the argument; a node no row has gives an empty view that says so.
    """
    chosen = resolve_run(ledger, run_id)
    filters = {"node_id": text_filter(node_id, "node_id"),
               "event_type": event_type_filter(event_type)}
    check = ledger.verify_chain(chosen, anchor)
    every = annotate(ledger.to_dataframe(chosen), check.problems)
    return LedgerView(select(every, filters), check,
                      {k: v for k, v in filters.items() if v is not None}, every)


def resolve_run(ledger: ReplayLedger, run_id: object) -> str | None:
    """The full id of the run ``run_id`` names (itself or a unique start), or None for all."""
    if run_id is None:
        return None
    if not isinstance(run_id, str):
        raise ConfigError(f"run_id must be a run id (a str) or None, not {shown(run_id)}",
                          argument="run_id", fix="pass e.g. run_id=result.run_id, or leave "
                                                 "it out to see every run")
    known = _known_runs(ledger)
    matches = [r for r in known if r == run_id] or (
        [r for r in known if r.startswith(run_id)] if len(run_id) >= 4 else [])
    if len(matches) == 1:
        return matches[0]
    what = "is the start of several runs" if matches else "is not a run of this ledger"
    raise ConfigError(f"run_id={run_id!r} {what}", argument="run_id",
                      fix=f"pass one of {_listed(matches or known) or 'no runs yet'}, or "
                          "leave run_id out to see every run")


def _known_runs(ledger: ReplayLedger) -> list[str]:
    """Every run the ledger has a record or entries of, in the order of their records."""
    runs = ledger.runs()
    recorded = [] if runs.empty else [str(r) for r in runs["run_id"]]
    entries = ledger.sql("SELECT DISTINCT run_id FROM ledger_entries")
    return list(dict.fromkeys([*recorded, *sorted(str(r) for r in entries["run_id"])]))


def text_filter(value: object, argument: str) -> str | None:
    """A filter value: a non-empty string, or None for no filter."""
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigError(f"{argument} must be a non-empty str or None, not {shown(value)}",
                      argument=argument, fix=f"pass e.g. {argument}='writer', or leave "
                                             f"{argument} out to see every row")


def event_type_filter(value: object) -> str | None:
    """The event type a filter names (an `EventType` or its value), or None for no filter."""
    if isinstance(value, EventType):
        return value.value
    value = text_filter(value, "event_type")
    if value is None or value in {e.value for e in EventType}:
        return value
    raise ConfigError(f"event_type={value!r} is not an event type", argument="event_type",
                      fix=f"pass one of {', '.join(e.value for e in EventType)}")


def annotate(entries: pd.DataFrame, problems: list[Finding]) -> pd.DataFrame:
    """A copy of ``entries`` with ``output_preview``, ``summary``, ``chain_status`` and
    ``problem``."""
    frame = entries.reset_index(drop=True).copy()
    frame["output_preview"] = [_preview(v) for v in frame["output"]]
    frame["summary"] = [entry_summary(p, o) for p, o in zip(frame["payload"], frame["output"],
                                                            strict=True)]
    by_seq = _problems_by_seq(problems)
    frame["chain_status"] = [_status(by_seq.get(int(s), [])) for s in frame["seq"]]
    frame["problem"] = ["; ".join(p.message for p in by_seq.get(int(s), []))
                        for s in frame["seq"]]
    return frame


def select(frame: pd.DataFrame, filters: Mapping[str, str | None]) -> pd.DataFrame:
    """The rows whose columns equal every filter that is set."""
    mask = pd.Series(True, index=frame.index)
    for column, value in filters.items():
        if value is not None:
            mask &= frame[column] == value
    return frame[mask]


def entry_summary(payload: object, output: object) -> str:
    """One line about an entry: its payload's headline items, then its output."""
    data, said = _parsed(payload), _parsed(output)
    parts = ([f"{k}={short_text(v)}" for k, v in headline(data, skip=BOOKKEEPING_KEYS)]
             if isinstance(data, dict) else [])
    if said is not None:
        parts.append(short_text(said if isinstance(said, str) else _compact(said)))
    if not parts and data not in (None, {}, ""):
        parts.append(_items(data))
    return short_text(" · ".join(parts), SUMMARY_CHARS)


def _items(data: object) -> str:
    """A payload as ``key=value`` pairs (a list as its items, empty values left out), or
    as it is when not a dict."""
    if not isinstance(data, dict):
        return data if isinstance(data, str) else _compact(data)
    flat = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in data.items()
            if v not in (None, "", [], {})}
    return " · ".join(f"{k}={v if isinstance(v, str) else _compact(v)}" for k, v in flat.items())


def _missing(value: object) -> bool:
    """NULL as pandas gives it: None, NaN or NA."""
    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def _parsed(text: object) -> Any:
    """A JSON column's value (None for NULL; the raw text when it is not JSON)."""
    if _missing(text):
        return None
    try:
        return json.loads(str(text))
    except ValueError:
        return str(text)


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _preview(output: object) -> str:
    """The first characters of an output on one line (NULL is empty)."""
    if _missing(output):
        return ""
    return " ".join(str(output).split())[:PREVIEW_CHARS]


def _problems_by_seq(problems: list[Finding]) -> dict[int, list[Finding]]:
    grouped: dict[int, list[Finding]] = {}
    for problem in problems:
        if problem.seq is not None:
            grouped.setdefault(int(problem.seq), []).append(problem)
    return grouped


def _status(problems: list[Finding]) -> str:
    """``ok``, or the damage kinds of the row's problems (usually exactly one)."""
    kinds = dict.fromkeys(p.kind for p in problems)
    return ", ".join(kinds) if kinds else OK


def _listed(items: list[str], limit: int = LISTED) -> str:
    """``a, b, c`` or ``a, b, ... and 4 more``."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class LedgerView:
    """The ledger's entries with their chain status, and the verification behind it."""

    frame: pd.DataFrame
    """The rows shown: every entry verified, less those the filters hide."""
    check: VerificationResult
    filters: dict[str, str] = field(default_factory=dict)
    """The node_id and event_type filters applied to ``frame`` (empty: none)."""
    unfiltered: pd.DataFrame | None = None
    """Every entry verified, before the filters (None: the same as ``frame``)."""

    @property
    def scope(self) -> pd.DataFrame:
        """Every entry the verification covered, whatever the filters hide."""
        return self.frame if self.unfiltered is None else self.unfiltered

    def damaged(self) -> pd.DataFrame:
        """Only the rows a problem names."""
        return self.frame[self._damaged_mask()]

    def _damaged_mask(self) -> pd.Series:
        return self.frame["chain_status"] != OK

    def unplaced(self) -> list[Finding]:
        """Problems with no row to show them on: whole runs, the whole ledger, and
        removed entries."""
        present = {int(s) for s in self.scope["seq"]}
        return [p for p in self.check.problems
                if p.seq is None or int(p.seq) not in present]

    def _off_row(self) -> list[Finding]:
        """Problems of a whole run or of the whole ledger (no seq at all)."""
        return [p for p in self.check.problems if p.seq is None]

    def _gone(self) -> list[Finding]:
        """Problems at a seq that is no longer in the table, in seq order."""
        return sorted((p for p in self.unplaced() if p.seq is not None),
                      key=lambda p: int(p.seq))

    def summary(self) -> str:
        """The verifier's report, how many rows are damaged, and what no row can show."""
        lines = [self.check.report(), self._count_line(), *self._filter_lines()]
        lines += [_unplaced_line(p) for p in self.unplaced()]
        return "\n".join(line for line in lines if line)

    def _count_line(self) -> str:
        """``1 of 23 rows damaged.`` (nothing when a filter left no row: it says why)."""
        if self.frame.empty and self.filters:
            return ""
        return f"{int(self._damaged_mask().sum())} of {len(self.frame)} rows damaged."

    def _filter_lines(self) -> list[str]:
        """What the filters show and hide (nothing without filters)."""
        if not self.filters:
            return []
        if self.frame.empty:
            return [self._no_match()]
        hidden = self.scope[(self.scope["chain_status"] != OK)
                            & ~self.scope["seq"].isin(self.frame["seq"])]
        lines = [f"Showing {len(self.frame)} of {len(self.scope)} entries: {self._filtered()}."]
        if not hidden.empty:
            seqs = _listed([f"seq {s}" for s in hidden["seq"]])
            many = "damaged entries are" if len(hidden) > 1 else "damaged entry is"
            lines.append(f"{len(hidden)} {many} hidden by the filter ({seqs}): explore "
                         "without it to see them.")
        return lines

    def _filtered(self) -> str:
        return " and ".join(f"{k}={v!r}" for k, v in self.filters.items())

    def _no_match(self) -> str:
        """The sentence of a filter no row matches, with the values there are."""
        there = "; ".join(f"the {FILTER_WORDS[k]} here are "
                          f"{_listed(_values(self.scope, k)) or 'none'}" for k in self.filters)
        return f"No entry matches {self._filtered()}: {there}."

    def _where_line(self) -> str:
        """Where the damage is: ``Damaged: seq 2: edited, seq 10: deleted (entry gone).``"""
        places = [f"seq {s}: {k}" for s, k in zip(self.scope["seq"], self.scope["chain_status"],
                                                  strict=True) if k != OK]
        places += [f"seq {p.seq}: {p.kind} (entry gone)" for p in self._gone()]
        return f"Damaged: {_listed(places)}." if places else ""

    def styled(self) -> pd.io.formats.style.Styler:
        """Every column of the frame for display: damaged rows red-ish, hashes shortened,
        text escaped (the compact view is ``_repr_html_``).

        Only the display changes; ``frame`` keeps every hash in full.
        """
        mask = self._damaged_mask()
        hashes = [c for c in HASH_COLUMNS if c in self.frame.columns]
        return (self.frame.style
                .format(na_rep="", escape="html")
                .format(_short_hash, subset=hashes, escape="html")
                .apply(lambda frame: _cell_styles(frame, mask), axis=None)
                .hide(axis="index"))

    def _rows_and_gaps(self) -> Iterator[tuple[dict[str, Any] | None, Finding | None]]:
        """The shown rows in seq order, with removed entries where they used to be."""
        gone = self._gone()
        for row in self.frame.to_dict("records"):
            while gone and int(gone[0].seq) < int(row["seq"]):
                yield None, gone.pop(0)
            yield row, None
        for finding in gone:
            yield None, finding

    # --- plain text ------------------------------------------------------------------

    def text(self) -> str:
        """Plain text of at most `TEXT_WIDTH` characters a line: the verdict, what no row
        shows, then one line per entry with the problem's sentence under damaged rows."""
        lines = [*self._text_header(), ""]
        if self.frame.empty:
            return "\n".join(lines[:-1])
        lines.append(_text_line(" ", [c for c, _ in TEXT_COLUMNS]))
        for row, gone in self._rows_and_gaps():
            lines += _text_row(row) if row is not None else _text_gone(gone)
        return "\n".join(lines)

    def _notes(self) -> list[str]:
        """The lines under the verdict: incomplete runs, damage count and places, filters."""
        incomplete = [x.strip() for x in self.check.report().splitlines()
                      if x.startswith("  Incomplete")]
        lines = [*incomplete, self._count_line(), self._where_line(), *self._filter_lines()]
        return [line for line in lines if line]

    def _verdict(self) -> str:
        """``Ledger chain VALID: 23 entries in 1 run checked.``"""
        return self.check.report().splitlines()[0]

    def _text_header(self) -> list[str]:
        heads = [self._verdict(), *self._notes(), *map(_off_row_text, self._off_row())]
        if self.scope.empty and not self.filters:
            heads.append("The ledger has no entries here yet.")
        return [wrapped for line in heads for wrapped in _wrap(line, "", "    ")]

    # --- HTML ------------------------------------------------------------------------

    def banner_html(self) -> str:
        """The verdict above the table: damaged rows, filters, whole-run and whole-ledger
        findings (each once), green when valid, red when damaged."""
        colour = "#1b5e20" if self.check.valid else "#8b1a1a"
        lines = [f"<div style='color:{colour};font-weight:bold'>"
                 f"{html.escape(self._verdict())}</div>"]
        lines += [f"<div>{html.escape(x)}</div>" for x in self._notes()]
        found = "".join(f"<li>{_off_row_html(p)}</li>" for p in self._off_row())
        if found:
            lines.append(f"<ul style='margin:2px 0;padding-left:1.4em'>{found}</ul>")
        return (f"<div class='mf-banner' style='border-left:4px solid {colour};"
                f"padding:2px 8px;margin:0 0 4px 0;max-width:100%;overflow-wrap:anywhere;"
                "line-height:1.4'>"
                + "\n".join(lines) + "</div>")

    def table_html(self) -> str:
        """The compact table: six columns, payloads folded, damaged rows red, scrolling
        inside a bounded box under a sticky header."""
        cols = "".join(f"<col style='width:{w}'>" for _, w in HTML_COLUMNS)
        head = "".join(f"<th style='position:sticky;top:0'>{html.escape(c)}</th>"
                       for c, _ in HTML_COLUMNS)
        body = "\n".join(_html_row(row) if row is not None else _html_gone(gone)
                         for row, gone in self._rows_and_gaps())
        if self.frame.empty:
            body = _sentence_row(self._no_match() if self.filters else
                                 "The ledger has no entries here yet.", "")
        return (f"<div class='mf-ledger' style='max-width:100%;line-height:1.4'>{STYLE}"
                "<div class='mf-scroll' style='max-height:28em;overflow:auto;max-width:100%'>"
                "<table class='mf-table' style='width:100%;table-layout:fixed'>"
                f"<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>"
                f"<tbody>\n{body}\n</tbody></table></div></div>")

    def _repr_html_(self) -> str:
        """The banner and the compact table."""
        return f"{self.banner_html()}\n{self.table_html()}"

    def __repr__(self) -> str:
        return self.text()

    __str__ = __repr__


def _values(frame: pd.DataFrame, column: str) -> list[str]:
    """The distinct non-NULL values of a column, sorted."""
    return sorted({str(v) for v in frame[column] if not _missing(v)})


def _unplaced_line(problem: Finding) -> str:
    """Why a problem is in the summary and not on a row."""
    if problem.seq is None and problem.run_id is None:
        return f"Not on any row: {problem.kind} concerns the whole ledger, not one entry."
    if problem.seq is None:
        return (f"Not on any row: run {problem.run_id} ({problem.kind}) concerns the "
                "whole run.")
    return (f"Not on any row: seq {problem.seq} ({problem.kind}) is no longer in the "
            "table, so it cannot be highlighted.")


def _whole(problem: Finding) -> str:
    """``Whole ledger`` or ``Whole run 1a2b…``: what an off-row problem concerns."""
    return "Whole ledger" if problem.run_id is None else f"Whole run {problem.run_id}"


def _short_run(run_id: object) -> str:
    """The start of a run id, as the compact table and the text show it."""
    text = "" if _missing(run_id) else str(run_id)
    return text[:RUN_CHARS]


def _short_hash(value: object) -> str:
    """A hash cut to its first characters for display."""
    text = "" if _missing(value) else str(value)
    return text[:HASH_CHARS] + "…" if len(text) > HASH_CHARS else text


def _cell_styles(frame: pd.DataFrame, damaged: pd.Series) -> pd.DataFrame:
    """The CSS of every cell: red-ish in the damaged rows, nothing elsewhere."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    styles.loc[damaged[damaged].index, :] = DAMAGED_STYLE
    return styles


# --- plain text helpers ------------------------------------------------------------------

def _wrap(line: str, first: str, rest: str) -> list[str]:
    """``line`` on lines of at most `TEXT_WIDTH` characters."""
    return textwrap.wrap(line, TEXT_WIDTH, initial_indent=first, subsequent_indent=rest) or [""]


def _cut(value: object, width: int) -> str:
    """A value on one line, cut to ``width`` characters with an ellipsis."""
    text = "" if _missing(value) else " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _text_line(mark: str, cells: list[object]) -> str:
    """One line of the text table: a mark, then the fixed-width cells."""
    rest = TEXT_WIDTH - 2 - sum(w + 1 for _, w in TEXT_COLUMNS if w)
    widths = [w or rest for _, w in TEXT_COLUMNS]
    parts = [_cut(v, w).rjust(w) if i == 0 else _cut(v, w).ljust(w)
             for i, (v, w) in enumerate(zip(cells, widths, strict=True))]
    return f"{mark} {' '.join(parts)}".rstrip()


def _text_row(row: Mapping[str, Any]) -> list[str]:
    """An entry's line, and under a damaged one (marked ``!``) the verifier's sentence."""
    damaged = row["chain_status"] != OK
    line = _text_line("!" if damaged else " ",
                      [row["seq"], row["chain_status"], _short_run(row["run_id"]),
                       row["node_id"], row["event_type"], row["summary"]])
    return [line, *(_wrap(row["problem"], "    ^ ", "      ") if damaged else [])]


def _text_gone(problem: Finding) -> list[str]:
    """The mark where a removed entry used to be, and the verifier's sentence."""
    return [_gone_line(int(problem.seq), problem.kind),
            *_wrap(problem.message, "      ", "      ")]


def _gone_line(seq: int, kind: str) -> str:
    """The text table's mark where a removed entry used to be."""
    return f"    x seq {seq} is missing here ({kind})"


def _off_row_text(problem: Finding) -> str:
    return f"{_whole(problem)} ({problem.kind}): {problem.message}"


# --- HTML helpers ------------------------------------------------------------------------

def _off_row_html(problem: Finding) -> str:
    return (f"<b>{html.escape(_whole(problem))}</b> ({html.escape(problem.kind)}): "
            f"{html.escape(problem.message)}")


def _cell(text: object, title: object = None) -> str:
    """A table cell with escaped text (and the full value as its tooltip)."""
    shown_text = html.escape("" if _missing(text) else str(text))
    tip = "" if _missing(title) or title is None else f" title='{html.escape(str(title))}'"
    return f"<td{tip}>{shown_text}</td>"


def _html_row(row: Mapping[str, Any]) -> str:
    """An entry's row; a damaged one is red, with the verifier's sentence in a row under it."""
    damaged = row["chain_status"] != OK
    status = html.escape(str(row["chain_status"]))
    status_cell = (f"<td class='mf-bad' title='{html.escape(row['problem'])}'>✗ {status}</td>"
                   if damaged else f"<td style='color:#1b5e20'>{status}</td>")
    cells = [_cell(row["seq"]), status_cell, _cell(_short_run(row["run_id"]), row["run_id"]),
             _cell(row["node_id"], row["node_id"]), _cell(row["event_type"], row["event_type"]),
             f"<td>{_details(row)}</td>"]
    attrs = f" class='{DAMAGED_CLASS}' style='{DAMAGED_STYLE}'" if damaged else ""
    line = f"<tr{attrs}>{''.join(cells)}</tr>"
    return line + (_sentence_row(f"⚠ {row['problem']}", attrs) if damaged else "")


def _sentence_row(sentence: str, attrs: str) -> str:
    """A row across the whole table holding one sentence."""
    return (f"<tr{attrs}><td class='mf-sentence' colspan='{len(HTML_COLUMNS)}' "
            f"style='white-space:normal;overflow-wrap:anywhere'>{html.escape(sentence)}</td></tr>")


def _html_gone(problem: Finding) -> str:
    """The row where a removed entry used to be, with the verifier's sentence."""
    attrs = f" class='{DAMAGED_CLASS} mf-gone' style='{DAMAGED_STYLE}'"
    return _sentence_row(f"✗ seq {problem.seq} is missing here ({problem.kind}): "
                         f"{problem.message}", attrs)


def _details(row: Mapping[str, Any]) -> str:
    """The one-line summary; opened, the entry's fields, payload and output in full."""
    fields = {k: _plain(row[k]) for k in DETAIL_FIELDS if k in row and not _missing(row[k])}
    fields["payload"] = _parsed(row.get("payload"))
    parts = [f"<pre>{html.escape(json.dumps(fields, indent=2, ensure_ascii=False, default=str))}"
             "</pre>"]
    output = _parsed(row.get("output"))
    if output is not None:
        said = output if isinstance(output, str) else json.dumps(output, indent=2,
                                                                   ensure_ascii=False)
        parts.append(f"<div><b>output</b></div><pre>{html.escape(said)}</pre>")
    return (f"<details><summary>{html.escape(row['summary'] or '(nothing to summarise)')}</summary>"
            + "".join(parts) + "</details>")


def _plain(value: object) -> object:
    """A numpy scalar as its Python value, for ``json.dumps``."""
    return value.item() if hasattr(value, "item") else value
