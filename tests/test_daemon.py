"""The daemon end to end: a real process, real signals, real SQLite, real scripts."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moltbot import store
from moltbot.config.home import Home
from moltbot.records import Run, Task
from tests.conftest import DaemonProcess, Env, alive, dies_soon, wait_until

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)


def runs(task_id: str, status: str | None = None) -> list[Run]:
    """The task's runs, oldest first (only those with ``status``, if given)."""
    found = reversed(store.recent_runs(task_id, 1_000_000))
    return [run for run in found if status is None or run.status == status]


def task(task_id: str) -> Task:
    found = store.get_task(task_id)
    assert found is not None
    return found


def test_recurring_task_fires_on_its_grid_without_drift(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("tick.sh", "sleep 0.3\n")
    env.write_tasks({"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"})
    daemon = start_daemon()
    env.db()
    wait_until(lambda: len(runs("tick", "success")) >= 3, what="three runs")
    daemon.stop()
    done = runs("tick", "success")[:3]
    anchor = task("tick").anchor
    for run in done:
        assert run.started_at - run.scheduled_for < timedelta(milliseconds=500)
        # Each occurrence sits on the anchor's 1 s grid, even though each run took 0.3 s.
        offset = (run.scheduled_for - anchor).total_seconds()
        assert abs(offset - round(offset)) < 1e-6
    assert [r.scheduled_for for r in done] == sorted({r.scheduled_for for r in done})


def test_cli_run_is_handed_to_the_daemon_and_recorded_once(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("hello.sh", 'echo "hello from $MOLTBOT_TASK_ID run $MOLTBOT_RUN_ID"\n')
    env.write_tasks(
        {"task_id": "hello", "name": "Hello", "script_path": "hello.sh", "schedule": "daily at 03:00"}
    )
    daemon = start_daemon()
    result = env.cli_json("run", "Hello")
    assert result["success"] is True and result["task_id"] == "hello"
    assert result["stdout"] == f"hello from hello run {result['run_id']}\n"
    assert set(result) >= {"task_id", "success", "duration", "stdout", "stderr"}
    env.db()
    (run,) = runs("hello")
    assert (run.trigger, run.owner_pid, run.requested_by.startswith("cli:")) == (
        "manual",
        daemon.process.pid,
        True,
    )


def test_cli_run_reports_a_daemon_that_stops_or_dies_first(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("long.sh", "sleep 300\n")
    env.write_tasks({"task_id": "long", "script_path": "long.sh", "schedule": "daily at 03:00"})
    env.db()
    for end, expected_stream, expected in (
        ("stop", "stdout", "the daemon is shutting down"),
        ("kill", "stderr", "the daemon stopped before run"),
    ):
        daemon = start_daemon()
        waiting = subprocess.Popen([sys.executable, "-m", "moltbot", "run", "long"], env=env.environ,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_until(lambda: task("long").current_run_id, what="the handed-over run to start")
        daemon.stop() if end == "stop" else daemon.kill()
        stdout, stderr = waiting.communicate(timeout=30)
        assert waiting.returncode == 1
        assert expected in (stdout if expected_stream == "stdout" else stderr), (stdout, stderr)
        if end == "stop":
            env.cli("resume", "long", check=True)  # so the next start queues no resume run of its own
            for queued in runs("long", "queued"):  # PostgreSQL: handed to the other nodes at once
                store.skip_queued(queued.id, datetime.now(UTC), "not wanted by this test")


def test_unknown_task_suggests_the_closest(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("backup.sh", "true\n")
    env.write_tasks({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    start_daemon()
    result = env.cli("run", "bakup")
    assert result.returncode == 2 and "did you mean 'backup'?" in result.stderr


def test_overlap_skip_records_occurrences_that_came_while_running(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("slow.sh", "sleep 2.5\n")
    env.write_tasks({"task_id": "slow", "script_path": "slow.sh", "schedule": "every 1s"})
    start_daemon()
    env.db()
    wait_until(
        lambda: runs("slow", "success") and len(runs("slow", "skipped")) >= 2, what="skips then a success"
    )
    for run in runs("slow", "skipped"):
        assert "still running" in run.message
    started = [r for r in runs("slow") if r.started_at]
    for earlier, later in itertools.pairwise(started):
        assert earlier.finished_at is None or later.started_at >= earlier.finished_at  # never two at once


def test_when_workers_are_scarce_higher_priority_runs_first(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("work.sh", "sleep 0.2\n")
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    env.write_tasks(
        *[
            {
                "task_id": f"p{priority}",
                "script_path": "work.sh",
                "schedule": f"at {at}",
                "priority": priority,
            }
            for priority in (9, 1, 5, 3)
        ],
        settings="[daemon]\nworkers = 1\n",
    )
    start_daemon()
    env.db()
    wait_until(lambda: all(runs(f"p{p}", "success") for p in (1, 3, 5, 9)), what="all four one-shots")
    order = sorted((runs(f"p{p}")[0].started_at, p) for p in (1, 3, 5, 9))
    assert [p for _, p in order] == [1, 3, 5, 9]


def test_a_failing_task_retries_bounded_and_never_stops_the_others(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("broken.sh", "echo boom >&2\nexit 4\n")
    env.script("fine.sh", "true\n")
    env.write_tasks(
        {"task_id": "broken", "script_path": "broken.sh", "schedule": "in 1 seconds", "retries": 2,
         "retry_backoff_seconds": 0.1},
        {"task_id": "fine", "script_path": "fine.sh", "schedule": "every 1s"},
    )  # fmt: skip
    start_daemon()
    env.db()
    wait_until(
        lambda: len(runs("broken", "failed")) == 3 and task("broken").current_run_id is None,
        what="3 attempts",
    )
    attempts = runs("broken")
    assert [(r.attempt, r.trigger) for r in attempts] == [(1, "schedule"), (2, "retry"), (3, "retry")]
    assert all(
        r.exit_code == 4 and "exit code 4" in r.message and r.stderr_tail == "boom\n" for r in attempts
    )
    broken = task("broken")
    assert (broken.status, broken.error_count, broken.next_run) == ("error", 3, None)
    wait_until(lambda: len(runs("fine", "success")) >= 2, what="the other task to keep running")
    logs = env.cli_json("logs", "broken", "-n", "50")
    assert any(entry["action"] == "failed" and "exit code 4" in entry["message"] for entry in logs)


def test_a_retry_whose_output_cannot_be_saved_is_recorded_on_that_attempt(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    first = env.home.root / "first-done"
    # Attempt 1 fails silently; attempt 2 prints, and its log cannot be made: logs/flaky is a file.
    env.script("flaky.sh", f"if [ ! -e {first} ]; then touch {first}; exit 1; fi\necho output\n")
    (env.home.logs_dir / "flaky").write_text("not a directory")
    env.script("fine.sh", "true\n")
    env.write_tasks(
        {"task_id": "flaky", "script_path": "flaky.sh", "schedule": "in 1 seconds", "retries": 1,
         "retry_backoff_seconds": 0},
        {"task_id": "fine", "script_path": "fine.sh", "schedule": "every 1s"},
    )  # fmt: skip
    daemon = start_daemon()
    env.db()
    wait_until(lambda: len(runs("flaky", "success")) == 1 and task("flaky").current_run_id is None,
               what="both attempts recorded")  # fmt: skip
    attempts = runs("flaky")
    assert [(r.attempt, r.status) for r in attempts] == [(1, "failed"), (2, "success")]
    assert "exit code 1" in attempts[0].message and "output not saved" not in attempts[0].message
    assert "output not saved" in attempts[1].message and attempts[1].stdout_tail == "output\n"
    assert task("flaky").run_count == 2  # each attempt counted once
    before = len(runs("fine", "success"))
    wait_until(lambda: len(runs("fine", "success")) > before, what="other tasks to keep running")
    assert "flaky: output not saved" in daemon.output()


def failing_with_a_long_backoff(env: Env) -> Path:
    """A task that fails and would retry in 600 s; the file marks its first attempt."""
    marker = env.home.root / "attempted"
    env.script("flaky.sh", f"touch {marker}\nexit 1\n")
    env.write_tasks(
        {"task_id": "flaky", "script_path": "flaky.sh", "schedule": "in 1 seconds", "retries": 3,
         "retry_backoff_seconds": 600},
    )  # fmt: skip
    return marker


def test_stop_during_a_retry_backoff_gives_up_the_retry(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    marker = failing_with_a_long_backoff(env)
    start_daemon()
    env.db()
    wait_until(marker.exists, what="the first attempt to fail")
    assert env.cli("stop", "flaky").returncode == 0  # the task now waits 600 s to retry
    wait_until(lambda: task("flaky").current_run_id is None, timeout=10, what="the retry to be given up")
    assert [(r.status, r.attempt) for r in runs("flaky")] == [("failed", 1)]


def test_shutdown_during_a_retry_backoff_does_not_wait_for_it(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    marker = failing_with_a_long_backoff(env)
    daemon = start_daemon()
    env.db()
    wait_until(marker.exists, what="the first attempt to fail")
    wait_until(lambda: "retry 1 of 3" in daemon.output(), what="the retry to be planned")
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0  # not 600 s
    assert [(r.status, r.attempt) for r in runs("flaky")] == [("failed", 1)]
    assert task("flaky").current_run_id is None


def test_sigterm_interrupts_keeps_the_checkpoint_and_resumes_on_restart(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script(
        "count.sh",
        'start=$(echo "${MOLTBOT_CHECKPOINT:-0}" | tr -dc 0-9)\n'
        "i=${start:-0}\n"
        'echo "start at $i"\n'
        "while [ $i -lt 8 ]; do\n"
        "  i=$((i+1))\n"
        '  moltbot checkpoint save "$i"\n'
        '  echo "item $i"\n'
        "  sleep 0.3\n"
        "done\n"
        "moltbot checkpoint clear\n",
    )
    env.write_tasks({"task_id": "count", "script_path": "count.sh", "schedule": "in 1 seconds"})
    daemon = start_daemon()
    env.db()
    wait_until(lambda: (store.load_checkpoint("count") or "0") >= "3", what="some progress")
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(20) == 0
    interrupted = runs("count")[0]
    assert interrupted.status == "interrupted" and "shutting down" in interrupted.message
    if env.database is None:
        assert task("count").paused_by == "shutdown"  # it resumes at the next start
    else:  # several nodes may be up: queued again at once for whichever takes it (here: the next start)
        assert task("count").paused_by is None and [r.trigger for r in runs("count", "queued")] == ["resume"]
    saved = int(store.load_checkpoint("count") or 0)
    assert 3 <= saved < 8

    start_daemon()
    wait_until(lambda: runs("count", "success"), what="the resumed run")
    resumed = runs("count", "success")[0]
    assert resumed.trigger == "resume"
    assert resumed.stdout_tail.startswith(f"start at {saved}\n")
    assert store.load_checkpoint("count") is None  # cleared at the end
    assert task("count").paused_by is None
    assert len([r for r in runs("count") if r.started_at]) == 2  # a one-shot: interrupted + resumed, no more


def test_a_task_paused_by_its_user_stays_paused_across_a_shutdown(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("long.sh", "sleep 300\n")
    env.write_tasks({"task_id": "long", "script_path": "long.sh", "schedule": "in 1 seconds"})
    daemon = start_daemon()
    env.db()
    wait_until(lambda: task("long").current_run_id, what="the run to start")
    env.cli("pause", "long", check=True)
    assert daemon.stop() == 0
    assert task("long").paused_by == "user"
    start_daemon()
    assert task("long").paused_by == "user"
    assert [r.trigger for r in runs("long")] == ["schedule"]  # no resume run was queued


def test_kill_9_recovery_kills_orphans_and_reruns_per_policy(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    pid_file = env.home.root / "orphan.pid"
    env.script("hang.sh", f'echo $$ > {pid_file}\nif [ "$MOLTBOT_RUN_ID" = 1 ]; then sleep 300; fi\n')
    env.script("oneshot.sh", f"echo $$ > {pid_file}.oneshot\nsleep 300\n")
    env.write_tasks(
        {"task_id": "hang", "script_path": "hang.sh", "schedule": "every 1h", "missed": "once"},
        {"task_id": "oneshot", "script_path": "oneshot.sh", "schedule": "in 1 seconds"},
    )
    # A one-shot is recovered by the same path but must not run again.
    env.home.settings_toml.write_text("[daemon]\nworkers = 2\n")
    daemon = start_daemon()
    env.db()
    store.enqueue_run("hang", "manual", "test", datetime.now(UTC))
    os.kill(daemon.process.pid, signal.SIGUSR1)  # what the CLI does after queueing
    wait_until(
        lambda: pid_file.exists() and (env.home.root / "orphan.pid.oneshot").exists(), what="both running"
    )
    orphan = int(pid_file.read_text())
    daemon.kill()
    os.kill(orphan, 0)  # the task survived its daemon (own session) ...

    start_daemon()
    wait_until(lambda: runs("hang", "success"), what="the recovery run")
    wait_until(lambda: not alive(orphan), timeout=5, what="the orphan to be killed")
    statuses = [(r.status, r.trigger) for r in runs("hang")]
    assert statuses == [("interrupted", "manual"), ("success", "recovery")]
    assert [r.attempt for r in runs("hang")] == [1, 2]  # recovery is the next attempt of the same run
    assert [(r.status, r.trigger) for r in runs("oneshot")] == [("interrupted", "schedule")]
    assert dies_soon(int((env.home.root / "orphan.pid.oneshot").read_text()))


def test_missed_runs_after_downtime_follow_the_policy(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("job.sh", "true\n")
    env.write_tasks(
        {"task_id": "skipper", "script_path": "job.sh", "schedule": "every 1h", "missed": "skip"},
        {"task_id": "once", "script_path": "job.sh", "schedule": "every 1h", "missed": "once"},
    )
    env.cli("status", check=True)  # registers the tasks without a daemon
    env.db()
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3, minutes=1)
    for task_id in ("skipper", "once"):
        with store.write_transaction():
            store.connection().execute(
                "UPDATE task SET next_run = ?, anchor = ? WHERE task_id = ?",
                (store.to_db(three_hours_ago), store.to_db(three_hours_ago - timedelta(hours=1)), task_id),
            )
    start_daemon()
    wait_until(lambda: runs("once", "success") and runs("skipper", "missed"), what="policies applied")
    # One row per occurrence not run, each naming its instant and the policy.
    missed = runs("skipper", "missed")
    assert sorted(run.scheduled_for for run in missed) == [
        three_hours_ago + timedelta(hours=h) for h in range(4)
    ]
    assert all("policy: skip" in run.message for run in missed)
    assert not runs("skipper", "success")
    assert len(runs("once", "missed")) == 3
    (ran,) = runs("once", "success")
    assert ran.scheduled_for == three_hours_ago + timedelta(hours=3)
    assert task("skipper").next_run > datetime.now(UTC)


def test_missed_all_replays_every_occurrence_oldest_first_whatever_overlap_says(
    env: Env, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    env.script("job.sh", "sleep 0.3\n")
    env.write_tasks(
        {
            "task_id": "replay",
            "script_path": "job.sh",
            "schedule": "every 1s",
            "missed": "all",
            "overlap": "skip",
        }
    )
    env.home.settings_toml.write_text("[daemon]\nmissed_grace_seconds = 0.5\nmax_catchup_runs = 20\n")
    env.cli("status", check=True)
    env.db()
    downtime_began = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    with store.write_transaction():
        store.connection().execute(
            "UPDATE task SET next_run = ?, anchor = ? WHERE task_id = 'replay'",
            (store.to_db(downtime_began), store.to_db(downtime_began - timedelta(seconds=1))),
        )
    daemon = start_daemon()
    missed = [downtime_began + timedelta(seconds=s) for s in range(5)]
    executed = lambda: [r for r in runs("replay") if r.status not in ("skipped", "missed", "queued")]  # noqa: E731
    wait_until(
        lambda: {r.scheduled_for for r in executed() if r.status == "success"} >= set(missed),
        timeout=20,
        what="the replay",
    )
    daemon.stop()
    replayed = sorted((r for r in executed() if r.scheduled_for in missed), key=lambda r: r.id)
    assert [r.scheduled_for for r in replayed] == missed  # each once, oldest first
    assert all(r.trigger == "catchup" for r in replayed)
    assert [r.started_at for r in replayed] == sorted(r.started_at for r in replayed)
    assert not [r for r in runs("replay", "skipped") if r.scheduled_for in missed]
    occurrences = [r.scheduled_for for r in executed() if r.trigger != "manual"]
    assert len(occurrences) == len(set(occurrences))


def test_pause_resume_and_stop_from_the_cli(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("long.sh", "echo begun\nsleep 300\n")
    env.write_tasks({"task_id": "long", "script_path": "long.sh", "schedule": "every 2s"})
    start_daemon()
    env.db()
    wait_until(lambda: task("long").current_run_id, what="a run to start")
    paused = env.cli("pause", "long", check=True)
    assert "paused (its current run continues" in paused.stdout
    stopped = env.cli("stop", "long", check=True)
    assert "stopping run" in stopped.stdout
    wait_until(lambda: runs("long", "interrupted"), what="the stop")
    (run,) = runs("long", "interrupted")
    assert "stopped on request" in run.message
    assert task("long").status == "paused" and task("long").next_run is None
    assert env.cli("stop", "long").returncode == 1  # nothing running now
    resumed = env.cli("resume", "long", check=True)
    assert "resumed; next run" in resumed.stdout
    assert task("long").next_run > datetime.now(UTC) - timedelta(seconds=1)
    status = env.cli_json("status")
    assert status["running"] is True and status["tasks"][0]["id"] == "long"


def test_sighup_reloads_and_a_broken_config_keeps_the_last_good_one(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("a.sh", "true\n")
    env.write_tasks({"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"})
    daemon = start_daemon()
    env.write_tasks(
        {"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"},
        {"task_id": "b", "script_path": "a.sh", "schedule": "in 1 seconds"},
    )
    daemon.signal(signal.SIGHUP)
    env.db()
    wait_until(lambda: runs("b", "success"), what="the added task to run")
    env.home.tasks_json.write_text('{"tasks": [ {"task_id": "a", } ]}')
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "keeping the last good config" in daemon.output(), what="the reload error")
    assert f"{env.home.tasks_json}:1:30: invalid JSON" in daemon.output()
    assert daemon.process.poll() is None
    assert env.cli_json("status")["task_count"] == 2


def test_reload_command_validates_first_then_signals_the_daemon(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("a.sh", "true\n")
    env.write_tasks({"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"})
    daemon = start_daemon()
    env.write_tasks({"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00", "bogus": 1})
    refused = env.cli("reload")
    assert refused.returncode == 3 and "unknown field 'bogus'" in refused.stderr
    env.write_tasks(
        {"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"},
        {"task_id": "b", "script_path": "a.sh", "schedule": "daily at 04:00"},
    )
    # The daemon's own answer, once it reloaded: no need to wait for its log.
    assert env.cli("reload", check=True).stdout == "reloaded: tasks.json (added b)\n"
    assert "config reloaded: 2 tasks (added b; changed none; removed none)" in daemon.output()
    assert [t["id"] for t in env.cli_json("status")["tasks"]] == ["a", "b"]


def test_the_daemons_first_line_names_its_home_and_whether_it_made_it(tmp_path: Path) -> None:
    fresh = Env(Home(tmp_path / "fresh"))  # an empty folder: the first start lays it out
    fresh.home.root.mkdir()  # (DaemonProcess keeps the daemon's output there)
    for made_now in (" (made now, with the bundled example tasks)", ""):
        daemon = DaemonProcess(fresh)
        try:
            first_line = daemon.output().splitlines()[0]
            assert first_line.endswith(f"moltbot home {fresh.home.root}{made_now}"), daemon.output()
        finally:
            daemon.stop()


def test_the_daemon_refuses_a_broken_config_and_a_second_instance(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.write_tasks({"task_id": "a", "script_path": "missing.sh", "schedule": "every 1h"})
    broken = env.cli("daemon")
    assert broken.returncode == 3
    assert f"{env.home.tasks_json}:" in broken.stderr and "script not found" in broken.stderr
    env.script("missing.sh", "true\n")
    env.home.settings_toml.write_text("[daemon]\nworkers = 'many'\n")
    bad_settings = env.cli("daemon")
    assert bad_settings.returncode == 3
    assert f"{env.home.settings_toml}:2: daemon.workers: expected int, got 'many'" in bad_settings.stderr
    env.home.settings_toml.unlink()
    daemon = start_daemon()
    second = env.cli("daemon")
    assert second.returncode == 1
    assert f"another moltbot daemon (pid {daemon.process.pid}) is already running" in second.stderr


def test_status_json_keeps_the_original_shape(env: Env) -> None:
    env.script("a.sh", "true\n")
    env.write_tasks({"task_id": "a", "name": "A", "script_path": "a.sh", "interval_minutes": 15})
    status = env.cli_json("status")
    assert {"running", "current_task", "task_count", "tasks"} <= set(status)
    assert status["running"] is False and status["task_count"] == 1
    (entry,) = status["tasks"]
    assert {"id", "name", "status", "last_run", "next_run", "run_count", "error_count"} <= set(entry)
    assert (entry["id"], entry["name"], entry["status"]) == ("a", "A", "idle")
    upcoming = env.cli_json("next", "a", "-n", "3")
    times = [datetime.fromisoformat(t) for t in upcoming]
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(minutes=15)] * 2
    assert json.loads(env.cli("tasks", "--json", check=True).stdout)[0]["schedule"] == "every 15m"


def test_run_all_runs_enabled_unpaused_tasks_in_priority_order(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    order = env.home.root / "order"
    env.script("note.sh", f'echo "$MOLTBOT_TASK_ID" >> {order}\n[ "$MOLTBOT_TASK_ID" != bad ]\n')
    env.write_tasks(
        {"task_id": "low", "script_path": "note.sh", "schedule": "daily at 03:00", "priority": 9},
        {"task_id": "bad", "script_path": "note.sh", "schedule": "daily at 03:00", "priority": 5},
        {"task_id": "high", "script_path": "note.sh", "schedule": "daily at 03:00", "priority": 1},
        {"task_id": "off", "script_path": "note.sh", "schedule": "daily at 03:00", "enabled": False},
        {"task_id": "held", "script_path": "note.sh", "schedule": "daily at 03:00"},
    )
    env.cli("pause", "held", check=True)
    for with_daemon in (False, True):
        order.unlink(missing_ok=True)
        daemon = start_daemon() if with_daemon else None
        result = env.cli("run-all", "--json")
        assert result.returncode == 1  # `bad` failed
        assert [(r["task_id"], r["success"]) for r in json.loads(result.stdout)] == [
            ("high", True), ("bad", False), ("low", True)
        ]  # fmt: skip
        assert order.read_text().split() == ["high", "bad", "low"]
        if daemon:
            daemon.stop()


def test_run_without_a_daemon_runs_in_the_foreground(env: Env) -> None:
    env.script("fail.sh", "echo partial\nexit 2\n")
    env.write_tasks({"task_id": "fail", "script_path": "fail.sh", "schedule": "every 1h"})
    result = env.cli("run", "fail", "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["success"] is False and payload["stdout"] == "partial\n" and payload["exit_code"] == 2
    logs = env.cli_json("logs")
    assert logs[0]["action"] == "failed" and "exit code 2" in logs[0]["message"]
    assert {"timestamp", "task_id", "action", "message"} == set(logs[0])
