"""The unit as deployed, running under a real systemd: a copy of the converged Debian root, booted.

The role's converge (tests/debian_target.py, shared with test_ansible.py) cannot start the unit in a
chroot; here a copy of that root boots with systemd-nspawn (tests/nspawn_machine.py), systemd 252 as
its PID 1 starts moltbot.service as the role left it, and the checks drive it from outside: started
(READY=1), reloaded, restarted by the watchdog, stopped, and what a task run by it may do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPORT, wait_until
from tests.debian_target import Converged
from tests.nspawn_machine import Machine, cannot_boot, copy_on_write

pytestmark = pytest.mark.slow

UNIT = "moltbot.service"
HOME = "/var/lib/moltbot"
# Only for this test: the deployed WatchdogSec=60 would have the watchdog check wait more than a
# minute for systemd to notice the frozen loop. The daemon pets at half the interval it is given
# (WATCHDOG_USEC), so a healthy one keeps up with 10 s as with 60; shorter would risk a slow start-up
# on a loaded 2-core CI machine being taken for a hang.
WATCHDOG_DROP_IN = "[Service]\nWatchdogSec=10\n"
WATCHDOG_SEC = 10


@dataclass
class Booted:
    machine: Machine
    root: Path
    uid: int
    gid: int

    def moltbot(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The CLI inside the machine, as the daemon's user (as an admin runs it with sudo -u)."""
        return self.machine.run("/opt/moltbot/venv/bin/moltbot", *args, user=(self.uid, self.gid),
                                env={"MOLTBOT_HOME": HOME}, timeout=timeout)  # fmt: skip

    def status(self) -> dict[str, Any]:
        result = self.moltbot("status", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def task(self, task_id: str) -> dict[str, Any] | None:
        return next((task for task in self.status()["tasks"] if task["id"] == task_id), None)

    def task_count(self) -> int:
        tasks_json = self.root / HOME.lstrip("/") / "config" / "tasks.json"
        return len(json.loads(tasks_json.read_text())["tasks"])

    def unit(self, *properties: str) -> dict[str, str]:
        return self.machine.show(UNIT, *properties)

    def add_task(self, task_id: str, script: str) -> None:
        """A script task, laid out as the role lays out moltbot_task_scripts: root's, anyone's to run
        (the task user's too; nobody else may change it)."""
        path = self.root / HOME.lstrip("/") / "tasks" / f"{task_id}.sh"
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
        os.chown(path, 0, 0)
        tasks_json = self.root / HOME.lstrip("/") / "config" / "tasks.json"
        config = json.loads(tasks_json.read_text())
        config["tasks"].append({"task_id": task_id, "script_path": path.name, "schedule": "daily at 03:00"})
        tasks_json.write_text(json.dumps(config, indent=2) + "\n")  # the role's owner and mode stay

    def reload(self, task_id: str) -> None:
        """`systemctl reload`, then wait for the daemon to have registered the task (the CLI does not
        register tasks.json itself while a daemon runs: only the daemon's reload can)."""
        reload = self.machine.systemctl("reload", UNIT)
        assert reload.returncode == 0, reload.stdout + reload.stderr
        wait_until(lambda: self.task(task_id), timeout=30, what=f"the daemon to register {task_id}")

    def ensure_active(self) -> None:
        """For a check run alone: an earlier one may have left the unit stopped."""
        if self.machine.systemctl("is-active", UNIT).stdout.strip() != "active":
            started = self.machine.systemctl("start", UNIT)
            assert started.returncode == 0, started.stderr + self.machine.journal(UNIT)[-3000:]


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Booted]:
    reason = cannot_boot()
    if reason is not None:
        pytest.skip(reason)
    converged: Converged = request.getfixturevalue("converged")  # not built for nothing when skipped
    work = tmp_path_factory.mktemp("booted")
    timings: dict[str, float] = {}
    # A copy: booting writes to the root (journal, machine-id, the database); test_ansible.py checks the
    # converged one as the role left it.
    with copy_on_write(converged.root, work) as root:
        drop_in = root / "etc/systemd/system/moltbot.service.d/test.conf"
        drop_in.parent.mkdir(parents=True)
        drop_in.write_text(WATCHDOG_DROP_IN)
        machine = Machine(root, work / "console.log")
        try:
            started = time.monotonic()
            machine.boot()
            timings["boot"] = time.monotonic() - started
            yield Booted(machine, root, *converged.ids("moltbot"))
        finally:
            started = time.monotonic()
            machine.poweroff()
            timings["poweroff"] = time.monotonic() - started
            report = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
            request.config.stash.setdefault(REPORT, []).append(f"booted unit: {report}")
    shutil.rmtree(work, ignore_errors=True)


