"""docs/postgres-classroom.md, run as written against a throwaway PostgreSQL server.

Every SQL block of the guide is taken from the page (so the page and this test cannot
drift) and run with psql as the role and in the database its first comment line names;
the owner's setup command is the page's own command line. Then a learner appends a run
and is refused every change, and the instructor verifies the class's runs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_cluster import PgCluster

from meshflow_nb import Policy
from meshflow_nb.cli import conformance_production as production
from meshflow_nb.cli.commands import main
from meshflow_nb.ledger import ReplayLedger
from meshflow_nb.pipelines import build_capstone_pipeline

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "postgres-classroom.md"
BLOCK = re.compile(r"```(sql|bash)\n(.*?)```", re.DOTALL)
HEADER = re.compile(r"-- as (\w+), in the database (\w+)(: each statement is refused)?")
ROLES = ("ana", "ben", "meshflow_learners", "meshflow_owner")
DATABASES = ("class_ledger", "class_ledger_2026_autumn")


pytestmark = pytest.mark.usefixtures("mock_mode")


def blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
            if lang == kind]


def sql_blocks() -> list[tuple[str, str, bool, str]]:
    """(role, database, refused, SQL) of every SQL block, in the page's order."""
    found = []
    for body in blocks("sql"):
        header = HEADER.match(body)
        assert header, f"an SQL block must start with '-- as ROLE, in the database DB': {body}"
        found.append((header[1], header[2], header[3] is not None, body))
    return found


