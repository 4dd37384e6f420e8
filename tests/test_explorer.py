"""The ledger explorer on real ledgers: clean, tampered by SQL as in exercise 4, and cut."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook.explorer import DAMAGED_STYLE, LedgerView, explore
from meshflow_nb.pipelines import build_capstone_pipeline

TAMPER = "UPDATE ledger_entries SET output = '{\"tampered\": true}' WHERE seq = 2"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReplayLedger:
    """A ledger holding one mock run of the capstone pipeline."""
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")
    ledger = ReplayLedger(tmp_path / "l.duckdb")
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    workflow.run("t")
    ledger.flush()
    return ledger


def styled_rows(view: LedgerView) -> tuple[set[int], set[int]]:
    """Row positions of the styled HTML with the damaged background, and all positions."""
    page = view.styled().to_html()
    rules = re.findall(r"([^{}]*)\{([^{}]*)\}", page.split("</style>")[0])
    marked = {int(n) for selectors, body in rules if "background-color" in body
              for n in re.findall(r"_row(\d+)_col\d+", selectors)}
    every = {int(n) for n in re.findall(r'id="T_\w+_row(\d+)_col0"', page)}
    return marked, every


def test_clean_ledger_is_all_ok(ledger: ReplayLedger) -> None:
    view = explore(ledger)
    assert len(view.frame) > 10
    assert set(view.frame["chain_status"]) == {"ok"}
    assert set(view.frame["problem"]) == {""}
    assert view.damaged().empty
    assert "VALID" in view.summary()
    assert f"0 of {len(view.frame)} rows damaged" in view.summary()
    assert styled_rows(view)[0] == set()


def test_frame_keeps_every_entry_column_in_seq_order(ledger: ReplayLedger) -> None:
    entries = ledger.to_dataframe()
    view = explore(ledger)
    assert list(view.frame.columns[:len(entries.columns)]) == list(entries.columns)
    assert {"output_preview", "chain_status", "problem"} <= set(view.frame.columns)
    assert list(view.frame["seq"]) == sorted(entries["seq"])
    assert view.frame["output_preview"].str.len().max() <= 80


def test_sql_tamper_names_the_row(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger)
    frame = view.frame.set_index("seq")
    assert frame.loc[2, "chain_status"] == "edited"
    assert "seq 2" in frame.loc[2, "problem"]
    assert "changed" in frame.loc[2, "problem"]
    assert frame.loc[2, "output_preview"] == '{"tampered": true}'
    assert set(frame.drop(index=2)["chain_status"]) == {"ok"}
    assert list(view.damaged()["seq"]) == [2]
    assert "DAMAGED" in view.summary()
    assert f"1 of {len(frame)} rows damaged" in view.summary()


def test_styled_html_marks_only_the_damaged_row(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger)
    position = int(view.frame.index[view.frame["seq"] == 2][0])
    marked, every = styled_rows(view)
    assert marked == {position}
    assert len(every) == len(view.frame)
    assert DAMAGED_STYLE.split(";")[0] in view.styled().to_html()


def test_text_fallback_names_the_row(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger)
    text = view.text()
    assert "seq 2" in text and "edited" in text
    assert str(view) == repr(view) == text
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if re.match(r"\s*2\s+2\s", line))
    assert "edited" in lines[row]
    assert lines[row + 1].lstrip().startswith("^") and "seq 2" in lines[row + 1]
    header = next(line for line in lines if "chain_status" in line)
    assert header.split() == ["seq", "run_seq", "event_type", "node_id", "chain_status"]


def test_deleted_entry_is_named_in_the_summary(ledger: ReplayLedger) -> None:
    ledger.sql("DELETE FROM ledger_entries WHERE seq = 10")
    view = explore(ledger)
    problem = next(p for p in view.check.problems if p.kind == "deleted")
    assert problem.seq == 10
    assert 10 not in set(view.frame["seq"])  # the row it names is gone: nothing to mark
    assert view.unplaced() == [problem]
    assert "seq 10" in view.summary() and "deleted" in view.summary()
    assert "cannot be highlighted" in view.summary()
    lines = view.text().splitlines()
    mark = lines.index("    x seq 10 is missing here (deleted)")
    assert re.match(r"\s*9\s", lines[mark - 1]) and re.match(r"\s*11\s", lines[mark + 1])


def test_deleted_status_on_the_row_the_problem_names(ledger: ReplayLedger) -> None:
    """Deleted and the rest renumbered to close the gap: seq 10 is there, and named."""
    ledger.sql("DELETE FROM ledger_entries WHERE seq = 10")
    ledger.sql("UPDATE ledger_entries SET seq = seq - 1, run_seq = run_seq - 1 WHERE seq > 10")
    view = explore(ledger)
    assert list(view.damaged()["seq"]) == [10]
    assert list(view.damaged()["chain_status"]) == ["deleted"]
    assert "renumbered" in view.damaged()["problem"].iloc[0]
    assert view.unplaced() == []
    assert f"1 of {len(view.frame)} rows damaged" in view.summary()


def test_hashes_full_in_frame_short_in_html(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger)
    assert set(view.frame["hash"].str.len()) == {64}
    assert set(view.frame["prev_hash"].str.len()) == {64}
    page = view.styled().to_html()
    first = view.frame["hash"].iloc[0]
    assert first not in page
    assert f"{first[:12]}…" in page
    assert set(view.frame["hash"].str.len()) == {64}  # styling left the frame alone


def test_repr_html_is_self_contained(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    page = explore(ledger)._repr_html_()
    assert page.startswith("<p>Ledger chain DAMAGED")
    assert "<table" in page
    assert "<script" not in page.lower()
    assert "http" not in page.lower()


def test_html_escapes_ledger_text(ledger: ReplayLedger) -> None:
    ledger.sql("UPDATE ledger_entries SET output = '\"<b>x</b>\"' WHERE seq = 3")
    page = explore(ledger)._repr_html_()
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_filter_by_run_and_whole_run_problems(ledger: ReplayLedger) -> None:
    workflow = ledger.attach(build_capstone_pipeline(quality_scores=[0.6, 0.85]))
    second = workflow.run("u").run_id
    first = next(r for r in ledger.runs()["run_id"] if r != second)
    ledger.sql(TAMPER)
    one, two = explore(ledger, first), explore(ledger, second)
    assert set(one.frame["run_id"]) == {first}
    assert set(two.frame["run_id"]) == {second}
    assert list(one.damaged()["seq"]) == [2]
    assert two.check.valid and two.damaged().empty
    assert len(explore(ledger).frame) == len(one.frame) + len(two.frame)

    ledger.sql(f"DELETE FROM ledger_entries WHERE run_id = '{second}'")
    view = explore(ledger)
    assert set(view.frame["run_id"]) == {first}
    removed = [p for p in view.check.problems if p.kind == "run_removed"]
    assert removed and all(p in view.unplaced() for p in removed)
    assert "run_removed" in view.summary() and "run_removed" in view.text()
