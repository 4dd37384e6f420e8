"""Lesson 11 as a learner does it: the notebook under papermill with its answer cells
filled in right (approve and reject: every self-check says PASS) and wrong (HINTs, no
traceback), the terminal twin run as a learner runs it, and the lesson's self-checks
judged against a real ledger of two capstone runs, with right answers, wrong ones and junk.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pandas as pd
import pytest
from hands_on_runner import ledger_statuses, run_hands_on
from lesson_runner import ROOT, cell_errors, execute_answered, printed, verdicts
from test_selfcheck import FILLER, WRONG_TYPES, assert_hint, assert_pass

from meshflow_nb import fixed_approver
from meshflow_nb.ledger import ReplayLedger, save_anchors
from meshflow_nb.notebook import ledger_copy, new_ledger, selfcheck
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LESSON = ROOT / "lessons" / "11_the_audit_ledger.ipynb"
SCRIPT = ROOT / "hands_on" / "11_the_audit_ledger.py"
EVENTS = 23  # entries of an approved capstone run

EX1_RIGHT = '''ex1_seq = 9


def ex1_hash(row):
    fields = ["v2"]
    for column in COLUMNS:
        value = row[column]
        if pd.isna(value):
            fields.append("\\\\N")
        elif column in DECIMALS:
            fields.append(f"{value:.9f}")
        else:
            fields.append(str(value).replace("\\\\", "\\\\\\\\").replace("\\x1f", "\\\\x1f"))
    return hashlib.sha256("\\x1f".join(fields).encode("utf-8")).hexdigest()
'''
EX2_RIGHT = '''ex2_copy.sql("""UPDATE ledger_entries SET output = '"forged"' WHERE seq = 9""")
ex2_copy.sql(f"UPDATE ledger_entries SET hash = {RECIPE_SQL} WHERE seq = 9")
for seq in range(10, 24):
    ex2_copy.sql(f"UPDATE ledger_entries SET prev_hash = (SELECT hash FROM ledger_entries "
                 f"WHERE seq = {seq - 1}) WHERE seq = {seq}")
    ex2_copy.sql(f"UPDATE ledger_entries SET hash = {RECIPE_SQL} WHERE seq = {seq}")
ex2_copy.sql(f"UPDATE ledger_runs SET head_hash = (SELECT hash FROM ledger_entries "
             f"WHERE seq = 23) WHERE run_id = '{run_a.run_id}'")
print(ex2_copy.verify_chain())
ex2_check = ex2_copy.verify_chain(anchor=ex2_anchors)
'''
EX3_RIGHT = '''ex3_restored = new_ledger("exercises/restored.duckdb")
for path in ex3_archive:
    with open(path, encoding="utf-8") as handle:
        ex3_restored.import_run(handle.read())
ex3_check = ex3_restored.verify_chain(anchor=ex3_anchors)
'''
RIGHT = {"ex1_seq": EX1_RIGHT, "ex2_check": EX2_RIGHT, "ex3_restored": EX3_RIGHT}
"""The answer cells as a learner who got everything right fills them in."""

WRONG = {
    "ex1_seq": "ex1_seq = 9\nex1_hash = lambda row: ledger.sql(f'SELECT hash FROM "
               "ledger_entries WHERE seq = {row.seq}').hash[0]",
    "ex2_check": 'ex2_copy.sql("""UPDATE ledger_entries SET output = \'"x"\' WHERE seq = 6""")\n'
                 'ex2_copy.sql(f"UPDATE ledger_entries SET hash = {RECIPE_SQL} WHERE seq = 6")\n'
                 "ex2_check = ex2_copy.verify_chain(anchor=ex2_anchors)",
    "ex3_restored": "ex3_restored = ex3_damaged\nex3_check = ex3_damaged.verify_chain()",
}
"""The answer cells filled in wrong: a hash looked up rather than computed, one entry
re-hashed (the table still shows it), the damaged ledger passed off as restored."""

