"""A monitor's answer to a ping is read only as far as its status line, within a deadline: a ping
server that answers an endless body, endless bytes that are no HTTP, or nothing at all neither
hangs the daemon nor bloats it, and its runs go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moltbot.pings import MAX_ANSWER_BYTES, PingFailed, ping
from tests.conftest import Env, wait_until
from tests.fake_ping import UUID, FakePing


@pytest.fixture
def monitor() -> Iterator[FakePing]:
    fake = FakePing().start()
    yield fake
    fake.stop()


def test_an_endless_body_is_not_read(monitor: FakePing) -> None:
    monitor.mode = "endless"
    started = time.monotonic()
    assert ping(monitor.url(), timeout=5) == 200
    assert time.monotonic() - started < 2


def test_endless_bytes_without_a_status_line_are_cut_at_the_cap(monitor: FakePing) -> None:
    monitor.mode = "garbage"
    started = time.monotonic()
    with pytest.raises(PingFailed, match="not an HTTP answer"):
        ping(monitor.url(), timeout=5)
    assert time.monotonic() - started < 2 and MAX_ANSWER_BYTES <= 4096


def test_a_monitor_that_never_answers_is_given_up_at_the_deadline(monitor: FakePing) -> None:
    monitor.mode = "silent"
    started = time.monotonic()
    with pytest.raises(PingFailed, match="no answer") as failed:
        ping(monitor.url(), timeout=0.5)
    assert failed.value.sent and 0.4 < time.monotonic() - started < 2


def test_a_daemon_pinging_an_endless_monitor_stays_small_and_on_time(
    env: Env, monitor: FakePing, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    monitor.mode = "endless"
    ticks = env.home.root / "ticks"
    env.script("tick.sh", f"echo $MOLTBOT_RUN_ID >> {ticks}\n")
    env.write_tasks(
        {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s", "ping_url": monitor.url()},
        settings=f'[daemon]\nheartbeat_url = "{monitor.url()}"\nheartbeat_seconds = 0.1\n',
    )
    daemon = start_daemon()
    wait_until(lambda: len(monitor.paths()) >= 5, what="pings answered endlessly")
    before = _rss_kb(daemon.process.pid)
    wait_until(lambda: ticks.exists() and len(ticks.read_text().split()) >= 3, what="runs on time")
    wait_until(lambda: len(monitor.paths()) >= 40, what="many more pings")
    assert _rss_kb(daemon.process.pid) - before < 20_000  # each answer's endless body left unread
    assert env.cli_json("status")["pings"]["heartbeat"]["state"] == "ok"
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.output() and UUID not in daemon.output()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
