"""The database deleted or replaced under a running daemon: the CLI and doctor say so (#14).

A real daemon, the real CLI, the database file really moved away or replaced by a copy.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable

from tests.conftest import DaemonProcess, Env

SPLIT = "uses a database that was deleted or replaced"


def job(env: Env) -> None:
    env.script("a.sh", "true\n")
    env.write_tasks({"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"})


def test_a_database_moved_away_is_named_and_not_made_again(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    job(env)
    daemon = start_daemon()
    assert env.cli("status").returncode == 0
    env.home.db_path.rename(env.home.data_dir / "moved.db")
    for command in (["status"], ["run", "a"], ["reload"], ["tasks"]):
        result = env.cli(*command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"the running daemon (pid {daemon.process.pid}) {SPLIT}" in result.stderr, command
        assert "systemctl restart moltbot" in result.stderr
    assert not env.home.db_path.exists()  # no empty database made for the CLI to talk past the daemon
    doctor = env.cli("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 1 and not checks["database"]["ok"]
    assert SPLIT in checks["database"]["detail"] and checks["database"]["fix"].startswith("systemctl restart")
    assert not env.home.db_path.exists()
    # The daemon itself stops at its next pass rather than split its threads across two files.
    daemon.signal(signal.SIGUSR1)  # a wake-up, as the CLI gives: a pass of the loop
    assert daemon.process.wait(15) == 1
    assert "was deleted or replaced under the running daemon: stopping (exit 1)" in daemon.output()


def test_a_database_replaced_by_a_copy_is_named_until_the_daemon_restarts(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    job(env)
    daemon = start_daemon()
    copy = env.home.data_dir / "copy.db"
    shutil.copy(env.home.db_path, copy)
    copy.replace(env.home.db_path)  # same path, another file: the daemon keeps the one it opened
    result = env.cli("status")
    assert result.returncode == 1 and SPLIT in result.stderr
    daemon.kill()  # its threads would open the copy too when they connect anew: restarting is the fix
    assert env.cli("status").returncode == 0  # no daemon: nobody to talk past
    start_daemon()
    assert env.cli("status", check=True).returncode == 0  # the new daemon opened this very file
