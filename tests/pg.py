"""A throw-away PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder.

The server runs as the ``postgres`` user (Debian's package makes it; PostgreSQL refuses to run as
root), in a folder under /var/tmp (pytest's /tmp/pytest-of-root is 0700: the server could not
enter it), with fsync off and trust authentication, listening on 127.0.0.1 on a free port and on a
unix socket in that folder. Each test gets a database of its own (CREATE DATABASE, ~20 ms).

When no server can be started (no PostgreSQL binaries), the tests that need one are skipped with
the reason; under .ci/run (``MOLTBOT_TEST_POSTGRESQL=required``) that is a failure instead: it installs
the package, so a missing server there is a broken set-up, not a reason to test less.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from moltbot.config.database import PostgresTarget

__all__ = ["PgCluster", "start_cluster"]

SERVER_USER = "postgres"
_databases = itertools.count(1)


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(*argv: str) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@dataclass
class PgCluster:
    bindir: Path
    folder: Path
    port: int

    def url(self, database: str, host: str = "127.0.0.1", port: int | None = None) -> str:
        return f"postgresql://{SERVER_USER}@{host}:{port or self.port}/{database}"

    def admin(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"), connect_timeout=5)
        try:
            conn.autocommit = True
            conn.cursor().execute(statement)
        finally:
            conn.close()

    def new_database(self) -> PostgresTarget:
        name = f"t{os.getpid()}_{next(_databases)}"
        self.admin(f"CREATE DATABASE {name}")
        return PostgresTarget(self.url(name))

    def drop(self, target: PostgresTarget) -> None:
        name = target.url.rsplit("/", 1)[1]
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"
            ),
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(durable: bool = False) -> PgCluster | str:
    """A running cluster, or why none could be started. ``durable``: fsync on, as a real server
    (benchmarks/bench_cluster.py); the tests run without it."""
    bindir = _bindir()
    if bindir is None:
        return "no PostgreSQL server here (no /usr/lib/postgresql/*/bin/initdb; .ci/run installs it)"
    if shutil.which("runuser") is None or os.geteuid() != 0:
        return "starting a PostgreSQL server needs root (to run it as the postgres user)"
    folder = Path(tempfile.mkdtemp(prefix="moltbot-pg-", dir="/var/tmp"))
    os.chmod(folder, 0o755)
    shutil.chown(folder, SERVER_USER)
    data, port = folder / "data", _free_port()
    initdb = subprocess.run(
        _as_server_user(
            str(bindir / "initdb"), "-D", str(data), "-A", "trust", "--no-sync", "--locale=C", "-E", "UTF8"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        return f"initdb failed: {initdb.stderr.strip()[-500:]}"
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    options += " -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started = subprocess.run(
        _as_server_user(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "start",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if started.returncode != 0:
        log = (
            (folder / "server.log").read_text(errors="replace")[-500:]
            if (folder / "server.log").exists()
            else ""
        )
        shutil.rmtree(folder, ignore_errors=True)
        return f"pg_ctl start failed: {started.stderr.strip()[-300:]} {log}"
    _stop_when_gone(os.getpid(), bindir, folder)
    return PgCluster(bindir, folder, port)


def _stop_when_gone(owner: int, bindir: Path, folder: Path) -> None:
    """A watcher that stops the server and removes its folder if this process dies without its
    teardown (a killed test run): a leftover server would hold its port and memory for good."""
    stop = f"runuser -u {SERVER_USER} -- {bindir / 'pg_ctl'} -D {folder / 'data'} -m immediate stop"
    watch = f"while kill -0 {owner} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {folder}"
    # In the background of a shell that ends at once: nothing of this process waits for it.
    subprocess.run(["sh", "-c", f"({watch}) &"], start_new_session=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=10)  # fmt: skip


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    if isinstance(cluster, str):
        if os.environ.get("MOLTBOT_TEST_POSTGRESQL") == "required":
            pytest.fail(f"CI must test PostgreSQL too: {cluster}")
        pytest.skip(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_database(pg_cluster: PgCluster) -> Iterator[PostgresTarget]:
    """A new, empty database on the test cluster (dropped afterwards)."""
    target = pg_cluster.new_database()
    try:
        yield target
    finally:
        from moltbot.store.connection import close_this_thread

        close_this_thread()  # its session on this database (DROP ... WITH (FORCE) ends the others)
        pg_cluster.drop(target)