RUNS = {"right-approve": ("approve", RIGHT), "right-reject": ("reject", RIGHT),
        "wrong-reject": ("reject", WRONG)}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The lesson with its answer cells filled in, each way of RUNS, all at once."""
    return execute_answered(LESSON, tmp_path_factory.mktemp("lesson11"), RUNS)


@pytest.mark.parametrize("name", ["right-approve", "right-reject"])
def test_right_answers_pass_every_self_check(executed: dict, name: str) -> None:
    answered = verdicts(executed[name])
    assert len(answered) == 3 and all(v.startswith("PASS: ") for v in answered), answered
    assert not cell_errors(executed[name])
    by_hand, anchored, restored = answered
    assert "stored hash of seq 9 (the node_complete entry of writer)" in by_hand
    assert "anchors name rewritten" in anchored
    assert "the archive's 2 runs, imported into a new ledger, verify VALID" in restored
    assert "(46 entries)" in restored


def test_wrong_answers_get_hints_and_no_traceback(executed: dict) -> None:
    notebook = executed["wrong-reject"]
    assert not cell_errors(notebook)
    by_hand, anchored, restored = verdicts(notebook)
    assert by_hand.startswith("HINT: ex1_hash gives the stored hash of seq 9 for a row the "
                              "ledger never held")
    assert anchored.startswith("HINT: plain verification of ex2_copy already finds "
                               "edited_and_rehashed")
    assert restored.startswith("HINT: ex3_restored is the damaged ledger itself")


def test_the_lesson_shows_every_kind_of_damage(executed: dict) -> None:
    text = printed(executed["right-approve"])
    for shown in ("recomputed by hand == stored hash: True",
                  "46 of 46 stored hashes recomputed in SQL",
                  "run A: first prev_hash is GENESIS: True; 22 of 22 later entries link",
                  "seq 2: edited: the node_start entry of researcher at seq 2 (position 2 of "
                  "run A)", "seq 9: edited_and_rehashed: ", "seq 10: deleted: ",
                  "seq 47: inserted: ", "seq 8: reordered: ", "seq 44: truncated: ",
                  "run A: run_removed: ", "run A: run_record_edited: ",
                  "Incomplete (never finished, not damage): run B",
                  "but its anchor recorded 23 entries",
                  "the same rows as the original: True",
                  "ImmutableLedgerError: immutable_audit is on",
                  "rejected_preflight | P008 ledger-fails-verification",
                  "postgres_dsn is empty"):
        assert shown in text, shown


@pytest.mark.parametrize(("name", "verdict"), [("right-approve", "gate_resume"),
                                               ("right-reject", "gate_reject")])
def test_the_gate_decision_is_an_entry_of_the_ledger(executed: dict, name: str,
                                                     verdict: str) -> None:
    text = printed(executed[name])
    assert f"is {verdict} by headless via headless" in text
    assert "Ledger chain VALID: " in text and " in 3 runs checked." in text


def test_the_ledger_lives_in_the_lessons_own_folder(executed: dict) -> None:
    folder = Path(executed["right-approve"].metadata.papermill.output_path).parent
    assert (folder / "audit" / "lesson11.duckdb").exists()
    assert (folder / "exercises" / "archive" / "anchors.json").exists()


def test_no_checked_output_names_a_run_id(executed: dict) -> None:
    """The checked cells print labels (run A, run B), never the ids of one session."""
    notebook = executed["right-approve"]
    runs = [json.loads(p.read_text())["run_id"] for p in Path(
        notebook.metadata.papermill.output_path).parent.glob("exercises/archive/run-*.json")]
    checked = [c for c in notebook.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    text = json.dumps([c.outputs for c in checked])
    assert runs and not any(run in text for run in runs)


# --- the terminal twin -------------------------------------------------------------------


def run(tmp_path: Path, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    """The script in ``tmp_path`` with mock agents (or none), its ledger there too."""
    return run_hands_on(SCRIPT.name, tmp_path, *args, mock=mock, ledger="audit.duckdb")


def test_help_names_every_flag(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    for flag in ("--runs", "--reject", "--reviewer", "--tamper", "--archive"):
        assert flag in proc.stdout


def test_runs_are_archived_hashed_by_hand_and_verified(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "equals the stored hash" in proc.stdout
    assert "2 export(s) and 3 anchors" in proc.stdout
    assert "Ledger chain VALID: 46 entries in 2 runs checked, 3 anchors compared." in proc.stdout
    assert ledger_statuses(tmp_path / "audit.duckdb") == ["completed"] * 2
    assert len(list((tmp_path / "audit-archive").glob("*.json"))) == 3


def test_a_truncation_is_valid_alone_and_caught_by_the_anchor(tmp_path: Path) -> None:
    proc = run(tmp_path, "--tamper", "truncated", "--reject", "--reviewer", "alice")
    assert proc.returncode == 0, proc.stderr
    plain, anchored = proc.stdout.split("without anchors: ")[1].split("with anchors: ")
    assert plain.startswith("Ledger chain VALID")
    assert "truncated: " in anchored and "its anchor recorded 20 entries" in anchored
    assert ledger_statuses(tmp_path / "audit.duckdb") == ["rejected_at_gate"] * 2
    assert (tmp_path / "tampered-truncated.duckdb").exists()
    assert "Ledger chain VALID: 40 entries" in proc.stdout  # the ledger itself is untouched


@pytest.mark.parametrize(("kind", "found"), [("edited", "edited"), ("deleted", "deleted"),
                                             ("record", "run_record_edited")])
def test_each_tamper_is_named_on_the_copy(tmp_path: Path, kind: str, found: str) -> None:
    proc = run(tmp_path, "--runs", "1", "--tamper", kind)
    assert proc.returncode == 0, proc.stderr
    assert f": {found}: " in proc.stdout.split("without anchors: ")[1]


def test_on_postgres_the_archive_and_the_copy_are_in_the_working_folder(
        tmp_path: Path, postgres_db: str) -> None:
    url = postgres_db.replace("postgres@", "postgres:pa55word@", 1)
    proc = run_hands_on(SCRIPT.name, tmp_path, "--tamper", "edited", MESHFLOW_LEDGER_DB=url)
    assert proc.returncode == 0, proc.stderr
    assert "equals the stored hash" in proc.stdout
    assert f"Archive {tmp_path / 'audit-archive'}: 2 export(s)" in proc.stdout
    assert f"Tampered copy {tmp_path / 'tampered-edited.duckdb'} (edited)" in proc.stdout
    assert "Ledger postgresql://postgres:***@/" in proc.stdout and "pa55word" not in proc.stdout
    assert ReplayLedger(postgres_db).verify_chain().valid  # the server's ledger is untouched


@pytest.mark.parametrize("args", [("--runs", "0"), ("--runs", "many"), ("--tamper", "x")])
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, args: tuple) -> None:
    proc = run(tmp_path, *args)
    assert proc.returncode == 2 and not proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_without_mock_mode_or_a_key_it_says_which_to_set(tmp_path: Path) -> None:
    proc = run(tmp_path, mock=False)
    assert proc.returncode == 2 and not proc.stdout
    assert "MESHFLOW_MOCK=1" in proc.stderr and "ANTHROPIC_API_KEY" in proc.stderr


# --- the self-checks, judged directly ------------------------------------------------------

COLUMNS = ["seq", "run_id", "run_seq", "ts", "event_type", "node_id", "role", "output",
           "payload", "uncertainty", "cost_usd", "tokens_in", "tokens_out", "carbon_g",
           "prev_hash"]
DECIMALS = {"uncertainty", "cost_usd", "carbon_g"}


def text_of(column: str, value: Any, escaped: bool = True, decimals: bool = True) -> str:
    """One value's text in the canonical text (with the slips a test wants to make)."""
    if pd.isna(value):
        return "\\N"
    if column in DECIMALS and decimals:
        return f"{value:.9f}"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\x1f", "\\x1f") if escaped else text


