"""Lesson 11 hands-on: the audit ledger.

    MESHFLOW_MOCK=1 python3 hands_on/11_the_audit_ledger.py                  # 2 runs, verified
    MESHFLOW_MOCK=1 python3 hands_on/11_the_audit_ledger.py --runs 3
    MESHFLOW_MOCK=1 python3 hands_on/11_the_audit_ledger.py --tamper edited  # on a copy
    MESHFLOW_MOCK=1 python3 hands_on/11_the_audit_ledger.py --tamper truncated
    MESHFLOW_MOCK=1 python3 hands_on/11_the_audit_ledger.py --reject --reviewer alice

The pipeline is the capstone of lesson 16, run --runs times; a scripted reviewer decides
its gate (--reject rejects). After the runs the script keeps what an auditor keeps: each
run's export (JSON) and the anchors of every run and of the whole ledger, in --archive
(default audit-archive/, next to the ledger, never inside it; in the working directory for
a PostgreSQL ledger). It recomputes one hash by hand from the documented recipe and
compares it with the stored one.

--tamper KIND damages a fresh DuckDB copy of the ledger (tampered-KIND.duckdb in the same
folder; never the ledger itself) the way someone with write access to the file would, and
verifies the copy with and without the anchors: edited (an output changed), deleted (an
entry removed), truncated (the end of the last run cut off and its record fixed: only the
anchor sees it), record (a run's status changed).

Every event goes to the ledger (MESHFLOW_LEDGER_DB, default audit.duckdb). The script ends
by verifying it against the anchors. Exit status: 0 when every run ended as a governed run
ends (completed, or rejected at the gate), the ledger verifies, and a --tamper was found;
1 otherwise; 2, with one line, for a flag that cannot be used or a pipeline that cannot be
built (neither MESHFLOW_MOCK=1 nor ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import pandas as pd

from meshflow_nb import MeshflowError, RunResult, ScriptParser, fixed_approver
from meshflow_nb.ledger import (
    ReplayLedger,
    VerificationResult,
    ledger_folder,
    redacted_location,
    save_anchors,
)
from meshflow_nb.notebook import ledger_copy
from meshflow_nb.pipelines import CAPSTONE_TASK, build_capstone_pipeline

LEDGER_DB = os.environ.get("MESHFLOW_LEDGER_DB", "audit.duckdb")
GOVERNED_ENDS = ("completed", "rejected_at_gate")
MAX_RUNS = 20
DECIMALS = {"uncertainty", "cost_usd", "carbon_g"}
TAMPERS = {
    "edited": "UPDATE ledger_entries SET output = '{{\"tampered\": true}}' WHERE seq = {first} + 1",
    "deleted": "DELETE FROM ledger_entries WHERE seq = {first} + 9",
    "truncated": "DELETE FROM ledger_entries WHERE seq > {last} - 3",
    "record": "UPDATE ledger_runs SET status = 'failed' WHERE run_id = '{run}'",
}
"""What each --tamper does to the copy, in SQL ({first}/{last}: the last run's first and
last seq; {run}: its id)."""
FIX_TRUNCATED_RECORD = ("UPDATE ledger_runs SET entry_count = entry_count - 3, status = "
                        "'running', ended_at = NULL, head_hash = (SELECT hash FROM "
                        "ledger_entries WHERE seq = {last} - 3) WHERE run_id = '{run}'")
"""After truncating, the record made to agree: the table alone then shows no damage."""


def runs_flag(text: str) -> int:
    """A number of runs: a whole number from 1 to MAX_RUNS."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_RUNS:
        raise argparse.ArgumentTypeError(f"{text!r}: --runs is a whole number from 1 to "
                                         f"{MAX_RUNS}")
    return int(text)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: how many runs, the gate's decision, a tamper, the archive."""
    parser = ScriptParser(description="Run the capstone, archive its runs and anchors, "
                           "recompute a hash by hand and verify the ledger (lesson 11).")
    parser.add_argument("--runs", type=runs_flag, default=2,
                        help="how many runs, one after the other (default 2)")
    parser.add_argument("--reject", action="store_true",
                        help="the scripted reviewer rejects every draft at the gate")
    parser.add_argument("--reviewer", default="script",
                        help="the name recorded with the scripted decision (default script)")
    parser.add_argument("--tamper", choices=sorted(TAMPERS),
                        help="damage a copy of the ledger this way and verify the copy")
    parser.add_argument("--archive", default=None,
                        help="folder for the exports and anchors (default: audit-archive "
                             "beside the ledger)")
    return parser.parse_args(argv)


