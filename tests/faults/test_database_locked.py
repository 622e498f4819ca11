"""The database locked by another process for longer than the busy timeout: the daemon backs off
and carries on, logs it once, alerts the admins once when it lasted, and loses nothing."""

from __future__ import annotations

import sqlite3
import time

from tests.conftest import Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, say, signal_toml

LOCKED = "the database is locked by another process"


def test_a_database_locked_beyond_the_busy_timeout_does_not_kill_the_daemon(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    ticks = env.home.root / "ticks"
    env.script("tick.sh", f"echo $MOLTBOT_RUN_ID >> {ticks}\n")
    env.write_tasks({"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"})
    daemon = start_daemon(MOLTBOT_TEST_DB_BUSY_SECONDS="0.2")
    wait_until(lambda: ticks.exists(), what="a first run")
    holder = sqlite3.connect(env.home.db_path, isolation_level=None, timeout=10)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        wait_until(lambda: LOCKED in daemon.output(), timeout=10, what="the daemon to notice the lock")
        time.sleep(1.5)  # the fault's duration: longer than the alert threshold (1 s under test)
        assert daemon.process.poll() is None, daemon.output()
    finally:
        holder.execute("COMMIT")
        holder.close()
    wait_until(lambda: "the database is available again" in daemon.output(), what="the recovery")
    alert = "the database was locked by another process for"
    wait_until(lambda: alert in daemon.output(), what="the alert (logged: no chat channel is configured)")
    seen = len(ticks.read_text().split())
    wait_until(lambda: len(ticks.read_text().split()) > seen + 1, what="runs after the lock")
    assert daemon.stop() == 0
    output = daemon.output()
    assert output.count(LOCKED) == 1 and output.count(alert) == 1, output
    assert "Traceback" not in output
    db = sqlite3.connect(env.home.db_path)
    executed = db.execute(
        "SELECT id, status FROM run WHERE task_id = 'tick' AND status NOT IN ('skipped', 'missed')"
    ).fetchall()
    assert not [row for row in executed if row[1] in ("running", "queued")]
    run_ids = ticks.read_text().split()
    assert sorted(map(int, run_ids)) == sorted(run_id for run_id, _ in executed)  # each run recorded once


def test_a_command_received_while_the_database_is_locked_is_answered_once_after(
    env: Env, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    gateway = FakeGateway(ping_seconds=1.0).start()
    try:
        env.write_tasks(settings=signal_toml(gateway))
        daemon = start_daemon(MOLTBOT_TEST_DB_BUSY_SECONDS="0.2")
        wait_until(gateway.connected, what="the daemon's websocket")
        holder = sqlite3.connect(env.home.db_path, isolation_level=None, timeout=10)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            say(gateway, "status")
            wait_until(lambda: "the received message waits for it" in daemon.output(), what="the wait")
        finally:
            holder.execute("COMMIT")
            holder.close()
        (body,) = gateway.wait_for_sent(1)
        assert body["message"].startswith("moltbot: 0 tasks")
        assert daemon.stop() == 0
        assert len(gateway.texts_to(OWNER)) == 1
        assert "could not be handled" not in daemon.output()
    finally:
        gateway.stop()