def test_the_unit_is_active_once_the_daemon_said_ready(booted: Booted) -> None:
    # Type=notify: systemd reports the unit active only after READY=1, and boot is over only then.
    unit = booted.unit("ActiveState", "SubState", "NRestarts", "MainPID", "StatusText")
    assert (unit["ActiveState"], unit["SubState"]) == ("active", "running"), booted.machine.journal(UNIT)
    assert unit["NRestarts"] == "0"
    assert unit["StatusText"].startswith(f"{booted.task_count()} tasks, 0 running"), unit  # daemon's STATUS=
    assert booted.status()["daemon_pid"] == int(unit["MainPID"]), "the CLI sees the unit's daemon"


def test_reload_makes_the_daemon_pick_up_tasks_json(booted: Booted) -> None:
    booted.ensure_active()
    main_pid = booted.unit("MainPID")["MainPID"]
    assert booted.task("added-by-reload") is None
    booted.add_task("added-by-reload", "true\n")
    booted.reload("added-by-reload")
    assert booted.unit("MainPID")["MainPID"] == main_pid, "reloaded, not restarted"
    reloaded = [line for line in booted.machine.journal(UNIT).splitlines() if "config reloaded" in line]
    assert reloaded and f"{booted.task_count()} tasks (added added-by-reload;" in reloaded[-1], reloaded


# --- what a task run by the unit may do ------------------------------------------------------


def run_task_in_unit(booted: Booted, task_id: str, script: str) -> str:
    """`script` (sh) as a task the daemon in the unit runs: added, reloaded, run; its stdout.

    The one way the checks here run code as a task: checks of who runs it (the task's user, its
    groups, its capabilities) go on what this returns, as the sandbox test's do. A CLI that found no
    daemon would run the task in its own process, outside the unit's sandbox, and the checks would
    prove nothing: the task's cgroup, printed first on stderr, shows it ran inside moltbot.service."""
    booted.add_task(task_id, "cat /proc/self/cgroup >&2\n" + script)
    booted.reload(task_id)
    result = booted.moltbot("run", task_id, "--json")
    run = json.loads(result.stdout)
    assert f"/system.slice/{UNIT}" in run["stderr"], run
    return run["stdout"]  # type: ignore[no-any-return]


PROBE = """\
echo "uid: $(id -u)"
echo "secret in environment: $(env | grep -c DISCORD_BOT_TOKEN)"
echo "secrets file: $(cat /etc/moltbot/secrets.env 2>&1 >/dev/null | sed 's/.*: //')"
echo "credential: $(cat /run/credentials/moltbot.service/DISCORD_BOT_TOKEN 2>&1 >/dev/null | sed 's/.*: //')"
grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status
for dir in /usr /etc /home /var/lib/moltbot/data; do
    if error=$(touch "$dir/written-by-a-task" 2>&1); then echo "$dir: written"; rm "$dir/written-by-a-task"
    else echo "$dir: ${error##*: }"; fi
done
"""


