"""One-shots run at most once: a past time is refused up front, a one-shot that ran stays done
whatever edits follow, and one a crash interrupted is not run again (the admins are told)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.core import Core
from moltbot.daemon import Daemon
from tests.conftest import Env, wait_until

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_check_refuses_a_one_shot_whose_time_is_past_and_that_never_ran(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks(
        {"task_id": "fine", "script_path": "job.sh", "schedule": "every 1h"},
        {"task_id": "late", "script_path": "job.sh", "schedule": "at 2020-01-01T00:00", "timezone": "UTC"},
    )
    result = env.cli("check")
    assert result.returncode == 3, result.stdout
    lines = env.home.tasks_json.read_text().splitlines()
    line = next(number for number, text in enumerate(lines, 1) if "2020-01-01" in text)
    assert (
        f"{env.home.tasks_json}:{line}: tasks[1].schedule (late): 'at 2020-01-01T00:00' is already past"
        in (result.stderr)
    )
    daemon = env.cli("daemon")  # the daemon refuses it the same way (ExecStartPre runs check)
    assert daemon.returncode == 3 and "is already past" in daemon.stderr


def registered(env: Env, clock: FakeClock) -> Core:
    """tasks.json registered at the clock's instant (as a daemon or a CLI would)."""
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    return core


def drive(daemon: Daemon) -> None:
    daemon.step()
    while daemon.executor.busy() or daemon._claimed:
        daemon.wait(5)
        daemon.step()


def test_a_one_shot_that_ran_never_runs_again_when_its_definition_changes(env: Env) -> None:
    env.script("job.sh", "echo ran >> ran.txt\n")
    entry = {"task_id": "once", "script_path": "job.sh", "schedule": "at 2026-11-26T12:01", "timezone": "UTC"}
    env.write_tasks(entry)
    clock = FakeClock(NOON)
    core = registered(env, clock)
    daemon = Daemon(core, core.load_specs())
    try:
        clock.advance(minutes=2)
        drive(daemon)
        assert [run.status for run in store.recent_runs("once", 10)] == ["success"]
        # The owner changes its zone: the instant moves to 11:01Z, still past; it must not run again.
        env.write_tasks({**entry, "timezone": "Europe/Berlin"})
        daemon.reload()
        drive(daemon)
        assert store.get_task("once").next_run is None
        clock.advance(hours=3)  # and an edit that moves it to a time still to come does not either
        env.write_tasks({**entry, "schedule": "at 2026-11-26T18:00"})
        daemon.reload()
        clock.advance(hours=3)
        drive(daemon)
        assert [run.status for run in store.recent_runs("once", 10)] == ["success"]
        assert (env.home.tasks_dir / "ran.txt").read_text() == "ran\n"
        assert core.load_specs()  # and it is not refused as "past, never ran": it ran
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_a_one_shot_run_by_hand_before_its_time_does_not_run_again_at_it(env: Env) -> None:
    env.script("job.sh", "echo ran >> ran.txt\n")
    env.write_tasks(
        {"task_id": "once", "script_path": "job.sh", "schedule": "at 2026-11-26T12:30", "timezone": "UTC"}
    )
    clock = FakeClock(NOON)
    core = registered(env, clock)
    daemon = Daemon(core, core.load_specs())
    try:
        core.request_run("once", requested_by="owner")  # in this process: wakes the loop directly
        drive(daemon)
        clock.advance(minutes=31)
        drive(daemon)
        statuses = [(run.trigger, run.status) for run in reversed(store.recent_runs("once", 10))]
        assert statuses == [("manual", "success"), ("schedule", "skipped")]
        assert store.get_task("once").next_run is None
        assert (env.home.tasks_dir / "ran.txt").read_text() == "ran\n"
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_a_registered_one_shot_whose_time_passed_while_down_follows_its_missed_policy(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks(
        {"task_id": "once", "script_path": "job.sh", "schedule": "at 2026-11-26T12:01", "timezone": "UTC"}
    )
    clock = FakeClock(NOON)
    core = registered(env, clock)  # before its time
    clock.advance(hours=2)  # the daemon was down meanwhile
    specs = core.load_specs()  # not refused: it is a missed occurrence, not a mistake
    daemon = Daemon(core, specs)
    try:
        drive(daemon)
        (run,) = store.recent_runs("once", 10)
        assert run.status == "success" and run.scheduled_for == NOON + timedelta(minutes=1)
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_a_one_shot_a_crash_interrupted_is_not_rerun_and_the_admins_hear_it(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    started = env.home.root / "started"
    env.script("slow.sh", f"echo $$ >> {started}\nsleep 300\n")
    env.write_tasks({"task_id": "upgrade", "script_path": "slow.sh", "schedule": "in 1 seconds"})
    daemon = start_daemon()
    wait_until(started.exists, what="the one-shot to start")
    daemon.kill()
    again = start_daemon()
    text = (
        "one-shot upgrade was interrupted by a crash (run 1) and will not run again; "
        "run:upgrade to run it now"
    )
    wait_until(lambda: text in again.output(), what="the alert (logged: no chat channel is configured)")
    env.db()
    assert [(run.status, run.trigger) for run in store.recent_runs("upgrade", 10)] == [
        ("interrupted", "schedule")
    ]
    assert len(started.read_text().split()) == 1
    assert json.loads(env.cli("status", "--json", check=True).stdout)  # the daemon still answers
