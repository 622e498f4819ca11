"""The daemon loop in-process with an injected clock, the store's schema, the home layout."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.config.home import Home
from moltbot.core import Core
from moltbot.daemon import CLAIM_AHEAD, Daemon
from moltbot.records import Watcher
from tests.conftest import Env

MORNING = datetime(2026, 11, 23, 8, 59, 30, tzinfo=UTC)


def make_daemon(env: Env, clock: FakeClock) -> Daemon:
    core = Core(env.home, clock)
    core.open()
    specs = core.load_specs()
    core.sync(specs)
    return Daemon(core, specs)


def test_the_loop_sleeps_exactly_until_the_next_due_instant(env: Env) -> None:
    env.script("job.sh", "echo ran\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 09:00", "timezone": "UTC"}
    )
    clock = FakeClock(MORNING)
    daemon = make_daemon(env, clock)
    try:
        # No polling: one wake-up, just before 09:00 to record the run ahead.
        assert daemon.step() == pytest.approx(30.0 - CLAIM_AHEAD.total_seconds())
        clock.advance(seconds=30.25)
        daemon.step()
        while daemon.executor.busy():  # the loop's own turns, driven here
            daemon.wait(5)
            daemon.step()
        assert store.get_task("job").current_run_id is None
        (run,) = store.recent_runs("job", 5)
        assert run.status == "success" and run.scheduled_for == MORNING + timedelta(seconds=30)
        assert run.started_at == MORNING + timedelta(seconds=30.25)  # the injected clock, not the wall
        assert daemon.step() == pytest.approx(
            timedelta(days=1).total_seconds() - 0.25 - CLAIM_AHEAD.total_seconds()
        )
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_a_run_claimed_ahead_is_recorded_first_and_started_at_its_instant(env: Env) -> None:
    marker = env.home.root / "started"
    env.script("job.sh", f"touch {marker}\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 09:00", "timezone": "UTC"}
    )
    clock = FakeClock(MORNING)
    daemon = make_daemon(env, clock)
    nine = MORNING + timedelta(seconds=30)
    try:
        clock.advance(seconds=30 - CLAIM_AHEAD.total_seconds() / 2)
        assert daemon.step() == pytest.approx(CLAIM_AHEAD.total_seconds() / 2)
        (run,) = store.recent_runs("job", 5)
        assert (run.status, run.started_at) == ("running", nine)  # written down before it happens
        assert daemon.executor.busy() == 0 and not marker.exists()
        assert store.get_task("job").next_run == nine + timedelta(days=1)
        clock.advance(seconds=CLAIM_AHEAD.total_seconds() / 2)
        daemon.step()
        assert daemon.executor.busy() == 1  # spawned at 09:00 exactly
        while daemon.executor.busy():
            daemon.wait(5)
            daemon.step()
        (run,) = store.recent_runs("job", 5)
        assert run.status == "success" and run.started_at == nine and marker.exists()
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_nothing_scheduled_means_sleeping_until_woken(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "every 1h", "enabled": False})
    daemon = make_daemon(env, FakeClock(MORNING))
    daemon.housekeeping.clear()  # only the task table decides here
    try:
        assert daemon.step() is None
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_housekeeping_prunes_old_runs_and_their_logs(env: Env) -> None:
    env.write_tasks(settings="[daemon]\nlog_retention_days = 7\n")
    clock = FakeClock(MORNING)
    daemon = make_daemon(env, clock)
    try:
        old_log = env.home.logs_dir / "x" / "1.log"
        old_log.parent.mkdir()
        old_log.write_text("old")

        def add_run(status: str, at: datetime, log: str | None = None) -> None:
            store.connection().execute(
                "INSERT INTO run (task_id, status, trigger, attempt, finished_at, log_path, stop_requested) "
                "VALUES ('x', ?, 'schedule', 1, ?, ?, 0)",
                (status, store.to_db(at), log),
            )

        with store.write_transaction():
            for extra in range(2500):  # more than one pruning batch
                add_run("failed", MORNING - timedelta(days=20, seconds=extra))
            for age_days, log in ((10, str(old_log)), (1, None)):
                at = MORNING - timedelta(days=age_days)
                add_run("success", at, log)
                store.add_event(at, "x", "completed", "done")
        old, recent = MORNING - timedelta(days=10), MORNING - timedelta(days=1)
        to_owner = Watcher("signal", "+4915100000001")
        for at, status in ((old, "sent"), (old, "failed"), (recent, "sent")):
            row_id = store.enqueue_message(to_owner, f"{status} {at}", at)
            if status == "sent":
                store.mark_sent(row_id, at)
            else:
                store.mark_failed(row_id, "refused")
        with store.write_transaction():
            store.accept_inbound("signal", "uuid", 1, "+4915100000001", "status", old)
        daemon.prune()
        outbox = store.connection().execute("SELECT status, created_at FROM outbox ORDER BY id").fetchall()
        kept = [(status, store.from_db(created_at)) for status, created_at in outbox]
        assert kept == [("failed", old), ("sent", recent)]  # what was given up stays listed
        assert store.connection().execute("SELECT count(*) FROM inbox").fetchone() == (0,)
        remaining = store.connection().execute("SELECT finished_at FROM run").fetchall()
        assert [store.from_db(finished_at) for (finished_at,) in remaining] == [MORNING - timedelta(days=1)]
        assert not old_log.exists()
        assert [e.timestamp for e in store.recent_events("x", 10)] == [MORNING - timedelta(days=1)]
    finally:
        daemon.stopping.set()
        daemon.shutdown()


def test_schema_version_is_recorded_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store.open_db(path)
    assert store.schema_version() == store.SCHEMA_VERSION
    assert store.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.open_db(path)  # idempotent
    store.connection().execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="knows up to"):
        store.open_db(path)


def test_an_older_schema_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store.open_db(path)
    conn = store.connection()
    conn.execute("DROP INDEX task_priority_next_run")  # what schema 1 lacked
    for table in ("inbox", "outbox", "run_watch"):  # what schemas 1 and 2 lacked
        conn.execute(f"DROP TABLE {table}")
    conn.execute("ALTER TABLE run DROP COLUMN recap")  # what schemas 1 to 3 lacked
    conn.execute("DROP INDEX run_occurrence_attempt")  # what schemas 1 to 4 lacked
    conn.execute("DROP TABLE question")  # what schemas 1 to 5 lacked
    conn.execute("DROP TABLE incident")  # what schemas 1 to 6 lacked
    conn.execute("DROP TABLE task_chain")  # what schemas 1 to 7 lacked (chains)
    conn.execute("DROP TABLE person")  # what schemas 1 to 8 lacked (pairing)
    conn.execute("DROP TABLE pairing")
    conn.execute("DROP TABLE daemon_session")  # what schemas 1 to 9 lacked (sessions, #15)
    for table, column in (("run", "node"), ("run", "session_id")):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 1")
    store.open_db(tmp_path / "other.db")  # a fresh connection to the old file next
    store.open_db(path)
    assert store.schema_version() == store.SCHEMA_VERSION == 10
    tables = {
        row[0] for row in store.connection().execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {
        "inbox",
        "outbox",
        "run_watch",
        "question",
        "incident",
        "task_chain",
        "person",
        "pairing",
        "daemon_session",
    } <= tables
    indexes = {row[1] for row in store.connection().execute("PRAGMA index_list(task)")}
    assert "task_priority_next_run" in indexes
    assert {"recap", "node", "session_id"} <= {
        row[1] for row in store.connection().execute("PRAGMA table_info(run)")
    }
    assert "run_occurrence_attempt" in {
        row[1] for row in store.connection().execute("PRAGMA index_list(run)")
    }
    query = "SELECT task_id FROM task WHERE priority = 5 AND next_run <= 'x' ORDER BY next_run"
    plan = store.connection().execute("EXPLAIN QUERY PLAN " + query).fetchall()
    assert "task_priority_next_run" in str(plan) and "TEMP B-TREE" not in str(plan)


def test_naive_datetimes_never_reach_the_store(tmp_path: Path) -> None:
    store.open_db(tmp_path / "n.db")
    with pytest.raises(ValueError, match="naive"):
        store.add_event(datetime(2026, 1, 1), "x", "a", "m")


def test_a_fresh_home_gets_the_bundled_examples_and_they_pass_check(tmp_path: Path) -> None:
    home = Home(tmp_path / "fresh")
    home.ensure()
    tasks = json.loads(home.tasks_json.read_text())["tasks"]
    assert {t["task_id"] for t in tasks} == {"disk-usage", "backup", "checkpoint-demo"}
    for task in tasks:
        assert os.access(home.tasks_dir / task["script_path"], os.X_OK)
    env = Env(home)
    assert env.cli("check").returncode == 0
    # Edits survive: a second start does not overwrite the user's tasks.json.
    home.tasks_json.write_text('{"tasks": []}')
    home.ensure()
    assert json.loads(home.tasks_json.read_text()) == {"tasks": []}


def test_the_bundled_checkpoint_demo_runs_and_resumes(tmp_path: Path) -> None:
    home = Home(tmp_path / "demo")
    home.ensure()
    document = json.loads(home.tasks_json.read_text())
    for task in document["tasks"]:
        if task["task_id"] == "checkpoint-demo":
            task["env"] = {"DEMO_ITEMS": "4", "DEMO_DELAY": "0"}
    home.tasks_json.write_text(json.dumps(document))
    env = Env(home)
    env.cli("checkpoint", "save", '{"next_item": 2}', "--task", "checkpoint-demo", check=True)
    assert json.loads(env.cli("checkpoint", "load", "--task", "checkpoint-demo", check=True).stdout) == {
        "next_item": 2
    }
    result = env.cli_json("run", "checkpoint-demo")
    assert result["success"], result
    assert result["stdout"].startswith("resuming from checkpoint at item 2\n")
    assert result["stdout"].endswith("done: 2 items this run\n")
    cleared = env.cli("checkpoint", "load", "--task", "checkpoint-demo")
    assert cleared.returncode == 1 and "no checkpoint saved for checkpoint-demo" in cleared.stderr


def test_a_daemon_started_inside_the_repeated_hour_runs_that_days_occurrence_once(env: Env) -> None:
    """Berlin falls back on 2027-10-31: 02:10 CET is the second pass of the hour 02:00-03:00."""
    env.script("job.sh", "echo ran >> ran.txt\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 02:30", "timezone": "Europe/Berlin"}
    )
    clock = FakeClock(datetime(2027, 10, 31, 0, 0, tzinfo=UTC))  # registered then: due 02:30 CEST (00:30Z)
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    clock.set(datetime(2027, 10, 31, 1, 10, tzinfo=UTC))  # the daemon starts at 02:10 CET
    daemon = Daemon(core, core.load_specs())
    try:
        for _ in range(3):  # a few of the loop's turns, driven here
            daemon.step()
            while daemon.executor.busy():
                daemon.wait(5)
                daemon.step()
        executed = [run for run in store.recent_runs("job", 10) if run.started_at is not None]
        assert [run.scheduled_for for run in executed] == [datetime(2027, 10, 31, 0, 30, tzinfo=UTC)]
        assert (env.home.tasks_dir / "ran.txt").read_text() == "ran\n"  # once
        assert store.get_task("job").next_run == datetime(2027, 11, 1, 1, 30, tzinfo=UTC)
    finally:
        daemon.stopping.set()
        daemon.shutdown()


PROBING = """
import sys, time
from pathlib import Path
from moltbot.core.lock import daemon_pid
path, end = Path(sys.argv[1]), time.monotonic() + float(sys.argv[2])
print("probing", flush=True)
while time.monotonic() < end:
    daemon_pid(path)
"""


def test_a_cli_looking_for_the_daemon_never_keeps_it_from_starting(tmp_path: Path) -> None:
    # CI caught it: `moltbot status` probes the lock (a shared flock, for microseconds); a daemon
    # starting in that instant found it taken and exited "another daemon (pid ?) is running".
    import subprocess
    import sys

    from moltbot.core.lock import DaemonLock

    path = tmp_path / "daemon.lock"
    path.touch()
    probes = [
        subprocess.Popen([sys.executable, "-c", PROBING, str(path), "4"], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for probe in probes:
            assert probe.stdout is not None and probe.stdout.readline() == "probing\n"
        for _ in range(2000):
            lock = DaemonLock(path)
            lock.acquire()  # raised AlreadyRunning now and then
            lock.release()
    finally:
        for probe in probes:
            probe.kill()
            probe.communicate()
