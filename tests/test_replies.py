"""Replies that say each thing once (#14): relative times, event lines, senders, output, history.

In-process on a real store, the runs real processes (``run_in_foreground``), the clock injected
where the text depends on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from handlers.commands import handle
from moltbot.clock import FakeClock
from moltbot.core import Core, Request, Watcher
from moltbot.core.foreground import run_in_foreground
from moltbot.local_times import relative
from moltbot.run_history import sparkline, why
from tests.conftest import Env

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OWNER_UUID = "0b0e0a2c-1111-4222-8333-444455556666"
OTHER_UUID = "7d7d0a2c-1111-4222-8333-44445555beef"
WATCHER = Watcher("signal", "+4915100000001", 1, "+4915100000001")


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(0), "now"),
        (timedelta(seconds=0.4), "now"),
        (timedelta(seconds=59), "in 59 s"),
        (timedelta(seconds=-59), "59 s ago"),
        (timedelta(seconds=60), "in 1 min"),
        (timedelta(seconds=3599), "in 59 min"),
        (timedelta(hours=1), "in 1 h"),
        (timedelta(hours=5, minutes=50, seconds=30), "in 5 h 50 min"),
        (timedelta(minutes=-3), "3 min ago"),
        (timedelta(hours=-23, minutes=-59), "23 h 59 min ago"),
        (timedelta(days=1), "in 1 d"),
        (timedelta(days=2, hours=3, minutes=10), "in 2 d 3 h"),
        (timedelta(days=-9), "9 d ago"),
    ],
)
def test_relative_times_read_as_people_say_them(offset: timedelta, expected: str) -> None:
    clock = FakeClock(NOW)
    assert relative(clock.now() + offset, clock.now()) == expected


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        ("failed", "exit code 1 after 2.0s", "exit code 1"),
        ("failed", "killed by signal SIGKILL after 0.3s", "killed by signal SIGKILL"),
        ("interrupted", "interrupted: stopped on request after 29.5s", "stopped on request"),
        ("timeout", "timed out after 10s (took 10.1s to stop)", "the limit is 10 s"),
        ("failed", "exit code 1 after 2.0s; output not saved: /x: Permission denied",
         "exit code 1; output not saved: /x: Permission denied"),
        ("success", "succeeded in 2.0s", ""),
    ],
)  # fmt: skip
def test_a_runs_reason_leaves_out_its_status_and_duration(status: str, message: str, reason: str) -> None:
    assert why(status, message) == reason


def test_a_sparkline_spans_the_bars_oldest_first() -> None:
    assert sparkline([1.0, 8.0, 4.5]) == "▁█▅"
    assert sparkline([3.0, 3.0]) == "▄▄"  # all alike: the middle, not a floor that reads "fast"
    assert sparkline([]) == ""


def backup_core(env: Env, clock: FakeClock | None) -> Core:
    counter = env.home.root / "attempts"
    # The third run fails with a word on stderr; the others succeed, the fourth slowly.
    env.script(
        "backup.sh",
        f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n"
        'echo "copied $n"\necho "warning $n" >&2\n'
        '[ $n -eq 3 ] && { echo "rsync: connection refused" >&2; exit 3; }\n'
        "[ $n -eq 4 ] && sleep 0.3\nexit 0\n",
    )
    env.write_tasks({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    return core


@pytest.fixture
def core(env: Env) -> Iterator[Core]:
    yield backup_core(env, FakeClock(NOW))


@pytest.fixture
def real_core(env: Env) -> Iterator[Core]:
    """On the system's clock: a run's duration is measured on it."""
    yield backup_core(env, None)


def ask(core: Core, text: str, requester: str = f"signal:{OWNER_UUID}", role: str = "admin") -> str:
    return handle(core, Request(text, role, requester, WATCHER)).text


def test_logs_say_each_event_once_and_name_senders_as_you_or_a_short_id(core: Core) -> None:
    core.request_run("backup", "remote", requested_by=f"signal:{OWNER_UUID}")
    core.request_run("backup", "remote", requested_by=f"signal:{OTHER_UUID}")
    core.pause("backup")
    lines = ask(core, "logs:backup").splitlines()
    assert lines[-1].endswith("backup: paused by user"), lines
    queued = [line for line in lines if "queued" in line]
    assert queued[0].endswith("backup: run 1 queued (remote, by you)"), queued
    assert queued[1].endswith("backup: run 2 queued (remote, by …beef)"), queued
    assert lines[-1].startswith("12:00 "), lines  # the clock time in the owner's zone (UTC here)
    text = "\n".join(lines)
    assert OWNER_UUID not in text and OTHER_UUID not in text and "queued:" not in text


def test_output_shows_stdout_and_stderr_labelled(core: Core) -> None:
    run_in_foreground(core, "backup", requested_by="cli:test")
    text = ask(core, "output:backup")
    head, *rest = text.splitlines()
    assert head.startswith("✅ backup finished in ") and head.endswith("(run 1)"), head
    assert rest == ["stdout:", "copied 1", "stderr:", "warning 1"], text


def test_history_at_a_glance(real_core: Core) -> None:
    for _ in range(5):
        run_in_foreground(real_core, "backup", requested_by="cli:test")
    lines = ask(real_core, "history:backup").splitlines()
    assert lines[0] == "backup: the last 5 runs, oldest first", lines
    assert lines[1] == "✅✅❌✅✅", lines
    bars = lines[2].split()[1]
    assert lines[2].startswith("durations ") and len(bars) == 5 and max(bars) == bars[3] == "█", lines
    assert "· median " in lines[2] and lines[2].endswith(" s"), lines
    assert lines[3] == "4 of 5 succeeded (80%)", lines
    assert re.fullmatch(
        r"last failure (now|\d+ s ago) \(run 3\): exit code 3 · rsync: connection refused", lines[4]
    )
    assert len(lines) == 5


def test_history_of_an_unknown_task_suggests_the_closest(core: Core) -> None:
    assert ask(core, "history:bakup", role="viewer").startswith("unknown task 'bakup'; did you mean backup?")
    assert ask(core, "history:backup", role="viewer") == "backup has not run yet"


def test_a_stopped_runs_result_is_one_sentence(core: Core) -> None:
    from handlers.format import finished_run

    run = run_in_foreground(core, "backup", requested_by="cli:test")
    stopped = run._replace(
        status="interrupted",
        message="interrupted: stopped on request after 29.5s",
        exit_code=-15,
        finished_at=run.started_at + timedelta(seconds=29.5),  # type: ignore[operator]
        stdout_tail="",
        stderr_tail="",
    )
    assert finished_run(stopped) == "⏹ backup stopped after 29.5 s (run 1)"
    failed = run._replace(status="failed", message="exit code 3 after 2.0s", exit_code=3, stdout_tail="")
    assert finished_run(failed).splitlines()[0].endswith("(run 1): exit code 3")
