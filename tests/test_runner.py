"""The runner with real processes: exit codes, timeouts, cancels, groups, output."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest

from moltbot.processes import kill_processes_of_run, minimal_environment, processes_of_run, signal_processes
from moltbot.runner import ProcessRun, RunResult
from tests.conftest import alive, dies_soon, wait_until


def make_script(tmp_path: Path, body: str, name: str = "task.sh") -> Path:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def run(tmp_path: Path, body: str, **options: float) -> tuple[ProcessRun, RunResult]:
    process = ProcessRun(
        [str(make_script(tmp_path, body))],
        cwd=tmp_path,
        env=minimal_environment({"MARK": "yes"}),
        log_path=tmp_path / "logs" / "1.log",
        timeout=options.pop("timeout", 30),
        kill_grace=options.pop("kill_grace", 2),
        output_cap=int(options.pop("output_cap", 1 << 20)),
    )
    return process, process.run()


def test_success_keeps_stdout_and_stderr_apart(tmp_path: Path) -> None:
    _, result = run(tmp_path, "echo out-line\necho err-line >&2\necho mark=$MARK\n")
    assert result.status == "success" and result.exit_code == 0
    assert result.stdout_tail == "out-line\nmark=yes\n"
    assert result.stderr_tail == "err-line\n"
    log = (tmp_path / "logs" / "1.log").read_text()
    assert "out-line" in log and "err-line" in log


def test_failure_reports_the_exit_code(tmp_path: Path) -> None:
    _, result = run(tmp_path, "echo broken >&2\nexit 3\n")
    assert (result.status, result.exit_code) == ("failed", 3)
    assert result.message.startswith("exit code 3")


def test_a_missing_interpreter_is_a_failed_run_not_a_crash(tmp_path: Path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    result = ProcessRun([str(script)], cwd=tmp_path, env={}, log_path=tmp_path / "l.log", timeout=5).run()
    assert result.status == "failed" and "could not start" in result.message


def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    body = f"sleep 300 &\necho $! > {pid_file}\nwait\n"
    _, result = run(tmp_path, body, timeout=1, kill_grace=1)
    assert result.status == "timeout"
    assert "timed out after 1s" in result.message
    assert dies_soon(int(pid_file.read_text()))


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    body = "trap '' TERM\nwhile :; do sleep 0.1; done\n"
    _, result = run(tmp_path, body, timeout=0.5, kill_grace=0.5)
    assert result.status == "timeout" and result.exit_code == -9


def test_leftover_background_processes_die_with_the_main_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "left.pid"
    _, result = run(tmp_path, f"sleep 300 >/dev/null 2>&1 &\necho $! > {pid_file}\necho done\n")
    assert result.status == "success"
    assert dies_soon(int(pid_file.read_text()))


def test_leftover_holding_the_pipe_does_not_hang_the_run(tmp_path: Path) -> None:
    # The background sleep inherits stdout; without the group kill, EOF never comes.
    _, result = run(tmp_path, "sleep 300 &\necho parent-done\n", kill_grace=1)
    assert result.status == "success" and "parent-done" in result.stdout_tail


def test_cancel_interrupts_a_running_process(tmp_path: Path) -> None:
    process = ProcessRun(
        [str(make_script(tmp_path, "echo started\nsleep 300\n"))],
        cwd=tmp_path,
        env=minimal_environment({}),
        log_path=tmp_path / "c.log",
        timeout=60,
        kill_grace=2,
    )
    outcome: list[RunResult] = []
    worker = threading.Thread(target=lambda: outcome.append(process.run()))
    worker.start()
    wait_until(
        lambda: "started" in (tmp_path / "c.log").read_text() if (tmp_path / "c.log").exists() else False
    )
    process.cancel("stopped on request")
    worker.join(10)
    result = outcome[0]
    assert result.status == "interrupted" and "stopped on request" in result.message
    process.cancel("again")  # after the run: harmless, writes to no reused descriptor


def test_output_over_the_cap_is_truncated_in_the_log_but_tails_stay_current(tmp_path: Path) -> None:
    body = "i=0\nwhile [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done\n"
    _, result = run(tmp_path, body, output_cap=1000)
    log = (tmp_path / "logs" / "1.log").read_bytes()
    assert log.startswith(b"line-0\n")
    assert b"output truncated" in log and len(log) < 1200
    assert result.stdout_tail.endswith("line-1999\n")
    assert result.stdout_tail.startswith("line-")  # cut at a line boundary


def test_minimal_environment_passes_basics_and_hides_the_rest() -> None:
    base = {"PATH": "/bin", "HOME": "/root", "SIGNAL_TOKEN": "secret", "LANG": "C.UTF-8"}
    env = minimal_environment({"MOLTBOT_TASK_ID": "x"}, base)
    assert env == {"PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8", "MOLTBOT_TASK_ID": "x"}


@pytest.mark.parametrize("signal_exit", ["kill -KILL $$"])
def test_death_by_signal_is_named(tmp_path: Path, signal_exit: str) -> None:
    _, result = run(tmp_path, signal_exit + "\n")
    assert result.status == "failed" and "killed by signal SIGKILL" in result.message


def test_a_silent_run_leaves_no_log_file(tmp_path: Path) -> None:
    _, result = run(tmp_path, "exit 0\n")
    assert result.status == "success" and result.log_path is None
    assert not (tmp_path / "logs").exists()


def test_processes_of_a_run_are_found_even_outside_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "escaped.pid"
    script = make_script(tmp_path, f"setsid sleep 300 &\necho $! > {pid_file}\nsleep 300\n")
    env = minimal_environment({"MOLTBOT_RUN_ID": "77", "MOLTBOT_HOME": str(tmp_path)})
    main = subprocess.Popen([str(script)], env=env, start_new_session=True)
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
        escaped = int(pid_file.read_text())
        # No wait for setsid to become sleep: inside execve a process's environ reads empty for a
        # moment (CI once caught it there), and the look-up must look again rather than miss it.
        found = processes_of_run(tmp_path, 77)
        assert main.pid in found and escaped in found
        assert processes_of_run(tmp_path, 78) == [] and processes_of_run(tmp_path / "other", 77) == []
        signal_processes(found, signal.SIGKILL)
        main.wait(10)
        wait_until(lambda: not alive(escaped), what="the escaped process to die")
    finally:
        main.kill()
        main.wait()


def test_a_run_that_keeps_forking_is_killed_to_the_last_process(tmp_path: Path) -> None:
    # Children forked after a scan, or caught inside execve, escape one scan; the kill scans again.
    spawner = "while :; do sleep 300 & setsid sleep 300 & done\n"
    env = minimal_environment({"MOLTBOT_RUN_ID": "5", "MOLTBOT_HOME": str(tmp_path)})
    for _ in range(4):  # one scan leaves survivors about every other time
        main = subprocess.Popen(["sh", "-c", spawner], env=env, start_new_session=True)
        try:
            wait_until(lambda: len(processes_of_run(tmp_path, 5)) > 50, what="the run to fork")
            assert kill_processes_of_run(tmp_path, 5) > 50
            main.wait(10)
            # Killed processes take a moment to finish dying on a loaded machine; missed ones never do.
            wait_until(lambda: processes_of_run(tmp_path, 5) == [], what="every process of the run to die")
        finally:
            main.kill()
            main.wait()
            kill_processes_of_run(tmp_path, 5)


# Output that cannot be saved (a real fault of the surroundings, real even as root): the run goes on
# to its end, its own exit code decides its status, the tails are kept and the message says why.
PRINTS_TWICE = "echo first\nsleep 0.2\necho second >&2\nexit 3\n"  # two writes, apart


def test_a_log_folder_that_cannot_be_made_loses_no_run(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the log folder goes\n")
    _, result = run(tmp_path, PRINTS_TWICE)
    assert (result.status, result.exit_code) == ("failed", 3)
    assert (result.stdout_tail, result.stderr_tail) == ("first\n", "second\n")
    assert result.message.startswith("exit code 3 after ")
    assert f"; output not saved: {tmp_path / 'logs'} is a file, not a folder" in result.message
    assert result.log_path is None
    assert (tmp_path / "logs").read_text() == "a file where the log folder goes\n"


def test_a_full_disk_while_writing_the_log_loses_no_run(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "1.log").symlink_to("/dev/full")  # every write: ENOSPC
    _, result = run(tmp_path, PRINTS_TWICE.replace("exit 3", "exit 0"))
    assert (result.status, result.exit_code) == ("success", 0)
    assert (result.stdout_tail, result.stderr_tail) == ("first\n", "second\n")
    assert result.message.startswith("succeeded in ")
    assert f"; output not saved: {tmp_path / 'logs' / '1.log'}: No space left on device" in result.message