def test_a_task_has_no_capabilities_nor_secrets_and_cannot_write_the_system(booted: Booted) -> None:
    booted.ensure_active()
    main_pid = booted.unit("MainPID")["MainPID"]
    daemon_environment = booted.machine.run("cat", f"/proc/{main_pid}/environ").stdout
    # The secrets are systemd credentials: not even in the daemon's environment.
    assert "CREDENTIALS_DIRECTORY=" in daemon_environment and "DISCORD_BOT_TOKEN=" not in daemon_environment
    output = run_task_in_unit(booted, "probe-sandbox", PROBE)
    lines = dict(line.split(":", 1) for line in output.splitlines())
    assert lines["uid"].strip() not in ("0", str(booted.uid)), "as the task user, not root nor the daemon's"
    # A task neither inherits the daemon's secrets (EnvironmentFile=) nor reads their file.
    assert lines["secret in environment"].strip() == "0", output
    assert lines["secrets file"].strip() == "Permission denied", output
    assert lines["credential"].strip() == "Permission denied", output
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert lines[capabilities].strip() == "0000000000000000", output
    # Read-only file system, not Permission denied: ProtectSystem=strict and ProtectHome=read-only
    # refuse it before the files' permissions are looked at.
    for directory in ("/usr", "/etc", "/home"):
        assert lines[directory].strip() == "Read-only file system", output
    # ReadWritePaths= lets the daemon write data/; the task user may not even look in it.
    assert lines["/var/lib/moltbot/data"].strip() == "Permission denied", output


# --- the watchdog, and stop --------------------------------------------------------------------


def test_a_frozen_daemon_is_restarted_by_the_watchdog(booted: Booted) -> None:
    booted.ensure_active()
    before = booted.unit("MainPID", "NRestarts")
    freeze = booted.machine.systemctl("kill", "--kill-who=main", "--signal=SIGSTOP", UNIT)
    assert freeze.returncode == 0, freeze.stderr

    def restarted() -> dict[str, str] | None:
        unit = booted.unit("MainPID", "NRestarts", "ActiveState", "SubState")
        fresh = unit["MainPID"] not in ("0", before["MainPID"])
        return unit if fresh and (unit["ActiveState"], unit["SubState"]) == ("active", "running") else None

    # WatchdogSec, then RestartSec=5, then a start-up up to READY=1.
    unit = wait_until(restarted, timeout=WATCHDOG_SEC + 60, what="the watchdog to restart the daemon")
    assert int(unit["NRestarts"]) == int(before["NRestarts"]) + 1
    journal = booted.machine.journal(UNIT)
    assert f"{UNIT}: Watchdog timeout (limit {WATCHDOG_SEC}s)!" in journal, journal[-3000:]


def test_stop_is_graceful_and_leaves_the_running_task_interrupted(booted: Booted) -> None:
    booted.ensure_active()
    booted.add_task("long", "exec sleep 600\n")
    booted.reload("long")
    waiting = subprocess.Popen(
        booted.machine.command("/opt/moltbot/venv/bin/moltbot", "run", "long", "--json",
                               user=(booted.uid, booted.gid), env={"MOLTBOT_HOME": HOME}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: "long" in booted.status()["running_tasks"], timeout=30, what="the long run")
        stopped = booted.machine.systemctl("stop", UNIT)
        assert stopped.returncode == 0, stopped.stderr
        unit = booted.unit("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        # Result=success and status 0: the daemon exited by itself, in time (no SIGKILL after TimeoutStopSec).
        assert unit == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1",
                        "ExecMainStatus": "0"}, booted.machine.journal(UNIT)[-3000:]  # fmt: skip
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert json.loads(out)["status"] == "interrupted", out + err
    long = booted.task("long")
    assert long is not None and long["last_result"] == "interrupted" and long["paused_by"] == "shutdown", long
    stopping = booted.machine.journal(UNIT).rsplit("Stopping moltbot.service", 1)[-1]
    assert "moltbot daemon stopped" in stopping, stopping
    # The daemon ended its run's process group itself: systemd had nothing left to kill.
    assert "Killing process" not in stopping and "left-over" not in stopping, stopping
