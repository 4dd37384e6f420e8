"""The ledger explorer: the ledger as a table, with the verifier's verdict on every row.

    view = explore(ledger)                 # or explore(ledger, run_id, anchor=...)
    view                                   # in a notebook: verdict + highlighted table
    view.damaged()                         # only the rows the verifier names
    print(view)                            # plain text, for papermill and GitHub

Framework-free: pandas only (its Styler, which needs jinja2, for the HTML), so the
notebook widgets can build on it and the tests can run it without Jupyter. The HTML is
a ``<style>`` block and a ``<table>``: no JavaScript, nothing fetched from a CDN.
docs/ledger-explorer.md shows it in the course's exercise 4.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..ledger.anchor import Anchor
from ..ledger.forensics import Finding
from ..ledger.replay import ReplayLedger
from ..ledger.verify import VerificationResult

OK = "ok"
"""``chain_status`` of a row no problem names."""

PREVIEW_CHARS = 80
"""Characters of ``output`` kept in ``output_preview``."""

HASH_CHARS = 12
"""Characters of a hash shown in the styled table (the frame keeps all 64)."""

HASH_COLUMNS = ("prev_hash", "hash")

DAMAGED_STYLE = "background-color: #f8d7da; color: #58151c"
"""A damaged row in the styled table: red-ish, readable in light and dark themes."""

TEXT_COLUMNS = ["seq", "run_seq", "event_type", "node_id", "chain_status"]
"""The columns of the plain-text table."""

AnchorArg = Anchor | Iterable[Anchor] | str | os.PathLike | None


def explore(ledger: ReplayLedger, run_id: str | None = None,
            anchor: AnchorArg = None) -> LedgerView:
    """Read the ledger (or one run), verify it, and pair each row with its problems."""
    check = ledger.verify_chain(run_id, anchor)
    entries = ledger.to_dataframe(run_id)
    return LedgerView(annotate(entries, check.problems), check)


def annotate(entries: pd.DataFrame, problems: list[Finding]) -> pd.DataFrame:
    """A copy of ``entries`` with ``output_preview``, ``chain_status`` and ``problem``."""
    frame = entries.reset_index(drop=True).copy()
    frame["output_preview"] = [_preview(v) for v in frame["output"]]
    by_seq = _problems_by_seq(problems)
    frame["chain_status"] = [_status(by_seq.get(int(s), [])) for s in frame["seq"]]
    frame["problem"] = ["; ".join(p.message for p in by_seq.get(int(s), []))
                        for s in frame["seq"]]
    return frame


def _preview(output: object) -> str:
    """The first characters of an output on one line (NULL is empty)."""
    if output is None or (isinstance(output, float) and pd.isna(output)):
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


@dataclass
class LedgerView:
    """The ledger's entries with their chain status, and the verification behind it."""

    frame: pd.DataFrame
    check: VerificationResult

    def damaged(self) -> pd.DataFrame:
        """Only the rows a problem names."""
        return self.frame[self._damaged_mask()]

    def _damaged_mask(self) -> pd.Series:
        return self.frame["chain_status"] != OK

    def unplaced(self) -> list[Finding]:
        """Problems with no row to show them on: whole runs, and removed entries."""
        present = {int(s) for s in self.frame["seq"]}
        return [p for p in self.check.problems
                if p.seq is None or int(p.seq) not in present]

    def summary(self) -> str:
        """The verifier's report, how many rows are damaged, and what no row can show."""
        lines = [self.check.report(),
                 f"{int(self._damaged_mask().sum())} of {len(self.frame)} rows damaged."]
        lines += [_unplaced_line(p) for p in self.unplaced()]
        return "\n".join(lines)

    def styled(self) -> pd.io.formats.style.Styler:
        """The frame for display: damaged rows red-ish, hashes shortened, text escaped.

        Only the display changes; ``frame`` keeps every hash in full.
        """
        mask = self._damaged_mask()
        hashes = [c for c in HASH_COLUMNS if c in self.frame.columns]
        return (self.frame.style
                .format(na_rep="", escape="html")
                .format(_short_hash, subset=hashes, escape="html")
                .apply(lambda frame: _cell_styles(frame, mask), axis=None)
                .hide(axis="index"))

    def text(self) -> str:
        """Plain text: the summary, then seq, run_seq, event_type, node_id, chain_status,
        with the problem's sentence under each damaged row."""
        if self.frame.empty:
            return self.summary()
        table = self.frame[TEXT_COLUMNS].fillna("").to_string(index=False).splitlines()
        gone = sorted((int(p.seq), p.kind) for p in self.unplaced() if p.seq is not None)
        lines = [self.summary(), "", table[0]]
        rows = zip(table[1:], self.frame["seq"], self.frame["problem"], strict=True)
        for line, seq, problem in rows:
            while gone and gone[0][0] < int(seq):
                lines.append(_gone_line(*gone.pop(0)))
            lines.append(line)
            if problem:
                lines.append(f"    ^ {problem}")
        lines += [_gone_line(*g) for g in gone]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The summary in a ``<p>`` and the styled table (a plain one without jinja2)."""
        summary = html.escape(self.summary()).replace("\n", "<br>\n")
        try:
            table = self.styled().to_html()
        except ImportError:  # pandas' Styler needs jinja2
            table = self.frame.to_html(index=False, escape=True, na_rep="")
        return f"<p>{summary}</p>\n{table}"

    def __repr__(self) -> str:
        return self.text()

    __str__ = __repr__


def _unplaced_line(problem: Finding) -> str:
    """Why a problem is in the summary and not on a row."""
    if problem.seq is None:
        return (f"Not on any row: run {problem.run_id} ({problem.kind}) concerns the "
                "whole run.")
    return (f"Not on any row: seq {problem.seq} ({problem.kind}) is no longer in the "
            "table, so it cannot be highlighted.")


def _gone_line(seq: int, kind: str) -> str:
    """The text table's mark where a removed entry used to be."""
    return f"    x seq {seq} is missing here ({kind})"


def _short_hash(value: object) -> str:
    """A hash cut to its first characters for display."""
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return text[:HASH_CHARS] + "…" if len(text) > HASH_CHARS else text


def _cell_styles(frame: pd.DataFrame, damaged: pd.Series) -> pd.DataFrame:
    """The CSS of every cell: red-ish in the damaged rows, nothing elsewhere."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    styles.loc[damaged[damaged].index, :] = DAMAGED_STYLE
    return styles