def recipe(row: pd.Series, *, opening: bool = True, escaped: bool = True,
           decimals: bool = True, sep: str = "\x1f") -> str:
    """The learner's function, right or with one slip."""
    fields = (["v2"] if opening else []) + [text_of(c, row[c], escaped, decimals)
                                            for c in COLUMNS]
    return hashlib.sha256(sep.join(fields).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A ledger of two approved capstone runs, and a way to copy it."""
    base = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHFLOW_MOCK", "1")
        patch.setenv("MESHFLOW_MOCK_LATENCY", "0")
        ledger = new_ledger(base / "ledger.duckdb")
        pipeline = ledger.attach(build_capstone_pipeline())
        approve = fixed_approver(True, "tester", "approved in a test")
        runs = [pipeline.run(CAPSTONE_TASK, approver=approve).run_id for _ in range(2)]
        yield SimpleNamespace(ledger=ledger, runs=runs, base=base,
                              copy=lambda name: ledger_copy(ledger, base / f"{name}.duckdb"))


def by_hand(lab: SimpleNamespace, **answers: Any) -> Any:
    values = {"ex1_seq": 9, "ex1_hash": recipe, **answers}
    return selfcheck.hash_by_hand(lab.ledger, **values)


@pytest.mark.parametrize("seq", [1, 9, 23, 46])
def test_hash_by_hand_passes_the_recipe_at_any_seq(lab: SimpleNamespace, seq: int) -> None:
    assert_pass(by_hand(lab, ex1_seq=seq), f"stored hash of seq {seq} ",
                "not copied it")


def test_hash_by_hand_refuses_a_copied_or_looked_up_hash(lab: SimpleNamespace) -> None:
    stored = lab.ledger.to_dataframe().hash[8]
    for copied in (lambda row: stored,
                   lambda row: lab.ledger.sql(f"SELECT hash FROM ledger_entries WHERE seq = "
                                              f"{row.seq}").hash[0]):
        assert_hint(by_hand(lab, ex1_hash=copied), "for a row the ledger never held",
                    "not look it up")


@pytest.mark.parametrize(("slip", "said"), [
    ({"opening": False}, "opens with the field v2"),
    ({"sep": "|"}, "joined by the unit separator"),
    ({"decimals": False}, "9 digits after the point"),
    ({"escaped": False}, "each backslash is doubled"),
])
def test_hash_by_hand_names_the_slip(lab: SimpleNamespace, slip: dict, said: str) -> None:
    assert_hint(by_hand(lab, ex1_hash=lambda row: recipe(row, **slip)), said)


def test_hash_by_hand_hints_at_broken_functions(lab: SimpleNamespace) -> None:
    assert_hint(by_hand(lab, ex1_hash=lambda row: row["hash"]), "has none")
    assert_hint(by_hand(lab, ex1_hash=lambda row: 1 / 0), "raised ZeroDivisionError")
    assert_hint(by_hand(lab, ex1_hash=lambda row: None), "returned None")
    assert_hint(by_hand(lab, ex1_hash=lambda row: hashlib.sha256(b"x").digest()),
                "hexdigest()")
    assert_hint(by_hand(lab, ex1_hash=lambda row: "abc"), "64 digits")
    assert_hint(by_hand(lab, ex1_hash=lambda row: hashlib.sha256(b"x").hexdigest()),
                "does not give the stored hash")


def test_hash_by_hand_hints_at_junk(lab: SimpleNamespace) -> None:
    assert_hint(by_hand(lab, ex1_seq=99), "no entry at seq 99", "from 1 to 46")
    assert_hint(by_hand(lab, ex1_seq="6"), "drop the quotes")
    assert_hint(by_hand(lab, ex1_seq=float("nan")), "ex1_seq should be a whole number")
    for junk in WRONG_TYPES:
        assert not by_hand(lab, ex1_seq=junk).passed
        assert not by_hand(lab, ex1_hash=junk).passed
    for filler in FILLER:
        assert_hint(by_hand(lab, ex1_hash=filler), "ex1_hash")
    assert_hint(selfcheck.hash_by_hand("ledger", ex1_seq=6, ex1_hash=recipe),
                "ledger should be a ledger")


def test_hash_by_hand_refuses_a_tampered_entry(lab: SimpleNamespace) -> None:
    copy = lab.copy("hand-edited")
    copy.sql("UPDATE ledger_entries SET output = NULL WHERE seq = 9")
    assert_hint(selfcheck.hash_by_hand(copy, ex1_seq=9, ex1_hash=recipe),
                "no longer matches its stored hash")


def rewrite(copy: ReplayLedger, run_id: str, seq: int = 9, last: int = EVENTS) -> None:
    """Change an entry of the first run and recompute its chain (a forger's rewrite)."""
    frame = copy.to_dataframe()
    copy.sql(f"""UPDATE ledger_entries SET output = '"forged"' WHERE seq = {seq}""")
    previous = frame.hash[seq - 2]
    for at in range(seq, last + 1):
        row = copy.to_dataframe().iloc[at - 1].copy()
        row["prev_hash"] = previous
        previous = recipe(row)
        copy.sql(f"UPDATE ledger_entries SET prev_hash = '{row.prev_hash}', hash = "
                 f"'{previous}' WHERE seq = {at}")
    copy.sql(f"UPDATE ledger_runs SET head_hash = '{previous}' WHERE run_id = '{run_id}'")


def anchored_copy(lab: SimpleNamespace, name: str) -> tuple[ReplayLedger, list]:
    copy = lab.copy(name)
    return copy, [copy.anchor(r) for r in lab.runs] + [copy.anchor()]


def test_anchor_only_passes_a_rewrite_the_table_cannot_see(lab: SimpleNamespace) -> None:
    copy, anchors = anchored_copy(lab, "rewritten")
    rewrite(copy, lab.runs[0])
    assert copy.verify_chain().valid
    check = copy.verify_chain(anchor=anchors)
    assert_pass(selfcheck.anchor_only(copy, anchors, ex2_check=check),
                "plain verification says VALID", "rewritten")


def test_anchor_only_hints_at_damage_the_table_shows(lab: SimpleNamespace) -> None:
    copy, anchors = anchored_copy(lab, "deleted")
    copy.sql("DELETE FROM ledger_entries WHERE seq = 10")
    check = copy.verify_chain(anchor=anchors)
    assert_hint(selfcheck.anchor_only(copy, anchors, ex2_check=check),
                "already finds deleted")


def test_anchor_only_hints_when_nothing_changed_or_the_check_is_stale(
        lab: SimpleNamespace) -> None:
    copy, anchors = anchored_copy(lab, "untouched")
    before = copy.verify_chain(anchor=anchors)
    assert_hint(selfcheck.anchor_only(copy, anchors, ex2_check=before),
                "verifies against ex2_anchors too")
    rewrite(copy, lab.runs[0])
    assert_hint(selfcheck.anchor_only(copy, anchors, ex2_check=before),
                "as the copy is now")
    assert_hint(selfcheck.anchor_only(copy, anchors, ex2_check=copy.verify_chain()),
                "as the copy is now")


def test_anchor_only_asks_for_another_kind_than_the_lessons_truncation(
        lab: SimpleNamespace) -> None:
    copy, anchors = anchored_copy(lab, "truncated")
    copy.sql("DELETE FROM ledger_entries WHERE seq > 43")
    copy.sql(f"UPDATE ledger_runs SET entry_count = 20, status = 'running', ended_at = NULL, "
             f"head_hash = (SELECT hash FROM ledger_entries WHERE seq = 43) "
             f"WHERE run_id = '{lab.runs[1]}'")
    run_anchors = anchors[:2]  # the ledger anchor would add "deleted"
    check = copy.verify_chain(anchor=run_anchors)
    assert_hint(selfcheck.anchor_only(copy, run_anchors, ex2_check=check), "section 7")


def test_anchor_only_hints_at_junk(lab: SimpleNamespace) -> None:
    copy, anchors = anchored_copy(lab, "junk")
    for junk in WRONG_TYPES:
        assert not selfcheck.anchor_only(copy, anchors, ex2_check=junk).passed
        assert not selfcheck.anchor_only(copy, junk, ex2_check=copy.verify_chain()).passed
    assert_hint(selfcheck.anchor_only(copy, [], ex2_check=copy.verify_chain()), "at least 1")
    assert_hint(selfcheck.anchor_only(copy, anchors, ex2_check=None), "set ex2_check")


@pytest.fixture
def archive(lab: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """Exercise 3's setting: a damaged copy, its runs' exports and its anchors, in files."""
    damaged = lab.copy("damaged")
    paths = []
    for n, run_id in enumerate(lab.runs):
        path = tmp_path / f"run-{n}.json"
        path.write_text(damaged.export_run(run_id), encoding="utf-8")
        paths.append(str(path))
    anchors = str(tmp_path / "anchors.json")
    save_anchors([damaged.anchor(r) for r in lab.runs] + [damaged.anchor()], anchors)
    damaged.sql("DELETE FROM ledger_entries WHERE seq BETWEEN 30 AND 31")
    return SimpleNamespace(paths=paths, anchors=anchors, damaged=damaged, tmp=tmp_path)


def restore(archive: SimpleNamespace, paths: list[str] | None = None) -> ReplayLedger:
    restored = new_ledger(archive.tmp / "restored.duckdb")
    for path in archive.paths if paths is None else paths:
        restored.import_run(Path(path).read_text(encoding="utf-8"))
    return restored


def restored(archive: SimpleNamespace, **answers: Any) -> Any:
    return selfcheck.restored_archive(archive.paths, archive.anchors, archive.damaged, **answers)


def test_restored_archive_passes_every_run_verified_against_the_anchors(
        archive: SimpleNamespace) -> None:
    ledger = restore(archive)
    check = ledger.verify_chain(anchor=archive.anchors)
    assert_pass(restored(archive, ex3_restored=ledger, ex3_check=check),
                "the archive's 2 runs", "(46 entries)")


def test_restored_archive_hints_at_wrong_restores(archive: SimpleNamespace) -> None:
    assert_hint(restored(archive, ex3_restored=archive.damaged,
                         ex3_check=archive.damaged.verify_chain()), "damaged ledger itself")
    half = restore(archive, archive.paths[:1])
    assert_hint(restored(archive, ex3_restored=half, ex3_check=half.verify_chain()),
                "holds 1 of the archive's 2 runs")
    whole = restore(archive)
    assert_hint(restored(archive, ex3_restored=whole, ex3_check=whole.verify_chain()),
                "without the anchors")
    stale = restore(archive, archive.paths[:1])
    early = stale.verify_chain(anchor=archive.anchors)
    stale.import_run(Path(archive.paths[1]).read_text(encoding="utf-8"))
    assert_hint(restored(archive, ex3_restored=stale, ex3_check=early), "verify it again")


def test_restored_archive_hints_at_a_forged_archive(archive: SimpleNamespace) -> None:
    data = json.loads(Path(archive.paths[0]).read_text(encoding="utf-8"))
    data["entries"] = data["entries"][:-1]  # the end cut off the archived run
    data["run"]["entry_count"] -= 1
    Path(archive.paths[0]).write_text(json.dumps(data), encoding="utf-8")
    ledger = restore(archive)
    assert_hint(restored(archive, ex3_restored=ledger,
                         ex3_check=ledger.verify_chain(anchor=archive.anchors)),
                "does not verify against ex3_anchors")


def test_restored_archive_hints_at_junk(archive: SimpleNamespace, tmp_path: Path) -> None:
    ledger = restore(archive)
    check = ledger.verify_chain(anchor=archive.anchors)
    for junk in WRONG_TYPES:
        assert not restored(archive, ex3_restored=junk, ex3_check=check).passed
        assert not restored(archive, ex3_restored=ledger, ex3_check=junk).passed
    (tmp_path / "note.txt").write_text("not an export", encoding="utf-8")
    assert_hint(selfcheck.restored_archive([str(tmp_path / "note.txt")], archive.anchors,
                                           archive.damaged, ex3_restored=ledger,
                                           ex3_check=check), "not an exported run")
    assert_hint(selfcheck.restored_archive(["missing.json"], archive.anchors, archive.damaged,
                                           ex3_restored=ledger, ex3_check=check),
                "not an exported run")
    assert_hint(restored(archive, ex3_restored=None, ex3_check=None),
                "set ex3_restored", "ex3_check")
