"""Bad surroundings (a broken MOLTBOT_HOME, a log that cannot be written): a clear message, no traceback."""

from __future__ import annotations

import json

import pytest

from moltbot.cli.common import EXIT_CONFIG
from tests.conftest import Env


def logs_is_a_file(env: Env) -> None:
    env.script("job.sh", "echo hi\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    env.home.logs_dir.rmdir()
    env.home.logs_dir.write_text("someone's notes\n")


@pytest.mark.parametrize("command", [["daemon"], ["run", "job"], ["check"], ["status"]])
def test_logs_being_a_file_stops_a_command_with_one_clear_line(env: Env, command: list[str]) -> None:
    logs_is_a_file(env)
    result = env.cli(*command, timeout=30)
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"{env.home.logs_dir} is a file, not a folder" in line and "move it" in line
    assert env.home.logs_dir.read_text() == "someone's notes\n"  # nothing of it is lost


def test_a_home_that_is_a_file_is_named(env: Env) -> None:
    home = env.home.root.parent / "home-file"
    home.write_text("")
    result = env.cli("--home", str(home), "check")
    assert result.returncode == EXIT_CONFIG and "Traceback" not in result.stderr
    assert f"{home} is a file, not a folder" in result.stderr


def test_doctor_reports_logs_being_a_file_as_a_failed_check(env: Env) -> None:
    logs_is_a_file(env)
    result = env.cli("doctor", "--json")
    assert result.returncode == 1, result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    home = checks["home"]
    assert home["ok"] is False and f"{env.home.logs_dir} is a file, not a folder" in home["detail"]
    assert "move it" in home["fix"]
    assert env.home.logs_dir.is_file()  # doctor looks, it changes nothing