class Classroom:
    """The guide's server: URLs per role and database, and psql to run its blocks."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.psql = cluster.bindir / "psql"
        self.tag = uuid.uuid4().hex[:8]
        """In every URL: a process keeps one store per URL, and each test's databases
        are new ones under the same names."""

    def url(self, role: str, database: str) -> str:
        url = self.cluster.url(database).replace("postgresql://postgres@",
                                                 f"postgresql://{role}@", 1)
        return f"{url}&application_name=classroom_{self.tag}"

    def run(self, role: str, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               "-d", self.url(role, database), "-f", "-"], input=sql,
                              capture_output=True, text=True, timeout=60)

    def block(self, index: int) -> str:
        role, database, refused, sql = sql_blocks()[index]
        assert not refused
        done = self.run(role, database, sql)
        assert done.returncode == 0, f"as {role} in {database}:\n{sql}\n{done.stderr}"
        return done.stdout


@pytest.fixture
def classroom(pg_cluster: PgCluster) -> Iterator[Classroom]:
    room = Classroom(pg_cluster)
    yield room
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        for database in DATABASES:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        for role in ROLES:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def install_as_owner(room: Classroom) -> None:
    """Step 2: the page's own command, with this server's URL for the owner."""
    line = next(x for x in blocks("bash")[0].splitlines() if x.startswith("meshflow-nb "))
    args = shlex.split(line)[1:]
    args[args.index("--db") + 1] = room.url("meshflow_owner", "class_ledger")
    assert main(args) == 0


def set_up(room: Classroom) -> None:
    """Steps 1 to 4: roles and database, tables and triggers, rights, run_writers."""
    room.block(0)
    install_as_owner(room)
    room.block(1)
    room.block(2)


def test_the_guide_has_the_blocks_this_test_runs():
    headers = [(role, database, refused) for role, database, refused, _ in sql_blocks()]
    assert headers == [("postgres", "postgres", False), ("meshflow_owner", "class_ledger", False),
                       ("meshflow_owner", "class_ledger", False), ("ana", "class_ledger", True),
                       ("meshflow_owner", "class_ledger", False), ("postgres", "postgres", False),
                       ("postgres", "class_ledger", False)]


def test_a_learner_appends_a_run_and_cannot_change_any_entry(classroom):
    set_up(classroom)
    ana = classroom.url("ana", "class_ledger")
    result = ReplayLedger(ana).attach(build_capstone_pipeline()).run("Assess heat pumps")
    assert result.ok, result.summary()

    _, _, refused, sql = sql_blocks()[3]
    code = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in code.split(";") if s.strip()]
    assert refused and len(statements) == 5
    for statement in statements:
        done = classroom.run("ana", "class_ledger", statement + ";")
        assert done.returncode != 0, statement
        assert re.search(r"permission denied|must be owner", done.stderr), done.stderr

    owner = classroom.url("meshflow_owner", "class_ledger")
    with psycopg.connect(owner, autocommit=True) as con, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        con.execute("DELETE FROM ledger_entries")  # the triggers refuse the owner too
    assert ReplayLedger(owner).verify_chain().valid


def test_the_instructor_verifies_everyones_runs_and_sees_who_wrote_them(classroom, monkeypatch):
    set_up(classroom)
    runs = {}
    for learner in ("ana", "ben"):
        ledger = ReplayLedger(classroom.url(learner, "class_ledger"))
        runs[learner] = ledger.attach(build_capstone_pipeline()).run(f"Task of {learner}").run_id
    owner = classroom.url("meshflow_owner", "class_ledger")
    assert main(["ledger", "verify", "--db", owner]) == 0
    table = classroom.block(4)
    for learner, run_id in runs.items():
        assert re.search(rf"^\s*{learner}\s*\|\s*{run_id}\s*\|", table, re.MULTILINE), table
    monkeypatch.setenv("MESHFLOW_LEDGER_DB", classroom.url("ben", "class_ledger"))
    found = production.ledger_db(Path.cwd())
    assert found.status == "PASS" and "in 2 runs verified" in found.detail


def test_between_classes_the_old_ledger_is_kept_and_a_fresh_one_set_up(classroom):
    set_up(classroom)
    ReplayLedger(classroom.url("ana", "class_ledger")).attach(build_capstone_pipeline()).run("t")
    classroom.block(5)
    classroom.tag = uuid.uuid4().hex[:8]  # the next commands are new processes, as in the guide
    install_as_owner(classroom)  # steps 2, 3 and 4 again, on the new database
    classroom.block(1)
    classroom.block(2)
    fresh = ReplayLedger(classroom.url("ana", "class_ledger"))
    assert fresh.attach(build_capstone_pipeline()).run("t").ok
    with psycopg.connect(classroom.url("meshflow_owner", "class_ledger_2026_autumn")) as old:
        assert old.execute("SELECT count(DISTINCT run_id) FROM ledger_entries").fetchone() == (1,)
    classroom.block(6)  # a learner leaves
    with psycopg.connect(classroom.cluster.url("postgres")) as admin:
        assert admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ben'"
                             ).fetchone() == (False,)


def test_a_learner_can_run_under_immutable_audit(classroom):
    set_up(classroom)
    ledger = ReplayLedger(classroom.url("ana", "class_ledger"))
    result = ledger.attach(build_capstone_pipeline()).run(
        "t", policy=Policy("standard", immutable_audit=True))
    assert result.ok, result.summary()
    assert ReplayLedger(classroom.url("meshflow_owner", "class_ledger")).verify_chain().valid


def test_a_learner_is_told_who_installs_triggers_that_are_missing(classroom):
    classroom.block(0)
    owner = classroom.url("meshflow_owner", "class_ledger")
    capstone = build_capstone_pipeline()
    ReplayLedger(owner, immutable=True).attach(capstone).run("t")
    classroom.block(1)
    with psycopg.connect(owner, autocommit=True) as con:
        con.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable")
    ana = ReplayLedger(classroom.url("ana", "class_ledger")).attach(build_capstone_pipeline())
    refused = ana.run("t", policy=Policy("standard", immutable_audit=True))
    assert refused.status.value == "rejected_preflight"
    assert not any(e.type.value == "node_start" for e in refused.events)
    problem = next(p for p in refused.preflight.problems if p.rule == "P008")
    assert "cannot be sealed by role ana" in problem.message
    assert ": ledger_entries_immutable is missing or disabled" in problem.message
    assert "Have meshflow_owner open the ledger" in problem.message
    assert "does not verify" not in problem.message
    assert ReplayLedger(owner).seal().valid  # the owner seals it again: ana runs
    assert ana.run("t", policy=Policy("standard", immutable_audit=True)).ok
