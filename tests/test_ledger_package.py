"""The ledger package: its public names load on first use, drivers only with a store
that needs them, and a finding about ledger damage is a `Finding` (pre-flight's
`Problem` is another thing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import meshflow_nb
import meshflow_nb.ledger as ledger_package
from meshflow_nb.ledger import Finding, ReplayLedger, forensics
from meshflow_nb.pipelines import build_capstone_pipeline

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("mock_mode")


def test_every_public_name_loads():
    for name in ledger_package.__all__:
        assert getattr(ledger_package, name) is not None, name
    assert dir(ledger_package) == sorted(ledger_package.__all__)


def test_verification_reports_findings_not_preflight_problems(tmp_path):
    ledger = ReplayLedger(tmp_path / "ledger.duckdb")
    ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t")
    ledger.flush()
    ledger.store.close()
    with duckdb.connect(ledger.location) as con:
        con.execute("""UPDATE ledger_entries SET output = '{"x": 1}' WHERE seq = 2""")
    found = ledger.verify_chain().problems
    assert found and all(type(f) is Finding for f in found)
    assert Finding is forensics.Finding and Finding is not meshflow_nb.Problem
    assert repr(found[0]).startswith("Finding(seq=2, ")


def test_problem_is_pre_flights_name_only():
    """A finding about damage is a `Finding`; `Problem` means a pre-flight problem."""
    assert not hasattr(ledger_package, "Problem")
    assert "Finding" in ledger_package.__all__ and Finding.__name__ == "Finding"


PROBE = """
import sys
import meshflow_nb.ledger
print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'duckdb', 'psycopg'}))
from meshflow_nb.ledger import ReplayLedger
ReplayLedger(sys.argv[1]).verify_chain()
print(sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'psycopg'}))
"""


def test_drivers_load_only_when_a_store_needs_them(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "ledger.duckdb")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "['duckdb']"]