def canonical_hash(row: pd.Series) -> str:
    """The SHA-256 of one entry's canonical text, from the recipe in docs/ledger.md."""
    fields = ["v2"]
    for column, value in row.drop(labels=["hash"]).items():
        if pd.isna(value):
            fields.append("\\N")
        elif column in DECIMALS:
            fields.append(f"{value:.9f}")
        else:
            fields.append(str(value).replace("\\", "\\\\").replace("\x1f", "\\x1f"))
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def archive(ledger: ReplayLedger, results: list[RunResult], folder: Path) -> Path:
    """Each run's export and every anchor, written to ``folder``; returns the anchors file."""
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        (folder / f"{result.run_id}.json").write_text(ledger.export_run(result.run_id),
                                                       encoding="utf-8")
    anchors = folder / "anchors.json"
    save_anchors([ledger.anchor(r.run_id) for r in results] + [ledger.anchor()], anchors)
    print(f"Archive {folder}: {len(results)} export(s) and {len(results) + 1} anchors")
    return anchors


def by_hand(ledger: ReplayLedger) -> bool:
    """Recompute the newest node_complete entry's hash and compare it with the stored one."""
    entries = ledger.to_dataframe()
    row = entries[entries.event_type == "node_complete"].iloc[-1]
    ours = canonical_hash(row)
    same = ours == row["hash"]
    print(f"Hash of seq {row['seq']} ({row['event_type']} of {row['node_id']}) by hand: "
          f"{ours[:16]}… {'equals' if same else 'DIFFERS FROM'} the stored hash")
    return same


def tamper(ledger: ReplayLedger, kind: str, anchors: Path) -> bool:
    """Damage a copy of the ledger; True when the verifier (with the anchors) finds it."""
    copy = ledger_copy(ledger, ledger_folder(ledger.location) / f"tampered-{kind}.duckdb")
    last_run = copy.sql("SELECT run_id, min(seq) AS first, max(seq) AS last FROM "
                        "ledger_entries GROUP BY run_id ORDER BY first DESC LIMIT 1").iloc[0]
    values = {"first": int(last_run["first"]), "last": int(last_run["last"]),
              "run": last_run["run_id"]}
    copy.sql(TAMPERS[kind].format(**values))
    if kind == "truncated":
        copy.sql(FIX_TRUNCATED_RECORD.format(**values))
    print(f"\nTampered copy {copy.location} ({kind}):")
    show("  without anchors", copy.verify_chain())
    found = copy.verify_chain(anchor=anchors)
    show("  with anchors", found)
    return not found.valid


def show(title: str, check: VerificationResult) -> None:
    """A verification's report, indented under a title."""
    print(f"{title}: " + check.report().replace("\n", "\n  "))


def main(argv: list[str] | None = None) -> int:
    """Run the capstone --runs times, archive, check by hand, tamper if asked, verify."""
    args = parse(argv)
    try:
        pipeline = build_capstone_pipeline()
    except MeshflowError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2
    ledger = ReplayLedger(LEDGER_DB)
    ledger.attach(pipeline)
    # A tutorial shortcut: the reviewer's decision is scripted, not asked of a person.
    approver = fixed_approver(not args.reject, args.reviewer,
                              "rejected with --reject" if args.reject else "approved by script",
                              channel="script")
    results = [pipeline.run(CAPSTONE_TASK, approver=approver) for _ in range(args.runs)]
    for number, result in enumerate(results, 1):
        print(f"Run {number} {result.run_id}: {result.status.value}, {len(result.events)} events")
    folder = Path(args.archive) if args.archive else ledger_folder(LEDGER_DB) / "audit-archive"
    anchors = archive(ledger, results, folder)
    same = by_hand(ledger)
    caught = tamper(ledger, args.tamper, anchors) if args.tamper else True
    check = ledger.verify_chain(anchor=anchors)
    print(f"\nLedger {redacted_location(LEDGER_DB)}: " + check.report())
    ended = all(r.status.value in GOVERNED_ENDS for r in results)
    return 0 if ended and same and caught and check.valid else 1


if __name__ == "__main__":
    sys.exit(main())
