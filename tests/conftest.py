"""Shared fixtures: a real PostgreSQL server that the test session starts and stops itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_cluster import PgCluster, find_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway cluster per session (per xdist worker), listening on a unix socket only.

    Skips only when no server is installed; a server that is there but will not start is
    an error, so a broken setup never passes as skipped tests.
    """
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql; "
                    "./dev test installs them with apt-get")
    cluster = PgCluster(bindir)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(pg_cluster: PgCluster) -> str:
    """URL of the session's database, e.g. ``postgresql://postgres@/meshflow_test?host=…``."""
    return pg_cluster.url()


@pytest.fixture
def postgres_db(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh, empty database of this test's own, dropped afterwards."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def mock_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic mock agents with no simulated latency (``MESHFLOW_MOCK=1``).

    A module opts in with ``pytestmark = pytest.mark.usefixtures("mock_mode")``.
    """
    monkeypatch.setenv("MESHFLOW_MOCK", "1")
    monkeypatch.setenv("MESHFLOW_MOCK_LATENCY", "0")


@pytest.fixture(params=["duckdb", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh ledger location on each backend: a DuckDB file, or a database of its own
    on the session's real PostgreSQL server."""
    if request.param == "duckdb":
        return str(tmp_path / "ledger.duckdb")
    return request.getfixturevalue("postgres_db")
