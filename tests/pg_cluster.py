"""Throwaway PostgreSQL clusters for the test suite, built from Debian's server binaries.

A cluster lives in one fresh temp dir: the data directory, the server log and the server's
unix socket. It listens on no TCP address, so clusters of parallel test runs (or xdist
workers) never collide with each other or with a system server on port 5432.

Connection URLs are libpq URIs that name the socket directory in the query string::

    postgresql://postgres@/meshflow_test?host=/tmp/meshflow-pg-k3j2&port=54321

``host`` is the directory holding the socket (percent-encoded where needed) and ``port``
picks the socket file ``.s.PGSQL.<port>`` in it. psycopg 3, psql and every libpq client
accept this form.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the server runs as
the unprivileged ``postgres`` user (created by Debian's package), or ``nobody`` without
it, through ``runuser``; the temp dir then belongs to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
DATABASE = "meshflow_test"
TIMEOUT = 60  # seconds for any one step; a healthy start takes about a second

# Durability is worthless for a cluster deleted after the run; turning it off saves time.
SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PgClusterError(RuntimeError):
    """A step of setting up or tearing down a cluster failed; the message says how."""


def find_bindir() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl``: ``$PG_BINDIR``, else Debian's newest.

    Returns None when no server is installed, so callers can skip; a ``PG_BINDIR`` that
    points at no server is a mistake, reported as an error rather than hidden by a skip.
    """
    override = os.environ.get("PG_BINDIR")
    if override:
        if not _has_server(Path(override)):
            raise PgClusterError(f"PG_BINDIR={override} holds no initdb and pg_ctl")
        return Path(override)
    found = [d / "bin" for d in DEBIAN_ROOT.glob("*") if _has_server(d / "bin")]
    return max(found, key=_version_key, default=None)


def _has_server(bindir: Path) -> bool:
    """Whether the directory holds the two programs a cluster needs."""
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _version_key(bindir: Path) -> tuple[int, ...]:
    """Sort key of ``/usr/lib/postgresql/<version>/bin``, numeric so 15 beats 9.6."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root, else None (us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgClusterError("running as root, but there is no 'postgres' or 'nobody' user "
                         "to run the PostgreSQL server as")


def _free_port() -> int:
    """A port number no local server uses, so even same-directory sockets cannot clash."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    """The end of a log file, or nothing if it was never written."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class PgCluster:
    """One throwaway PostgreSQL server; ``start()`` it, ``stop()`` it, or use ``with``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.account = _server_account()
        self.base: Path | None = None
        self.port = 0
        self._admin: psycopg.Connection | None = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def data(self) -> Path:
        """The data directory, inside the temp dir so ``initdb`` may create it 0700."""
        assert self.base is not None, "the cluster is not started"
        return self.base / "data"

    @property
    def log(self) -> Path:
        """The server log, quoted in errors when the server will not start."""
        assert self.base is not None, "the cluster is not started"
        return self.base / "server.log"

    def url(self, dbname: str = DATABASE) -> str:
        """The libpq URI of a database in this cluster (format in the module docstring)."""
        assert self.base is not None, "the cluster is not started"
        return (f"postgresql://{SUPERUSER}@/{quote(dbname)}"
                f"?host={quote(str(self.base), safe='/')}&port={self.port}")

    def start(self) -> str:
        """Create and start the cluster with an empty test database; return that URL."""
        self.base = self._make_base()
        self.port = _free_port()
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
            self._configure()
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log),
                      "-t", str(TIMEOUT), "-w", "start")
            self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
            self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except BaseException:
            with contextlib.suppress(PgClusterError):
                self.stop()
            raise
        return self.url()

    def stop(self) -> None:
        """Shut the server down at once (nothing needs saving) and delete its temp dir."""
        if self.base is None:
            return
        try:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate",
                          "-t", str(TIMEOUT), "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def create_database(self) -> str:
        """Create an empty, uniquely named database and return its URL."""
        assert self._admin is not None, "the cluster is not started"
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database``, even if clients still hold it."""
        assert self._admin is not None, "the cluster is not started"
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        force = " WITH (FORCE)" if self._admin.info.server_version >= 130000 else ""
        statement = sql.SQL("DROP DATABASE {}" + force).format(sql.Identifier(name))
        self._admin.execute(statement)

    def _make_base(self) -> Path:
        """The cluster's temp dir, owned by the server's account.

        As root it goes in /tmp (a root-only ``$TMPDIR`` would lock the server out) and is
        world-traversable so any local client reaches the socket; the data directory
        inside stays 0700 as PostgreSQL demands.
        """
        if self.account is None:
            return Path(tempfile.mkdtemp(prefix="meshflow-pg-"))
        base = Path(tempfile.mkdtemp(prefix="meshflow-pg-", dir="/tmp"))
        os.chown(base, self.account.pw_uid, self.account.pw_gid)
        base.chmod(0o755)
        return base

    def _configure(self) -> None:
        """Append the socket location, port and speed settings to ``postgresql.conf``.

        Written to the file rather than passed as ``pg_ctl -o`` flags, which pg_ctl hands
        to a shell: no quoting pitfalls, and the settings survive a restart.
        """
        settings = {**SETTINGS, "unix_socket_directories": str(self.base), "port": self.port}
        lines = [f"{key} = '{str(value).replace(chr(39), chr(39) * 2)}'"
                 for key, value in settings.items()]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# meshflow test cluster\n" + "\n".join(lines) + "\n")

    def _run(self, program: str, *args: str) -> None:
        """Run a server program (as the server's account when we are root); raise if it fails."""
        command = [str(self.bindir / program), *args]
        if self.account is not None:
            command = ["runuser", "-u", self.account.pw_name, "--", *command]
        try:
            done = subprocess.run(command, cwd=self.base, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PgClusterError(f"{shlex.join(command)} failed: {error}") from error
        if done.returncode != 0:
            log = _tail(self.log)
            raise PgClusterError(
                f"{shlex.join(command)} failed with exit code {done.returncode}\n"
                f"--- stderr ---\n{done.stderr.strip()}"
                + (f"\n--- server log {self.log} (tail) ---\n{log}" if log else ""))
