"""What moltbot writes is private whatever umask it was started with; what a task writes is the task's.

The database holds every command, reply and run output (and playbooks' extra_vars), the logs every
run's output: started by hand from a shell with umask 022 they must still be 0600, in 0700 folders.
A task's own files follow the umask moltbot was started with, as they would from that shell or cron.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moltbot.config.home import Home
from moltbot.core.lock import daemon_pid
from tests.conftest import ROOT, wait_until


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def moltbot(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moltbot", *args], env=environ(home), capture_output=True, text=True,
        timeout=60, umask=0o022,
    )  # fmt: skip


def environ(home: Home) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MOLTBOT_")},
            "MOLTBOT_HOME": str(home.root), "TZ": "UTC"}  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Home, subprocess.Popen[bytes]]]:
    """A real daemon started with umask 022 on a home that does not exist yet: it makes it all."""
    home = Home(tmp_path / "home")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moltbot", "daemon"], cwd=ROOT, env=environ(home),
            stdout=output, stderr=subprocess.STDOUT, umask=0o022,
        )  # fmt: skip
    try:
        wait_until(
            lambda: process.poll() is None and daemon_pid(home.lock_path) == process.pid,
            what=f"the daemon to start:\n{log.read_text()}",
        )
        yield home, process
    finally:
        process.terminate()
        process.wait(30)


def test_a_daemon_started_with_umask_022_keeps_its_files_private_and_tasks_keep_theirs(
    daemon: tuple[Home, subprocess.Popen[bytes]],
) -> None:
    home, _ = daemon
    (home.tasks_dir / "mine.sh").write_text("#!/bin/sh\necho private output\necho made > made.txt\n")
    (home.tasks_dir / "mine.sh").chmod(0o700)
    home.tasks_json.write_text(json.dumps({"tasks": [
        {"task_id": "mine", "script_path": "mine.sh", "schedule": "daily at 03:00"}]}))  # fmt: skip
    assert moltbot(home, "reload").returncode == 0
    wait_until(lambda: "mine" in moltbot(home, "tasks").stdout, what="the daemon to reload")
    run = moltbot(home, "run", "mine")
    assert run.returncode == 0, run.stdout + run.stderr

    (log,) = (home.logs_dir / "mine").iterdir()
    folders = [home.root, home.config_dir, home.tasks_dir, home.data_dir, home.logs_dir, log.parent]
    assert {str(folder): mode(folder) for folder in folders} == {str(folder): "0o700" for folder in folders}
    database = [home.db_path, Path(f"{home.db_path}-wal"), Path(f"{home.db_path}-shm")]
    files = [*database, home.lock_path, log, home.tasks_dir / "disk-usage.sh"]
    expected = {str(path): "0o600" for path in files} | {str(home.tasks_dir / "disk-usage.sh"): "0o700"}
    assert {str(path): mode(path) for path in files} == expected
    assert mode(home.tasks_dir / "made.txt") == "0o644", "a task's own files follow the umask moltbot got"


def test_the_command_line_makes_a_fresh_home_private_too(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    status = moltbot(home, "status")
    assert status.returncode == 0, status.stderr
    assert mode(home.root) == mode(home.data_dir) == mode(home.logs_dir) == "0o700"
    assert mode(home.db_path) == mode(home.tasks_json) == "0o600"
