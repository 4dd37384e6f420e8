"""The ledger explorer on real ledgers: clean, tampered by SQL as in exercise 4, and cut."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from meshflow_nb import ConfigError, MeshflowError
from meshflow_nb.events import EventType
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook.explorer import (
    DAMAGED_CLASS,
    DAMAGED_STYLE,
    RUN_CHARS,
    TEXT_WIDTH,
    LedgerView,
    explore,
)
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
    row = next(i for i, line in enumerate(lines) if re.match(r"!\s+2\s", line))
    assert "edited" in lines[row] and "researcher" in lines[row]
    assert lines[row + 1].lstrip().startswith("^") and "seq 2" in lines[row + 1]
    header = next(line for line in lines if "chain_status" in line)
    assert header.split() == ["seq", "chain_status", "run", "node", "event", "summary"]
    assert sum(line.startswith("!") for line in lines) == 1  # only the damaged row is marked


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
    assert re.match(r"\s*9\s", lines[mark - 1])
    assert "was deleted" in lines[mark + 1]  # the verifier's sentence, under the mark
    after = next(line for line in lines[mark + 1:] if not line.startswith("      "))
    assert re.match(r"\s*11\s", after)


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
    assert "Ledger chain DAMAGED" in page.split("<table")[0]
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


# --- the compact notebook view -----------------------------------------------------------

BIG_PAYLOAD = ("UPDATE ledger_entries SET payload = '{\"blob\": \"' || repeat('x', 5000) || '\"}' "
               "WHERE seq = 1")
FORGET_RECIPE = "DELETE FROM ledger_meta"
"""Removes the recipe marker: a finding of the whole ledger, on no run and no row."""


def header_cells(page: str) -> list[str]:
    """The column titles of the compact table."""
    head = page.split("<thead>")[1].split("</thead>")[0]
    return [html.unescape(t) for t in re.findall(r"<th[^>]*>(.*?)</th>", head)]


def body_rows(page: str) -> list[str]:
    """Every ``<tr>`` of the table body, as HTML."""
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", body, flags=re.S)


def entry_rows(page: str) -> dict[int, str]:
    """The body rows that show an entry, by seq (sentence and gap rows left out)."""
    rows = {}
    for row in body_rows(page):
        first = re.match(r"<tr[^>]*><td[^>]*>(\d+)</td>", row)
        if first:
            rows[int(first.group(1))] = row
    return rows


def visible(fragment: str) -> str:
    """What a reader sees of a row before opening anything: folded details left out."""
    folded = re.sub(r"</summary>.*?</details>", "", fragment, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", folded)).split())


def test_default_view_is_six_columns_with_chain_status_first_class(
        ledger: ReplayLedger) -> None:
    page = explore(ledger)._repr_html_()
    columns = header_cells(page)
    assert len(columns) <= 7
    assert columns.index("chain status") <= 2
    assert {"seq", "run", "node", "event", "summary"} <= set(columns)
    assert "hash" not in columns and "prev_hash" not in columns
    assert all(row.count("<td") == len(columns) for row in entry_rows(page).values())


def test_table_fits_the_cell_and_scrolls_under_a_sticky_header(ledger: ReplayLedger) -> None:
    page = explore(ledger)._repr_html_()
    assert "table-layout:fixed" in page and "max-width:100%" in page
    assert "max-height:28em;overflow:auto" in page
    assert "position:sticky;top:0" in page
    assert "text-overflow:ellipsis" in page and "overflow-wrap:anywhere" in page
    assert "<script" not in page.lower() and "http" not in page.lower()


def test_long_payload_and_output_are_folded(ledger: ReplayLedger) -> None:
    ledger.sql(BIG_PAYLOAD)
    view = explore(ledger)
    rows = entry_rows(view._repr_html_())
    first = rows[1]
    assert "<details>" in first and "<details open" not in first
    assert "x" * 5000 in first.split("</summary>")[1]  # all of it, once opened
    assert "x" * 200 not in visible(first) and len(visible(first)) < 160
    writer = view.frame[(view.frame["node_id"] == "writer")
                        & (view.frame["event_type"] == "node_complete")].iloc[0]
    output = json.loads(writer["output"])
    assert len(output) > 300 and "\n" in output
    row = rows[int(writer["seq"])]
    assert html.escape(output) in row.split("</summary>")[1]  # real line breaks, escaped
    assert len(visible(row)) < 160 and "\\n" not in visible(row)


def test_damaged_row_is_highlighted_with_the_sentence_beside_it(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger)
    page = view._repr_html_()
    rows = body_rows(page)
    marked = [i for i, row in enumerate(rows) if DAMAGED_CLASS in row.split(">")[0]]
    damaged = rows.index(entry_rows(page)[2])
    assert marked == [damaged, damaged + 1]  # the row, and its sentence right under it
    assert DAMAGED_STYLE in rows[damaged]
    assert "edited" in visible(rows[damaged])
    sentence = view.frame.set_index("seq").loc[2, "problem"]
    assert sentence in visible(rows[damaged + 1])
    assert all(DAMAGED_CLASS not in row for i, row in enumerate(rows) if i not in marked)
    assert "seq 2: edited" in view.banner_html()


def test_whole_ledger_finding_is_one_banner_line_without_run_none(ledger: ReplayLedger) -> None:
    ledger.sql(FORGET_RECIPE)
    view = explore(ledger)
    finding = next(p for p in view.check.problems if p.seq is None and p.run_id is None)
    page = view._repr_html_()
    banner, table = page.split("<table", 1)
    assert "Whole ledger" in banner and finding.message in html.unescape(banner)
    assert html.unescape(page).count(finding.message) == 1
    assert finding.message not in html.unescape(table)
    for shown in (page, view.text(), view.summary()):
        assert "run None" not in shown
    assert "whole ledger" in view.summary()


def test_filters_narrow_the_rows(ledger: ReplayLedger) -> None:
    every = explore(ledger)
    writer = explore(ledger, node_id="writer")
    assert 0 < len(writer.frame) < len(every.frame)
    assert set(writer.frame["node_id"]) == {"writer"}
    assert sorted(entry_rows(writer._repr_html_())) == list(writer.frame["seq"])
    done = explore(ledger, node_id="writer", event_type=EventType.NODE_COMPLETE)
    assert set(done.frame["event_type"]) == {"node_complete"} and len(done.frame) == 2
    run_id = str(every.frame["run_id"].iloc[0])
    assert len(explore(ledger, run_id[:RUN_CHARS]).frame) == len(every.frame)  # the shown id
    assert f"Showing 2 of {len(every.frame)} entries" in done.summary()


def test_filter_says_when_it_hides_a_damaged_row(ledger: ReplayLedger) -> None:
    ledger.sql(TAMPER)
    view = explore(ledger, node_id="writer")
    assert view.damaged().empty and not view.check.valid
    assert "hidden by the filter (seq 2)" in view.summary()
    assert "hidden by the filter (seq 2)" in view.text()


@pytest.mark.parametrize(("arguments", "named"), [
    ({"run_id": 5}, "run_id"),
    ({"run_id": "no-such-run"}, "run_id"),
    ({"node_id": ["writer"]}, "node_id"),
    ({"node_id": ""}, "node_id"),
    ({"event_type": "node_completed"}, "event_type"),
])
def test_bad_filter_is_a_clear_error(ledger: ReplayLedger, arguments: dict, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        explore(ledger, **arguments)
    assert isinstance(err.value, MeshflowError) and err.value.argument == named
    assert str(err.value).startswith(named) and "pass" in str(err.value)
    assert "\n" not in str(err.value)


def test_filter_nothing_matches_is_an_empty_table_with_a_sentence(ledger: ReplayLedger) -> None:
    view = explore(ledger, node_id="no_such_node")
    assert view.frame.empty
    sentence = "No entry matches node_id='no_such_node'"
    assert sentence in visible(body_rows(view._repr_html_())[0])
    assert sentence in view.text() and "researcher" in view.text()


def test_text_fallback_is_narrow_one_line_per_entry(ledger: ReplayLedger) -> None:
    ledger.sql(BIG_PAYLOAD)
    ledger.sql("DELETE FROM ledger_entries WHERE seq = 10")
    ledger.sql(FORGET_RECIPE)
    view = explore(ledger)
    lines = view.text().splitlines()
    assert max(len(line) for line in lines) <= min(TEXT_WIDTH, 120)
    assert "\\n" not in view.text()
    entries = [line for line in lines if re.match(r"[ !]\s+\d+ ", line)]
    assert len(entries) == len(view.frame)  # one line each, long payloads cut
    assert entries[0].startswith("!") and "edited" in entries[0]
    assert any(line.startswith("Whole ledger (recipe_changed)") for line in lines)
    assert "    x seq 10 is missing here (deleted)" in lines


def test_widget_lists_filter_the_table(ledger: ReplayLedger) -> None:
    pytest.importorskip("ipywidgets")
    from meshflow_nb.notebook.ledger_widget import ALL_NODES, LedgerExplorer

    explorer = LedgerExplorer(ledger)
    assert "writer" in explorer.nodes.options and "node_complete" in explorer.event_types.options
    explorer.nodes.value = "writer"
    assert set(explorer.view.frame["node_id"]) == {"writer"}
    assert sorted(entry_rows(explorer.table.value)) == list(explorer.view.frame["seq"])
    explorer.event_types.value = "node_complete"
    assert len(explorer.view.frame) == 2 and len(entry_rows(explorer.table.value)) == 2
    explorer.nodes.value = ALL_NODES
    assert set(explorer.view.frame["event_type"]) == {"node_complete"}
    assert "Showing" in explorer.summary.value and "edited" not in explorer.text()


def test_widget_refuses_bad_filters_clearly(ledger: ReplayLedger) -> None:
    pytest.importorskip("ipywidgets")
    from meshflow_nb.notebook.ledger_widget import LedgerExplorer

    with pytest.raises(ConfigError, match="run_id='nope' is not a run"):
        LedgerExplorer(ledger, run_id="nope")
    with pytest.raises(ConfigError, match="event_type"):
        LedgerExplorer(ledger, event_type="nope")
    ghost = LedgerExplorer(ledger, node_id="ghost")
    assert ghost.nodes.value == "ghost" and ghost.view.frame.empty
    assert "No entry matches node_id=&#x27;ghost&#x27;" in ghost.table.value
