"""Pings to an outside monitor (healthchecks.io's protocol), through the daemon, the CLI and a fake
monitor on 127.0.0.1: a task's ``ping_url`` hears its runs start and end, ``[daemon] heartbeat_url``
hears the loop while it is healthy, and neither ever delays a run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moltbot.pings import PingFailed, ping
from tests.conftest import Env, wait_until
from tests.fake_ping import UUID, FakePing

MASKED_TAIL = "/…" + UUID[-4:]


@pytest.fixture
def monitor() -> Iterator[FakePing]:
    fake = FakePing().start()
    yield fake
    fake.stop()


def heartbeat_toml(monitor: FakePing, seconds: float = 0.2) -> str:
    return f'[daemon]\nheartbeat_url = "{monitor.url()}"\nheartbeat_seconds = {seconds}\n'


def test_a_run_pings_start_then_success_with_one_rid(env: Env, monitor: FakePing, start_daemon) -> None:  # type: ignore[no-untyped-def]
    env.script("ok.sh", "echo fine\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "ok.sh", "schedule": "every 1h", "ping_url": monitor.url()}
    )
    daemon = start_daemon()
    assert env.cli("run", "backup").returncode == 0
    wait_until(lambda: len(monitor.paths()) == 2, what="the start and the success ping")
    start, end = monitor.received()
    assert (start.method, start.path, end.path) == ("GET", f"/{UUID}/start", f"/{UUID}")
    assert start.query["rid"] == end.query["rid"] and len(start.query["rid"][0]) == 36
    assert start.headers["host"] == f"127.0.0.1:{monitor.port}"
    assert daemon.stop() == 0
    assert UUID not in daemon.output()


def test_a_failure_pings_its_exit_code_and_a_timeout_pings_fail(
    env: Env, monitor: FakePing, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    env.script("three.sh", "exit 3\n")
    env.script("slow.sh", "sleep 30\n")
    env.write_tasks(
        {"task_id": "broken", "script_path": "three.sh", "schedule": "every 1h", "ping_url": monitor.url()},
        {
            "task_id": "slow",
            "script_path": "slow.sh",
            "schedule": "every 1h",
            "timeout_seconds": 0.3,
            "ping_url": monitor.url("slow-check"),
        },
    )
    start_daemon()
    assert env.cli("run", "broken").returncode == 1
    assert env.cli("run", "slow").returncode == 1
    wait_until(lambda: len(monitor.paths()) == 4, what="four pings")
    assert monitor.paths() == [f"/{UUID}/start", f"/{UUID}/3", "/slow-check/start", "/slow-check/fail"]


def test_a_run_with_retries_pings_start_once_and_its_final_end(env: Env, monitor: FakePing) -> None:
    env.script(
        "flaky.sh", f"test -e {env.home.root}/second && exit 0; touch {env.home.root}/second; exit 1\n"
    )
    env.write_tasks(
        {
            "task_id": "flaky",
            "script_path": "flaky.sh",
            "schedule": "every 1h",
            "retries": 2,
            "retry_backoff_seconds": 0,
            "ping_url": monitor.url(),
        }
    )
    assert env.cli("run", "flaky").returncode == 0  # no daemon: in the foreground, pings sent before it exits
    assert monitor.paths() == [f"/{UUID}/start", f"/{UUID}"]


def test_a_dead_or_silent_monitor_never_delays_a_run(env: Env, monitor: FakePing, start_daemon) -> None:  # type: ignore[no-untyped-def]
    ticks = env.home.root / "ticks"
    env.script("tick.sh", f"echo $MOLTBOT_RUN_ID >> {ticks}\n")
    env.write_tasks(
        {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s", "ping_url": monitor.url()}
    )
    monitor.mode = "silent"  # answers nothing, ever: each ping waits out its deadline (1 s under test)
    daemon = start_daemon()
    wait_until(lambda: ticks.exists() and len(ticks.read_text().split()) >= 3, what="three runs")
    runs = env.cli_json("logs", "tick", "-n", "50")
    assert all("succeeded" in event["message"] for event in runs if event["action"] == "finished")
    monitor.stop()  # refused: retried, then given up, logged with the URL masked
    wait_until(lambda: "failed: no connection" in daemon.output(), what="the failure logged")
    seen = len(ticks.read_text().split())
    wait_until(lambda: len(ticks.read_text().split()) >= seen + 2, what="runs go on")
    pings = env.cli_json("status")["pings"]
    assert pings["tick"]["state"] == "failed" and pings["tick"]["url"].endswith(MASKED_TAIL)
    assert daemon.stop() == 0
    assert UUID not in daemon.output() and "Traceback" not in daemon.output()


def test_the_heartbeat_beats_while_the_loop_is_healthy_and_stops_when_it_is_stuck_or_stopped(
    env: Env, monitor: FakePing, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    env.script("tick.sh", "true\n")  # due every second: a locked database stops the loop's passes
    env.write_tasks(
        {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"},
        settings=heartbeat_toml(monitor),
    )
    daemon = start_daemon(MOLTBOT_TEST_DB_BUSY_SECONDS="0.2")
    wait_until(lambda: len(monitor.paths()) >= 3, what="heartbeats")
    assert set(monitor.paths()) == {f"/{UUID}"}
    status = env.cli_json("status")
    assert status["heartbeat"] == {
        "url": f"http://127.0.0.1:{monitor.port}{MASKED_TAIL}",
        "every_seconds": 0.2,
    }
    assert status["pings"]["heartbeat"]["state"] == "ok"
    holder = sqlite3.connect(env.home.db_path, isolation_level=None, timeout=10)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        wait_until(
            lambda: "locked by another process" in daemon.output(), timeout=10, what="the lock noticed"
        )
        stuck = len(monitor.paths())
        time.sleep(1.5)  # the fault's duration: 7 heartbeat intervals
        assert len(monitor.paths()) <= stuck + 1  # one that was on its way, at most
    finally:
        holder.execute("COMMIT")
        holder.close()
    wait_until(lambda: len(monitor.paths()) >= stuck + 3, what="heartbeats again")
    assert daemon.stop() == 0
    stopped, count = time.monotonic(), len(monitor.paths())
    assert all(ping.at < stopped for ping in monitor.received())
    assert env.cli_json("status")["pings"] == {}  # no daemon, no heartbeat
    time.sleep(0.6)  # three intervals of silence, as the monitor would see them
    assert len(monitor.paths()) == count


def test_ping_urls_are_checked_with_file_line_and_field(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks(
        {"task_id": "a", "script_path": "ok.sh", "schedule": "every 1h", "ping_url": "ftp://hc-ping.com/x"},
        {
            "task_id": "b",
            "script_path": "ok.sh",
            "schedule": "every 1h",
            "ping_url": "https://hc-ping.com/a b",
        },
    )
    result = env.cli("check")
    assert result.returncode == 3
    out = result.stdout + result.stderr
    assert "tasks.json:7: tasks[0].ping_url (a): expected an http(s) URL" in out
    assert "tasks.json:13: tasks[1].ping_url (b): must not contain whitespace" in out
    env.home.settings_toml.write_text('[daemon]\nheartbeat_url = "hc-ping.com/x"\nheartbeat_seconds = 0\n')
    result = env.cli("check")
    assert result.returncode == 3
    out = result.stdout + result.stderr
    assert "moltbot.toml:2: daemon.heartbeat_url: expected an http(s) URL" in out
    assert "moltbot.toml:3: daemon.heartbeat_seconds: must be positive" in out


def test_tasks_and_status_show_that_a_task_pings_masked(env: Env, monitor: FakePing) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "ok.sh", "schedule": "every 1h", "ping_url": monitor.url()},
        {"task_id": "quiet", "script_path": "ok.sh", "schedule": "every 1h"},
    )
    shown = f"http://127.0.0.1:{monitor.port}{MASKED_TAIL}"
    listing = {task["task_id"]: task for task in env.cli_json("tasks")}
    assert listing["backup"]["ping_url"] == shown and listing["quiet"]["ping_url"] is None
    text = env.cli("tasks", check=True).stdout
    assert f"pings {shown}" in text and UUID not in text
    status = env.cli_json("status")
    assert {task["id"]: task["ping_url"] for task in status["tasks"]} == {"backup": shown, "quiet": None}
    assert status["heartbeat"] is None


def test_doctor_reports_the_heartbeat_and_failing_task_pings(
    env: Env, monitor: FakePing, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    env.script("tick.sh", "true\n")
    tick = {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"}
    env.write_tasks({**tick, "ping_url": monitor.url()}, settings=heartbeat_toml(monitor))
    daemon = start_daemon()
    wait_until(lambda: len(monitor.paths()) >= 3, what="pings")

    def checks() -> dict[str, dict[str, object]]:
        report = json.loads(env.cli("doctor", "--json").stdout)
        return {check["name"]: check for check in report["checks"]}

    heartbeat = checks()["heartbeat"]
    assert heartbeat["ok"] is True and "pings get through" in str(heartbeat["detail"])
    monitor.mode, monitor.status = "status", 404  # the check was deleted at the monitor
    wait_until(lambda: env.cli_json("status")["pings"]["heartbeat"]["state"] == "failed", what="failing")
    wait_until(
        lambda: env.cli_json("status")["pings"].get("tick", {}).get("state") == "failed",
        what="task pings failing",
    )
    found = checks()
    assert found["heartbeat"]["ok"] is False and "HTTP 404" in str(found["heartbeat"]["detail"])
    assert "heartbeat_url" in str(found["heartbeat"]["fix"])
    assert found["task pings"]["ok"] is False and "tick" in str(found["task pings"]["detail"])
    status = env.cli("status", check=True).stdout
    assert "heartbeat" in status and "failed since" in status and UUID not in status
    assert daemon.stop() == 0


def test_a_silent_task_monitor_never_holds_up_the_heartbeat(
    env: Env, monitor: FakePing, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    silent = FakePing().start()
    silent.mode = "silent"  # each task ping waits out its deadline (1 s under test), tried three times
    try:
        env.script("tick.sh", "true\n")
        env.write_tasks(
            {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s", "ping_url": silent.url()},
            settings=heartbeat_toml(monitor),
        )
        daemon = start_daemon()
        wait_until(lambda: len(silent.paths()) >= 2, what="the task's pings waiting on the silent monitor")
        begun = len(monitor.paths())
        time.sleep(2.0)  # the fault's duration: ten heartbeat intervals, two runs
        assert len(monitor.paths()) >= begun + 5, "heartbeats queued behind the task's pings"
        assert daemon.stop() == 0
    finally:
        silent.stop()


# A ping's deadline covers the name lookup too: run in a mount namespace whose resolv.conf names
# a DNS server on 127.0.0.1 that never answers (and a resolver that would wait 20 s for it).
SILENT_DNS = "127.0.0.77"
LOOKUP = """
import sys, time
from moltbot.pings import PingFailed, ping
began = time.monotonic()
try:
    ping(sys.argv[1], 1.0)
except PingFailed as failed:
    print(failed)
print(round(time.monotonic() - began, 2))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_a_ping_deadline_covers_a_name_lookup_that_never_ends(tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((SILENT_DNS, 53))  # receives the queries, answers none
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {SILENT_DNS}\noptions timeout:20 attempts:1\n")
    inside = f'mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -c "$0" "$1"'
    try:
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", inside, LOOKUP, "http://monitor.example.com/check"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        silent.close()
    failure, seconds = done.stdout.strip().splitlines()
    assert "no connection" in failure and "monitor.example.com" in failure
    assert float(seconds) < 2.0, f"the lookup took {seconds} s past a 1 s deadline"


def test_a_ping_deadline_covers_a_tls_handshake_that_never_ends(monitor: FakePing) -> None:
    monitor.mode = "silent"  # accepts the connection, never says a word of TLS
    began = time.monotonic()
    with pytest.raises(PingFailed, match="no answer"):
        ping(monitor.url().replace("http://", "https://"), 0.5)
    assert time.monotonic() - began < 1.0
