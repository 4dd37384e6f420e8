"""The PostgreSQL fixtures: a real server of the session's own, one database per test."""

from __future__ import annotations

from pathlib import Path

import pg_cluster as pgc
import psycopg
import pytest


def test_postgres_url_connects_to_the_test_database(postgres_url):
    with psycopg.connect(postgres_url) as con:
        assert con.execute("SELECT current_database()").fetchone() == ("meshflow_test",)


def test_it_is_a_real_postgresql_server(postgres_url):
    with psycopg.connect(postgres_url) as con:
        assert "PostgreSQL" in con.execute("SELECT version()").fetchone()[0]


def test_the_server_listens_on_no_tcp_port(postgres_url):
    with psycopg.connect(postgres_url) as con:
        assert con.execute("SHOW listen_addresses").fetchone() == ("",)
        assert Path(con.info.host).is_dir()  # the client came in through the unix socket


def test_data_survives_a_reconnect(postgres_db):
    with psycopg.connect(postgres_db) as con:
        con.execute("CREATE TABLE notes (body text)")
        con.execute("INSERT INTO notes VALUES ('kept')")
    with psycopg.connect(postgres_db) as con:
        assert con.execute("SELECT body FROM notes").fetchall() == [("kept",)]


def test_databases_of_different_tests_are_isolated(pg_cluster, postgres_db):
    other = pg_cluster.create_database()
    try:
        assert other != postgres_db
        with psycopg.connect(postgres_db) as con:
            con.execute("CREATE TABLE only_here (x int)")
        with psycopg.connect(other) as con:
            assert con.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    finally:
        pg_cluster.drop_database(other)


def test_a_database_is_dropped_even_with_a_client_still_connected(pg_cluster):
    url = pg_cluster.create_database()
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url):
        pg_cluster.drop_database(url)
    with psycopg.connect(pg_cluster.url()) as con:
        found = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchall()
    assert found == []


def test_a_second_cluster_runs_alongside_and_leaves_nothing_behind(pg_cluster):
    second = pgc.PgCluster(pg_cluster.bindir)
    with second as url:
        base = second.base
        assert url != pg_cluster.url()
        with psycopg.connect(url) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
    assert not base.exists()


def test_a_server_that_will_not_start_is_an_error_quoting_its_log(pg_cluster, monkeypatch):
    monkeypatch.setitem(pgc.SETTINGS, "no_such_setting", "1")
    broken = pgc.PgCluster(pg_cluster.bindir)
    with pytest.raises(pgc.PgClusterError, match="pg_ctl") as error:
        broken.start()
    assert 'unrecognized configuration parameter "no_such_setting"' in str(error.value)
    assert broken.base is None  # the half-made cluster was removed


def test_pg_bindir_overrides_the_search(pg_cluster, monkeypatch):
    monkeypatch.setenv("PG_BINDIR", str(pg_cluster.bindir))
    assert pgc.find_bindir() == pg_cluster.bindir
    monkeypatch.setenv("PG_BINDIR", "/nonexistent")
    with pytest.raises(pgc.PgClusterError, match="PG_BINDIR"):
        pgc.find_bindir()


def test_the_newest_installed_version_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(pgc, "DEBIAN_ROOT", tmp_path)
    assert pgc.find_bindir() is None
    for version in ("9.6", "15", "13"):
        for program in ("initdb", "pg_ctl"):
            path = tmp_path / version / "bin" / program
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o755)
    (tmp_path / "16" / "bin").mkdir(parents=True)  # client-only install: no server
    assert pgc.find_bindir() == tmp_path / "15" / "bin"
