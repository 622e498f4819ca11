"""The command line as a newcomer meets it (#14): --version, --home anywhere, no internal commands in
--help, a pipe closed early, Ctrl-C while the daemon runs the task."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable

from tests.conftest import DaemonProcess, Env, wait_until


def test_version_is_printed(env: Env) -> None:
    result = env.cli("--version", check=True)
    assert result.stdout.strip() == "moltbot 0.1.0"


def test_home_is_accepted_after_the_subcommand_too(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    environ = {name: value for name, value in env.environ.items() if name != "MOLTBOT_HOME"}
    before = subprocess.run(
        env.cli_argv("--home", str(env.home.root), "tasks"), env=environ, capture_output=True, text=True
    )
    after = subprocess.run(
        env.cli_argv("tasks", "--home", str(env.home.root)), env=environ, capture_output=True, text=True
    )
    assert before.returncode == after.returncode == 0, after.stderr
    assert "job" in after.stdout and after.stdout == before.stdout


def test_internal_commands_stay_out_of_help(env: Env) -> None:
    help_text = env.cli("--help", check=True).stdout
    assert "status" in help_text and "doctor" in help_text
    assert "-action" not in help_text and "SUPPRESS" not in help_text


def test_a_pipe_closed_early_ends_without_a_traceback(env: Env) -> None:
    # `moltbot run X | head -1`, made certain: the reader is gone before moltbot writes a byte.
    env.script("chatty.sh", "sleep 0.5\nseq 1 100\n")
    env.write_tasks({"task_id": "chatty", "script_path": "chatty.sh", "schedule": "daily at 03:00"})
    script = f"{' '.join(env.cli_argv('run', 'chatty'))} | true"
    result = subprocess.run(["sh", "-c", script], env=env.environ, capture_output=True, text=True)
    assert result.stderr == "", result.stderr


def test_ctrl_c_on_a_run_the_daemon_carries_out_says_it_goes_on(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    env.script("slow.sh", "sleep 30\n")
    env.write_tasks({"task_id": "slow", "script_path": "slow.sh", "schedule": "daily at 03:00"})
    start_daemon()
    waiting = subprocess.Popen(
        env.cli_argv("run", "slow"), env=env.environ, stderr=subprocess.PIPE, text=True
    )
    try:
        assert waiting.stderr is not None
        wait_until(
            lambda: "handed to the daemon" in waiting.stderr.readline(), what="the run to be handed over"
        )
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=30)
        assert waiting.returncode == 130
        assert "run 1 of slow goes on in the daemon; moltbot stop slow stops it" in stderr, stderr
        assert "Traceback" not in stderr
        assert env.cli_json("status")["running_tasks"] == ["slow"]  # Ctrl-C left it running
    finally:
        waiting.kill()
        env.cli("stop", "slow")


def test_resume_of_a_task_that_is_not_paused_and_next_of_none_say_so(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    resumed = env.cli("resume", "job")
    assert resumed.returncode == 0 and resumed.stdout.startswith("Task job is not paused; next run "), resumed
    none = env.cli("next", "job", "-n", "0")
    assert none.returncode == 2 and "-n/--count: at least 1, not 0" in none.stderr, none


def test_check_says_when_moltbot_toml_is_not_there(env: Env) -> None:
    assert not env.home.settings_toml.exists()
    assert env.cli("check", check=True).stdout.endswith(f"{env.home.settings_toml}: not present (defaults)\n")
    env.home.settings_toml.write_text("[daemon]\nworkers = 2\n")
    assert env.cli("check", check=True).stdout.endswith(f"{env.home.settings_toml}: OK\n")


def test_history_shows_the_last_runs_at_a_glance(env: Env) -> None:
    counter = env.home.root / "attempts"
    env.script(
        "job.sh",
        f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n"
        '[ $n -eq 2 ] && { echo "disk full" >&2; exit 4; }\nexit 0\n',
    )
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    for expected in (0, 1, 0, 0):
        assert env.cli("run", "job").returncode == expected
    lines = env.cli("history", "JOB", "-n", "3", check=True).stdout.splitlines()
    assert lines[:2] == ["job: the last 3 runs, oldest first", "❌✅✅"], lines
    assert lines[3] == "2 of 3 succeeded (67%)", lines
    assert lines[4].startswith("last failure "), lines
    assert lines[4].endswith("(run 2): exit code 4 · disk full"), lines
    summary = env.cli_json("history", "job")
    assert [run["status"] for run in summary["runs"]] == ["success", "failed", "success", "success"]
    assert (summary["succeeded"], summary["counted"], summary["success_rate"]) == (3, 4, 0.75)
    failure = summary["last_failure"]
    assert (failure["run_id"], failure["reason"]) == (2, "exit code 4 · disk full")
    unknown = env.cli("history", "jbo")
    assert unknown.returncode == 2 and "did you mean 'job'?" in unknown.stderr
    logs = env.cli("logs", "job", "-n", "2", check=True).stdout.splitlines()
    assert "] job: run 4 succeeded in " in logs[0], logs  # the event's kind ("completed") not said again
    assert logs[1].endswith("] job: run 4 started (manual)"), logs


def test_run_says_each_thing_once(env: Env) -> None:
    env.script("disk.sh", "echo disk full >&2\nexit 3\n")
    env.script("fine.sh", "echo fine\n")
    env.write_tasks(
        {"task_id": "disk", "script_path": "disk.sh", "schedule": "daily at 03:00"},
        {"task_id": "fine", "script_path": "fine.sh", "schedule": "daily at 03:00"},
    )
    failed = env.cli("run", "disk").stdout.splitlines()[0]
    assert re.fullmatch(r"✗ disk \(run 1\): failed after \d+\.\d s: exit code 3", failed), failed
    succeeded = env.cli("run", "fine", check=True).stdout.splitlines()[0]
    assert re.fullmatch(r"✓ fine \(run 2\): succeeded in \d+\.\d s", succeeded), succeeded


def test_a_task_added_but_not_reloaded_says_to_reload(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    env.script("old.sh", "true\n")
    env.write_tasks({"task_id": "old", "script_path": "old.sh", "schedule": "daily at 03:00"})
    start_daemon()
    env.script("new.sh", "true\n")
    env.write_tasks(
        {"task_id": "old", "script_path": "old.sh", "schedule": "daily at 03:00"},
        {"task_id": "new", "script_path": "new.sh", "schedule": "daily at 03:00"},
    )
    unread = env.cli("run", "new")
    assert (
        unread.returncode == 2
        and "tasks.json changed since the daemon read it: moltbot reload" in unread.stderr
    )
    env.cli("reload", check=True)
    assert env.cli("run", "new").returncode == 0
    assert "moltbot reload" not in env.cli("run", "nothing").stderr  # no change pending: a plain unknown
