"""With ``[daemon] task_user`` a task cannot reach the daemon, its database, its secrets, other runs'
logs, nor change what the daemon runs: one test per attack of issue #12, each from inside a task.

The daemon runs as its own user with only the capabilities the unit grants (CAP_SETUID, CAP_SETGID,
CAP_KILL: ``setpriv``), in a home laid out as the Ansible role lays it out (``tests/users.py``). Each
attack is a task of its own; its run must fail, and for the right reason (``Permission denied``, not
a path that is not there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.users import TOKEN, Sandbox, Users, sandboxed, users

__all__ = ["users"]

# The attacks, each a task's whole script ($MOLTBOT_HOME is the home; $PPID the daemon).
ATTACKS = {
    "daemon-environment": "tr '\\0' '\\n' </proc/$PPID/environ",
    "daemon-lock": 'cat "$MOLTBOT_HOME/data/daemon.lock"',
    "database-write": 'exec 3<>"$MOLTBOT_HOME/data/moltbot.db" && echo opened',
    "database-read": 'head -c 16 "$MOLTBOT_HOME/data/moltbot.db"',
    "other-log": 'cat "$MOLTBOT_HOME"/logs/victim/*.log',
    "secret-file": 'cat "$SECRET"',
    "config-write": "echo '[signal]' >>\"$MOLTBOT_HOME/config/moltbot.toml\"",
    "config-plant": 'echo planted >"$MOLTBOT_HOME/config/planted.toml"',
    "config-rename": 'mv "$MOLTBOT_HOME/config" "$MOLTBOT_HOME/config.old"',
    "tasks-rename": 'mv "$MOLTBOT_HOME/tasks" "$MOLTBOT_HOME/tasks.old"',
    "home-plant": 'mkdir "$MOLTBOT_HOME/config.new"',
    "script-write": 'echo "echo owned" >>"$MOLTBOT_HOME/tasks/victim.sh"',
    "script-plant": 'echo "echo owned" >"$MOLTBOT_HOME/tasks/planted.sh"',
    "daemon-signal": "kill -0 $PPID",
    "daemon-reload": "kill -HUP $PPID",
    "become-root": 'exec python3 -c "import os; os.setuid(0)"',
}


@pytest.fixture(scope="module")
def box(users: Users) -> Iterator[Sandbox]:
    """One daemon for every attack (a run each)."""
    with sandboxed(users) as sandbox:
        sandbox.script("victim.sh", "echo victim-output-no-task-may-read\n")
        sandbox.script("whoami.sh", 'id -u; id -G; echo "$HOME $USER"\n')
        sandbox.script(
            "capabilities.sh", "grep -E '^(Cap(Inh|Prm|Eff|Amb|Bnd)|NoNewPrivs):' /proc/self/status\n"
        )
        tasks: list[dict[str, Any]] = [
            {"task_id": "victim", "script_path": "victim.sh", "schedule": "daily at 03:00"},
            {"task_id": "whoami", "script_path": "whoami.sh", "schedule": "daily at 03:00"},
            {"task_id": "as-other", "script_path": "whoami.sh", "schedule": "daily at 03:00",
             "user": users.other.name},
            {"task_id": "capabilities", "script_path": "capabilities.sh", "schedule": "daily at 03:00"},
        ]  # fmt: skip
        secret = {"SECRET": str(sandbox.credentials / "DISCORD_BOT_TOKEN")}
        for name, body in ATTACKS.items():
            sandbox.script(f"{name}.sh", body + "\n")
            tasks.append(
                {"task_id": name, "script_path": f"{name}.sh", "schedule": "daily at 03:00", "env": secret}
            )
        sandbox.write_tasks(*tasks)
        sandbox.start(DISCORD_BOT_TOKEN=TOKEN, CREDENTIALS_DIRECTORY=str(sandbox.credentials))
        yield sandbox


def run(box: Sandbox, task: str) -> dict[str, Any]:
    result = box.cli("run", task, "--json")
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def refused(box: Sandbox, attack: str, why: str = "Permission denied") -> dict[str, Any]:
    result = run(box, attack)
    assert result["status"] == "failed", result
    assert why in result["stderr"], result
    return result


def test_a_task_runs_as_the_task_user_with_its_home(box: Sandbox) -> None:
    result = run(box, "whoami")
    task = box.users.task
    assert result["stdout"] == f"{task.uid}\n{task.gid}\n{task.home} {task.name}\n", result


def test_a_task_may_name_its_own_user(box: Sandbox) -> None:
    other = box.users.other
    assert run(box, "as-other")["stdout"].startswith(f"{other.uid}\n{other.gid}\n{other.home} {other.name}\n")


def test_a_task_has_no_capability_and_cannot_gain_one(box: Sandbox) -> None:
    lines = run(box, "capabilities")["stdout"].splitlines()
    status = dict(line.split(":\t") for line in lines)
    for name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[name], 16) == 0, status
    assert status["NoNewPrivs"] == "1"  # a setuid binary (sudo) gives it nothing either


def test_a_task_cannot_become_root(box: Sandbox) -> None:
    refused(box, "become-root", "Operation not permitted")


def test_a_task_cannot_read_the_daemons_environment(box: Sandbox) -> None:
    result = refused(box, "daemon-environment")
    assert TOKEN not in result["stdout"] + result["stderr"]


def test_a_task_cannot_read_the_daemons_pid_file(box: Sandbox) -> None:
    refused(box, "daemon-lock")


def test_a_task_cannot_signal_the_daemon(box: Sandbox) -> None:
    refused(box, "daemon-signal", "Operation not permitted")


def test_a_task_cannot_make_the_daemon_reload(box: Sandbox) -> None:
    refused(box, "daemon-reload", "Operation not permitted")
    assert "config reload" not in box.daemons[0].output()


def test_a_task_cannot_open_the_database_for_writing(box: Sandbox) -> None:
    refused(box, "database-write")


def test_a_task_cannot_read_the_database(box: Sandbox) -> None:
    refused(box, "database-read")


def test_a_task_cannot_read_another_tasks_log(box: Sandbox) -> None:
    assert run(box, "victim")["status"] == "success"
    result = refused(box, "other-log")
    assert "victim-output" not in result["stdout"]


def test_a_task_cannot_read_the_secrets(box: Sandbox) -> None:
    result = refused(box, "secret-file")
    assert TOKEN not in result["stdout"]


def test_a_task_cannot_write_the_configuration(box: Sandbox) -> None:
    refused(box, "config-write")
    assert "[signal]" not in box.home.settings_toml.read_text()


def test_a_task_cannot_plant_a_configuration_file(box: Sandbox) -> None:
    refused(box, "config-plant")


def test_a_task_cannot_rename_the_configuration_folder(box: Sandbox) -> None:
    refused(box, "config-rename")
    assert box.home.config_dir.is_dir()


def test_a_task_cannot_rename_the_scripts_folder(box: Sandbox) -> None:
    refused(box, "tasks-rename")
    assert box.home.tasks_dir.is_dir()


def test_a_task_cannot_add_to_moltbot_home(box: Sandbox) -> None:
    refused(box, "home-plant")


def test_a_task_cannot_change_a_script(box: Sandbox) -> None:
    refused(box, "script-write")
    assert "owned" not in (box.home.tasks_dir / "victim.sh").read_text()


def test_a_task_cannot_add_a_script(box: Sandbox) -> None:
    refused(box, "script-plant")


def test_the_daemon_still_signals_what_the_task_user_runs(box: Sandbox) -> None:
    """It keeps CAP_KILL for that: a task that outlives its timeout is killed, its whole group."""
    box.script("sleeper.sh", "sleep 300 &\nsleep 300\n")
    tasks = [*box.tasks, {"task_id": "sleeper", "script_path": "sleeper.sh", "schedule": "daily at 03:00",
                          "timeout_seconds": 0.5}]  # fmt: skip
    box.write_tasks(*tasks)
    box.cli("reload", check=True)
    wait_until(lambda: "config reloaded" in box.daemons[0].output(), what="the reload")
    result = run(box, "sleeper")
    assert result["status"] == "timeout", result
