"""What a store does, the same on DuckDB and on PostgreSQL.

Driver errors never reach a caller: every failure is a LedgerError saying what failed
and on which ledger, with the driver's error kept as its cause; files that cannot hold a
ledger are refused in one line. Each run's record in ``ledger_runs`` is filled from its
events as they are written (nothing is serialised and parsed back), and an imported run
keeps the record it was exported with. Each database rebuilds an entry's canonical text
exactly as Python writes it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest

from meshflow_nb import MeshflowError
from meshflow_nb.events import EventType, MeshEvent, utc_now
from meshflow_nb.ledger import (
    ImmutableLedgerError,
    LedgerBusyError,
    LedgerError,
    ReplayLedger,
)
from meshflow_nb.ledger.canonical import CANONICAL_SQL, HASHED_COLUMNS, canonical_text, entry_hash
from meshflow_nb.ledger.rows import RUN_FIELDS, event_row, to_json_text
from meshflow_nb.ledger.schema import ENTRY_COLUMNS
from meshflow_nb.pipelines import build_capstone_pipeline

pytestmark = pytest.mark.usefixtures("mock_mode")


def driver_error(location: str) -> type[Exception]:
    return psycopg.Error if location.startswith("postgres") else duckdb.Error


def title(location: str) -> str:
    return "PostgreSQL" if location.startswith("postgres") else "DuckDB"


def failure(call) -> LedgerError:
    """The LedgerError ``call`` raises (any other exception fails the test)."""
    with pytest.raises(LedgerError) as err:
        call()
    return err.value


def capstone_into(ledger: ReplayLedger):
    return ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t")


# --- store operations, on both databases ------------------------------------------


def test_bad_sql_is_a_ledger_error_naming_the_query_and_the_ledger(location):
    error = failure(lambda: ReplayLedger(location).sql("SELEC nonsense"))
    assert type(error) is LedgerError and isinstance(error, MeshflowError)
    assert isinstance(error.__cause__, driver_error(location))
    message = str(error)
    assert message.startswith("cannot run the query 'SELEC nonsense' on the "
                              f"{title(location)} ledger at "), message
    assert "\n" not in message  # the driver's full text stays in the cause


def test_after_a_failed_query_the_ledger_still_records_and_verifies(location):
    ledger = ReplayLedger(location)
    failure(lambda: ledger.sql("SELECT * FROM no_such_table"))
    failure(lambda: ledger.store.rows("SELECT nonsense FROM ledger_entries"))
    result = capstone_into(ledger)
    assert ledger.verify_chain(result.run_id).valid
    assert ledger.events(result.run_id) == result.events


def test_a_failed_transaction_is_a_ledger_error_and_is_rolled_back(location):
    ledger = ReplayLedger(location)
    capstone_into(ledger)
    before = ledger.sql("SELECT count(*) AS n FROM ledger_entries").loc[0, "n"]

    def half_a_change() -> None:
        with ledger.store.transaction() as cur:
            cur.execute("DELETE FROM ledger_entries")
            cur.execute("SELECT * FROM no_such_table")

    assert isinstance(failure(half_a_change).__cause__, driver_error(location))
    assert ledger.sql("SELECT count(*) AS n FROM ledger_entries").loc[0, "n"] == before


def test_an_append_the_database_refuses_is_a_ledger_error(location):
    ledger = ReplayLedger(location)
    row = event_row(MeshEvent("orphan", 1, utc_now(), EventType.RUN_START))
    orphan = {**row, "run_id": None}  # run_id is NOT NULL (event_row itself refuses None)
    error = failure(lambda: ledger.store.append([orphan]))
    assert str(error).startswith(f"cannot append 1 entry on the {title(location)} ledger")
    assert isinstance(error.__cause__, driver_error(location))
    assert ledger.verify_chain(capstone_into(ledger).run_id).valid  # positions re-read


def test_an_import_the_database_refuses_is_a_ledger_error(location, tmp_path):
    source = ReplayLedger(tmp_path / "source.duckdb")
    run_id = capstone_into(source).run_id
    archive = json.loads(source.export_run(run_id))
    archive["entries"][0]["hash"] = None  # hash is NOT NULL
    error = failure(lambda: ReplayLedger(location).import_run(json.dumps(archive)))
    assert str(error).startswith(f"cannot import run {run_id} on the {title(location)}")
    assert isinstance(error.__cause__, driver_error(location))


# --- PostgreSQL: rights, triggers, passwords ---------------------------------------


def as_visitor(url: str, *grants: str) -> str:
    """``url`` for a new login role (roles are cluster-wide: a name of its own) without
    rights but ``grants`` (``{role}`` in them is its name), with a password."""
    role = f"visitor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN")
        for grant in grants:
            con.execute(grant.format(role=role))
    return url.replace("postgres@", f"{role}:s3cret@")


def test_postgres_without_rights_is_a_ledger_error_without_the_password(postgres_db):
    ReplayLedger(postgres_db)
    error = failure(lambda: ReplayLedger(as_visitor(postgres_db)))
    assert str(error).startswith("cannot create the ledger tables on the PostgreSQL ledger")
    assert "permission denied" in str(error) and "s3cret" not in str(error)
    assert isinstance(error.__cause__, psycopg.errors.InsufficientPrivilege)


def test_postgres_triggers_that_cannot_be_installed_are_a_ledger_error(postgres_db):
    ReplayLedger(postgres_db)
    url = as_visitor(postgres_db, "GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    error = failure(lambda: ReplayLedger(url, immutable=True))
    assert str(error).startswith("cannot install the immutability triggers on the "
                                 "PostgreSQL ledger")
    assert "s3cret" not in str(error)


def test_a_change_the_triggers_refuse_is_an_immutable_ledger_error(postgres_db):
    capstone_into(ReplayLedger(postgres_db, immutable=True))
    unsealed = ReplayLedger(postgres_db)  # this object would allow it; the database does not
    with pytest.raises(ImmutableLedgerError, match="append-only") as err:
        unsealed.sql("DELETE FROM ledger_entries WHERE seq = 2")
    assert isinstance(err.value.__cause__, psycopg.errors.RaiseException)
    assert unsealed.verify_chain().valid


def test_a_missing_postgres_database_is_a_clear_error(pg_cluster):
    error = failure(lambda: ReplayLedger(pg_cluster.url("no_such_database")))
    assert str(error).startswith("cannot connect to the PostgreSQL ledger at ")
    assert "no_such_database" in str(error) and "\n" not in str(error)
    assert isinstance(error.__cause__, psycopg.OperationalError)


def test_a_password_in_the_uri_never_shows_in_errors_or_repr(postgres_db):
    url = postgres_db.replace("postgres@", "postgres:s3cret@")
    ledger = ReplayLedger(url)
    assert "s3cret" not in str(failure(lambda: ledger.sql("SELEC nonsense")))
    assert "s3cret" not in str(failure(lambda: ledger.events("no-such-run")))
    assert "s3cret" not in repr(ledger) and "postgres:***@" in repr(ledger)


# --- files that are not a ledger -------------------------------------------------------


def a_directory(path: Path) -> Path:
    path.mkdir()
    return path


def a_text_file(path: Path) -> Path:
    path.write_text("run_id,status\nabc,completed\n", encoding="utf-8")
    return path


def an_empty_file(path: Path) -> Path:
    path.touch()
    return path


def a_corrupted_ledger(path: Path) -> Path:
    """A real ledger file, closed cleanly, then with its data blocks overwritten."""
    source = ReplayLedger(path.with_name("intact.duckdb"))
    capstone_into(source)
    source.flush()
    source.store.close()
    shutil.copy(source.location, path)
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 7):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [a_directory, a_text_file, an_empty_file, a_corrupted_ledger])
def test_a_file_that_is_not_a_ledger_is_refused_in_one_line(tmp_path, make):
    # "locked" in the name: an error that merely mentions a lock is no busy file
    path = make(tmp_path / "locked.duckdb")
    began = time.monotonic()
    error = failure(lambda: ReplayLedger(path).verify_chain())
    assert not isinstance(error, LedgerBusyError)
    assert time.monotonic() - began < 5  # refused at once, not retried as a busy file
    message = str(error)
    assert message.startswith(f"cannot open the DuckDB ledger at {path}: "), message
    assert "a ledger file must be a DuckDB database" in message and "\n" not in message
    assert isinstance(error.__cause__, duckdb.Error)


# --- run records ---------------------------------------------------------------------


POLICY = {"immutable_audit": False, "budget": {"max_cost_usd": 1.5}, "name": "Grüße"}


def run_events(run_id: str) -> list[MeshEvent]:
    """A run of three events: its start, one node, its end."""
    ts = "2024-05-06T07:08:09.{:06d}+00:00".format
    return [
        MeshEvent(run_id, 1, ts(1), EventType.RUN_START,
                  payload={"workflow": "wf", "task": "a task", "nodes": 1, "policy": POLICY}),
        MeshEvent(run_id, 2, ts(2), EventType.NODE_COMPLETE, node_id="n", output="done"),
        MeshEvent(run_id, 3, ts(3), EventType.RUN_COMPLETE,
                  payload={"status": "completed", "error": None}),
    ]


def record(ledger: ReplayLedger, run_id: str) -> dict:
    runs = ledger.runs()
    return runs[runs["run_id"] == run_id].iloc[0].to_dict()


def test_the_run_record_is_taken_from_the_events_not_their_json(location, monkeypatch):
    ledger = ReplayLedger(location)
    one, two = run_events("run-one"), run_events("run-two")

    def no_parsing(*args, **kwargs):
        raise AssertionError("the store parsed JSON text back")

    with monkeypatch.context() as patch:
        patch.setattr(json, "loads", no_parsing)
        ledger.store.append([event_row(one[0])])  # the record is made...
        ledger.store.append([event_row(e) for e in one[1:]])  # ...then brought up to date
        ledger.store.append([event_row(e) for e in two])  # made whole in one batch
    for run_id in ("run-one", "run-two"):
        got = record(ledger, run_id)
        assert (got["workflow"], got["task"], got["status"]) == ("wf", "a task", "completed")
        assert got["policy"] == to_json_text(POLICY)
        assert json.loads(got["policy"]) == POLICY
        assert (got["started_at"], got["ended_at"]) == (one[0].ts, one[2].ts)
        assert got["entry_count"] == 3
    assert ledger.verify_chain().valid


def test_a_run_without_its_end_stays_running(location):
    ledger = ReplayLedger(location)
    ledger.store.append([event_row(e) for e in run_events("cut")[:2]])
    got = record(ledger, "cut")
    assert got["status"] == "running" and got["ended_at"] is None
    assert got["entry_count"] == 2


def test_the_run_fields_ride_on_the_row_but_are_never_stored(location):
    rows = [event_row(e) for e in run_events("r")]
    assert [RUN_FIELDS in row for row in rows] == [True, False, True]
    assert RUN_FIELDS not in {name for name, _ in ENTRY_COLUMNS}
    ledger = ReplayLedger(location)
    ledger.store.append(rows)
    assert list(ledger.to_dataframe().columns) == [name for name, _ in ENTRY_COLUMNS]
    assert RUN_FIELDS not in ledger.export_run("r")


def test_an_imported_run_keeps_its_exported_record(location, tmp_path):
    source = ReplayLedger(tmp_path / "source.duckdb")
    run_id = source.attach(build_capstone_pipeline(quality_scores=[0.9])).run("t").run_id
    target = ReplayLedger(location)
    target.import_run(source.export_run(run_id))
    assert record(target, run_id) == record(source, run_id)
    assert target.verify_chain().valid


# --- the canonical text in SQL ------------------------------------------------------


def test_the_sql_canonical_text_is_the_python_one(location):
    ledger = ReplayLedger(location)
    ledger.attach(build_capstone_pipeline(quality_scores=[0.9])).run("Grüße, 😀 \\ '\"")
    ledger.flush()
    frame = ledger.sql(f"SELECT seq, {CANONICAL_SQL} AS canonical, hash FROM ledger_entries "
                       "ORDER BY seq")
    texts = dict(zip(frame["seq"], frame["canonical"], strict=True))
    columns = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in HASHED_COLUMNS)
    stored = ledger.store.rows(f"SELECT {columns} FROM ledger_entries ORDER BY seq")
    for values in stored:
        row = dict(zip(HASHED_COLUMNS, values, strict=True))
        assert texts[int(row["seq"])] == canonical_text(row)
    assert [entry_hash(t) for t in frame["canonical"]] == list(frame["hash"])



def test_a_ledger_in_a_folder_that_does_not_exist_says_so(tmp_path) -> None:
    from meshflow_nb import LedgerError, ReplayLedger

    with pytest.raises(LedgerError, match=r"the folder .*missing does not exist"):
        ReplayLedger(tmp_path / "missing" / "x.duckdb").verify_chain()
    assert not (tmp_path / "missing").exists()
