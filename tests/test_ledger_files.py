"""A lesson's ledger files and reports: a new ledger never overwrites a file, a copy holds
the runs exactly as stored (and verifies like the original, damaged or not), and a damage
report names runs by labels that stay the same from session to session."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshflow_nb import ConfigError, fixed_approver
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.notebook import damage_kinds, damage_report, ledger_copy, new_ledger
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")
APPROVE = fixed_approver(True, "tester", "approved in a test")


def two_runs(path: Path) -> tuple[ReplayLedger, list[str]]:
    ledger = new_ledger(path)
    pipeline = ledger.attach(build_capstone_pipeline())
    return ledger, [pipeline.run(CAPSTONE_TASK, approver=APPROVE).run_id for _ in range(2)]


def test_a_new_ledger_takes_the_next_free_name_and_keeps_the_old_file(tmp_path: Path) -> None:
    first, _ = two_runs(tmp_path / "audit" / "lesson.duckdb")
    assert first.location == str(tmp_path / "audit" / "lesson.duckdb")
    second = new_ledger(tmp_path / "audit" / "lesson.duckdb")
    third = new_ledger(tmp_path / "audit" / "lesson.duckdb")
    assert Path(second.location).name == "lesson-2.duckdb"
    assert Path(third.location).name == "lesson-3.duckdb"
    assert second.to_dataframe().empty and len(first.to_dataframe()) == 46


@pytest.mark.parametrize("path", [None, "", 7, "postgresql://u@h/db"])
def test_a_new_ledger_refuses_a_path_that_is_no_file(path: object) -> None:
    with pytest.raises(ConfigError) as err:
        new_ledger(path)
    assert err.value.argument == "path"


def test_a_new_ledger_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        new_ledger(tmp_path)


def test_a_copy_holds_the_runs_as_stored_and_verifies(tmp_path: Path) -> None:
    ledger, runs = two_runs(tmp_path / "ledger.duckdb")
    copy = ledger_copy(ledger, tmp_path / "copies" / "one.duckdb")
    assert copy.to_dataframe().equals(ledger.to_dataframe())
    assert copy.runs().equals(ledger.runs())
    assert copy.verify_chain().valid
    copy.sql("DELETE FROM ledger_entries WHERE seq = 10")
    assert ledger.verify_chain().valid and not copy.verify_chain().valid
    only = ledger_copy(ledger, tmp_path / "copies" / "one.duckdb", runs=[runs[0]])
    assert Path(only.location).name == "one-2.duckdb"
    assert list(only.runs().run_id) == [runs[0]] and only.verify_chain().valid


@pytest.mark.parametrize(("runs", "said"), [("abc", "list of run ids"), (["nope"], "no entries")])
def test_a_copy_refuses_runs_it_cannot_copy(tmp_path: Path, runs: object, said: str) -> None:
    ledger, _ = two_runs(tmp_path / "ledger.duckdb")
    with pytest.raises(ConfigError, match=said) as err:
        ledger_copy(ledger, tmp_path / "copy.duckdb", runs=runs)
    assert err.value.argument == "runs"
    assert not (tmp_path / "copy.duckdb").exists()


def test_a_copy_needs_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        ledger_copy(str(tmp_path / "ledger.duckdb"), tmp_path / "copy.duckdb")
    assert err.value.argument == "ledger"


def test_a_damage_report_names_runs_by_their_labels(tmp_path: Path) -> None:
    ledger, runs = two_runs(tmp_path / "ledger.duckdb")
    copy = ledger_copy(ledger, tmp_path / "copy.duckdb")
    copy.sql(f"DELETE FROM ledger_entries WHERE run_id = '{runs[0]}'")
    copy.sql("DELETE FROM ledger_entries WHERE seq = 30")
    check = copy.verify_chain()
    text = damage_report(check, {runs[0]: "A", runs[1]: "B"})
    assert runs[0] not in text and runs[1] not in text
    assert "run A: run_removed: run A is recorded" in text
    assert "position 7 of run B (seq 30)" in text
    assert damage_kinds(check) == [(30, "deleted"), (None, "run_removed")]
    assert damage_report(check, {}) == check.report()


@pytest.mark.parametrize("bad", [None, "report", ["A"], {"run": 1}])
def test_a_damage_report_refuses_junk(tmp_path: Path, bad: object) -> None:
    ledger, _ = two_runs(tmp_path / "ledger.duckdb")
    with pytest.raises(ConfigError):
        damage_report(ledger.verify_chain(), bad)
    with pytest.raises(ConfigError):
        damage_kinds(bad)
