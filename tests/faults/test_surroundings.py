"""Bad surroundings (a broken MOLTBOT_HOME, a log that cannot be written): a clear message, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from moltbot import store
from moltbot.cli.common import EXIT_CONFIG
from moltbot.records import Run
from tests.conftest import Env, wait_until


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


def test_a_task_whose_log_cannot_be_written_runs_on_and_says_why(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("job.sh", "echo working\nsleep 0.1\necho done\nexit 4\n")
    env.script("fine.sh", "echo fine\n")
    (env.home.logs_dir / "job").write_text("not a folder\n")  # logs/job/<run>.log cannot be made
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "every 1s"},
        {"task_id": "fine", "script_path": "fine.sh", "schedule": "every 1s"},
    )
    daemon = start_daemon()
    env.db()
    wait_until(lambda: len(finished("job")) >= 2, what="two runs of the task")
    for run in finished("job")[:2]:
        assert (run.status, run.exit_code, run.stdout_tail) == ("failed", 4, "working\ndone\n")
        assert run.message.startswith("exit code 4 after ")
        assert f"output not saved: {env.home.logs_dir / 'job'} is a file, not a folder" in run.message
    wait_until(lambda: len(finished("fine")) >= 2, what="the other task to keep running")
    assert all(run.status == "success" for run in finished("fine"))
    assert daemon.process.poll() is None and "Traceback" not in daemon.output()
    events = env.cli_json("logs", "job", "-n", "50")
    assert any("output not saved" in event["message"] for event in events)
    assert daemon.stop() == 0


def finished(task_id: str) -> list[Run]:
    return [run for run in reversed(store.recent_runs(task_id, 1000)) if run.finished_at is not None]


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` without the power to ignore file modes: as root, a chmod binds only once
    CAP_DAC_OVERRIDE is gone (util-linux's setpriv drops it from the bounding set)."""
    if os.geteuid() != 0:
        return argv
    probe = subprocess.run(["setpriv", "--bounding-set=-dac_override", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE with setpriv: {probe.stderr.decode().strip()}")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]


def cli_unprivileged(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    argv = unprivileged([sys.executable, "-m", "moltbot", *args])
    return subprocess.run(argv, env=env.environ, capture_output=True, text=True, timeout=60)


def test_a_log_folder_without_write_permission_loses_no_run(env: Env) -> None:
    env.script("job.sh", "echo working\nexit 0\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    (env.home.logs_dir / "job").mkdir(mode=0o555)
    result = cli_unprivileged(env, "run", "job", "--json")
    outcome = json.loads(result.stdout)
    assert (result.returncode, outcome["status"], outcome["stdout"]) == (0, "success", "working\n")
    run_log = env.home.logs_dir / "job" / f"{outcome['run_id']}.log"
    assert outcome["message"].endswith(f"; output not saved: {run_log}: Permission denied")


def test_doctor_reports_a_log_folder_it_cannot_write(env: Env) -> None:
    env.home.logs_dir.chmod(0o555)
    result = cli_unprivileged(env, "doctor", "--json")
    home = next(check for check in json.loads(result.stdout)["checks"] if check["name"] == "home")
    assert (result.returncode, home["ok"]) == (1, False)
    assert home["detail"] == f"{env.home.logs_dir} is not writable"
    assert home["fix"] == f"make {env.home.logs_dir} writable by the user moltbot runs as"
