"""Shared fixtures: a real MOLTBOT_HOME, the real CLI, a real daemon process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from moltbot import retries, store
from moltbot.config.database import DATABASE_URL_VARIABLE, PostgresTarget
from moltbot.config.home import Home
from moltbot.core.lock import daemon_pid
from tests import debian_target
from tests.fake_discord import FakeDiscord
from tests.fake_gateway import FakeGateway
from tests.instant_retries import INSTANT
from tests.pg import pg_cluster, pg_database  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test waits out a real backoff window (test_retries.py checks the real policies)."""
    for name, policy in INSTANT.items():
        monkeypatch.setattr(retries, name, policy)


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Wait for a condition the system under test will make true (not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Is the process running (a zombie counts as dead)?"""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def dies_soon(pid: int) -> bool:
    """SIGKILL is delivered asynchronously: the process is gone within moments, not at once."""
    deadline = time.monotonic() + 5
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@dataclass
class Env:
    """A MOLTBOT_HOME in a temporary directory, with helpers to shape it."""

    home: Home
    tasks: list[dict[str, Any]] = field(default_factory=list)
    database: PostgresTarget | None = None  # None: the home's SQLite file

    @property
    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLTBOT_")}
        env["MOLTBOT_HOME"] = str(self.home.root)
        env["TZ"] = "UTC"
        if self.database is not None:
            env[DATABASE_URL_VARIABLE] = self.database.url
        return env

    def script(self, name: str, body: str, executable: bool = True) -> Path:
        path = self.home.tasks_dir / name
        path.write_text(body if body.startswith("#!") else "#!/bin/sh\n" + body)
        path.chmod(0o755 if executable else 0o644)
        return path

    def write_tasks(self, *tasks: dict[str, Any], settings: str | None = None) -> None:
        self.tasks = list(tasks)
        self.home.tasks_json.write_text(json.dumps({"tasks": self.tasks}, indent=2) + "\n")
        if settings is not None:
            self.home.settings_toml.write_text(settings)

    def cli_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "moltbot", *args]

    def cli(self, *args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.cli_argv(*args),
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"moltbot {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def db(self) -> None:
        """Bind the store to this home's database (for assertions on recorded state)."""
        store.open_db(self.database or self.home.db_path)


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module or test marked ``both_backends`` runs once per backend (``MOLTBOT_TEST_BACKENDS=both``:
    every test that uses ``env`` or ``backend``)."""
    wanted = metafunc.definition.get_closest_marker("both_backends") is not None
    wanted = wanted or os.environ.get("MOLTBOT_TEST_BACKENDS") == "both"
    if wanted and {"env", "backend"} & set(metafunc.fixturenames):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path | PostgresTarget:
    """The database a test's store uses: a SQLite file, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        target: PostgresTarget = request.getfixturevalue("pg_database")
        return target
    return tmp_path / "moltbot.db"


@pytest.fixture
def env(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Env:
    home = Home(tmp_path / "home")
    for directory in (home.config_dir, home.tasks_dir, home.data_dir, home.logs_dir):
        directory.mkdir(parents=True)
    environment = Env(home)
    if backend == "postgresql":
        environment.database = request.getfixturevalue("pg_database")
    environment.write_tasks()
    return environment


class DaemonProcess:
    """``moltbot daemon`` as a child process, with its stderr kept for assertions.

    Run through ``tests.instant_retries``: the real command line, with instant retry policies;
    ``python`` starts it through another command (``setpriv``: as another user, with capabilities)."""

    def __init__(
        self, env: Env, extra_env: dict[str, str] | None = None, python: list[str] | None = None
    ) -> None:
        self.env = env
        self.log_path = env.home.root / f"daemon-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [*(python or [sys.executable]), "-m", "tests.instant_retries", "daemon"],
            cwd=ROOT,
            env={**env.environ, **(extra_env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, what="the daemon to take its lock and start")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.output()}")
        return daemon_pid(self.env.home.lock_path) == self.process.pid and "daemon started" in self.output()

    def output(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.log.close()
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def start_daemon(env: Env) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(**extra_env: str) -> DaemonProcess:
        daemon = DaemonProcess(env, extra_env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()
        daemon.log.close()


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    """The fake Discord on 127.0.0.1."""
    fake = FakeDiscord().start()
    yield fake
    fake.stop()


# Lines a test wants printed at the end of the run (e.g. how long the Ansible chroot apply took).
REPORT = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash.get(REPORT, []):
        terminalreporter.write_line(line)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """A fake signal-cli-rest-api on 127.0.0.1 (json-rpc mode; pings every second)."""
    fake = FakeGateway(ping_seconds=1.0).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def converged(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[debian_target.Converged]:
    """The moltbot role applied to a fresh Debian root, once per session: test_ansible.py checks it,
    test_unit_booted.py boots a copy of it (tests/debian_target.py)."""
    reason = debian_target.cannot_converge()
    if reason is not None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("ansible-apply")
    try:
        target = debian_target.converge(work)
        report = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in target.timings.items())
        request.config.stash.setdefault(REPORT, []).append(f"ansible chroot apply: {report}")
        yield target
    finally:
        shutil.rmtree(work, ignore_errors=True)
