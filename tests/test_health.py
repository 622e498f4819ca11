"""The health board: channels and threads as they report, recorded on change, the admins told once.

The board's passes are driven here with an injected clock (as test_core drives
the daemon's loop); a real SQLite store records what it writes and queues.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.core import Core
from moltbot.core.health import HealthBoard
from moltbot.records import HEALTH, HealthReport
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_discord import TOKEN, FakeDiscord
from tests.fake_gateway import BOT, FakeGateway
from tests.test_systemd import receive

START = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 14:00 in Berlin


@pytest.fixture
def board(env: Env) -> Iterator[tuple[HealthBoard, FakeClock, Core]]:
    clock = FakeClock(START)
    core = Core(env.home, clock)
    core.open()
    board = core.health
    board.down_alert_after, board.zone = timedelta(minutes=5), ZoneInfo("Europe/Berlin")
    yield board, clock, core


def alerts(core: Core) -> list[str]:
    return [message.text or "" for message in core.chat.pending()]


def test_a_channel_down_too_long_alerts_once_per_outage_and_says_when_it_is_back(
    board: tuple[HealthBoard, FakeClock, Core],
) -> None:
    health, clock, core = board
    health.channel_connecting("signal")  # at start: counts as down from now
    assert health.tell_admins(health.report()) == 300.0  # the board's thread sleeps until then
    clock.advance(minutes=2)
    health.channel_lost("signal", "connection refused")
    assert health.tell_admins(health.report()) == 180.0 and alerts(core) == []
    for attempt in range(20):  # attempts to reconnect, each failing, some for other reasons
        clock.advance(seconds=30)
        health.channel_lost("signal", "connection refused" if attempt % 3 else "timed out")
        health.tell_admins(health.report())
    assert alerts(core) == ["⚠ signal is reconnecting since 14:00 (connection refused); moltbot keeps trying"]
    health.channel_connected("signal")
    assert health.tell_admins(health.report()) is None
    assert alerts(core)[1:] == ["✅ signal is back (down since 14:00)"]
    clock.advance(minutes=1)
    health.channel_lost("signal", "connection reset")  # a short outage: nobody is told
    clock.advance(minutes=4)
    health.channel_connected("signal")
    health.tell_admins(health.report())
    assert len(alerts(core)) == 2


def test_a_channel_that_gave_up_says_it_waits_for_a_fix(board: tuple[HealthBoard, FakeClock, Core]) -> None:
    health, clock, core = board
    health.channel_connected("discord")
    health.channel_down("discord", "Discord answered 401: 401: Unauthorized")
    clock.advance(minutes=5)
    health.tell_admins(health.report())
    assert alerts(core) == [
        "⚠ discord is down since 14:00 (Discord answered 401: 401: Unauthorized); "
        "it waits for a fix and a restart of moltbot"
    ]


def test_a_change_is_recorded_once_however_often_it_is_reported(
    board: tuple[HealthBoard, FakeClock, Core],
) -> None:
    health, clock, _ = board
    told: list[str] = []
    health.on_change(lambda: told.append(health.summary()))
    health.channel_connecting("signal")
    assert health.record()
    for _ in range(5):
        clock.advance(seconds=1)
        health.channel_lost("signal", "connection refused")
    assert health.record() and not health.record()  # one write for all five reports
    for _ in range(5):
        health.thread_running("signal-receive", 0)
    assert health.record() and not health.record()
    assert told == [
        "signal: connecting since 14:00",
        "signal: reconnecting since 14:00 (connection refused)",
        "signal: reconnecting since 14:00 (connection refused)",  # a thread's change: not in the line
    ]
    recorded = HealthReport.from_json(store.get_meta(HEALTH) or "")
    assert recorded == health.report()


def test_a_thread_restarting_shows_since_when_and_why_then_running_with_its_last_error(
    board: tuple[HealthBoard, FakeClock, Core],
) -> None:
    health, clock, _ = board
    health.thread_running("signal-commands", 0)
    clock.advance(minutes=3)
    health.thread_failed("signal-commands", "KeyError: 'envelope'", 1)
    (thread,) = health.report().threads
    assert (thread.state, thread.since, thread.error, thread.failures) == (
        "restarting",
        clock.now(),
        "KeyError: 'envelope'",
        1,
    )
    assert health.summary() == "signal-commands restarting since 14:03 (KeyError: 'envelope')"
    clock.advance(seconds=1)
    health.thread_running("signal-commands", 1)
    (thread,) = health.report().threads
    assert (thread.state, thread.since, thread.error) == ("running", clock.now(), "KeyError: 'envelope'")
    assert health.summary() == ""


# --- the real daemon: what status, doctor, sd_notify and the admins see ---------------------------

SIGNAL_ADMIN = "+4915100000001"
DISCORD_OWNER = "900000000000000002"
TASKS_CHANNEL = "700000000000000001"


def signal_settings(gateway: FakeGateway, alert_after: float = 0.5) -> str:
    return (
        f"[daemon]\nchannel_down_alert_seconds = {alert_after}\n\n"
        f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["{SIGNAL_ADMIN}"]\n'
        "timeout_seconds = 2\n"
    )


def channel(env: Env, name: str) -> dict[str, Any]:
    channels: dict[str, dict[str, Any]] = env.cli_json("status")["channels"]
    return channels.get(name, {})


def test_an_outage_shows_in_status_doctor_and_sd_notify_and_heals(
    env: Env, start_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    gateway = FakeGateway().start()
    gateway.stop()  # down from the start
    env.write_tasks(settings=signal_settings(gateway, alert_after=3600))
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        start_daemon(NOTIFY_SOCKET=str(path))
        down = wait_until(
            lambda: (found := channel(env, "signal")).get("state") == "reconnecting" and found,
            what="signal reconnecting in status --json",
        )
        assert "gateway unreachable" in down["error"]
        status = env.cli("status", check=True).stdout
        assert f"channels:\n  signal  reconnecting since {down['since'][:10]}" in status
        assert "(gateway unreachable at" in status and "threads: 6 running" in status
        threads = env.cli_json("status")["threads"]
        assert sorted(threads) == [
            "alerts", "health", "signal-commands", "signal-receive", "signal-send", "wal-checkpoint"
        ]  # fmt: skip
        assert {thread["state"] for thread in threads.values()} == {"running"}
        result = env.cli("doctor", "--json")
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        assert result.returncode == 1 and not checks["signal channel"]["ok"]
        assert "reconnecting since" in checks["signal channel"]["detail"] and checks["daemon"]["ok"]
        assert checks["threads"]["ok"]
        told = receive(sock, lambda got: any("signal: reconnecting since" in m for m in got))
        line = next(m for m in told if "signal: reconnecting since" in m)
        assert re.search(r"STATUS=0 tasks, 0 running; signal: reconnecting since \d\d:\d\d \(gateway", line)
        gateway.start()
        wait_until(lambda: channel(env, "signal").get("state") == "connected", what="signal connected")
        receive(sock, lambda got: any("signal: connected" in m for m in got))
        checks = {check["name"]: check for check in json.loads(env.cli("doctor", "--json").stdout)["checks"]}
        assert checks["signal channel"]["ok"]
    gateway.stop()


def test_a_channel_down_too_long_is_told_once_through_the_other_and_on_itself_once_back(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    gateway = FakeGateway(ping_seconds=1.0).start()
    gateway.stop()
    env.write_tasks(
        settings=signal_settings(gateway) + f'\n[discord]\napi_base = "{discord.api}"\n'
        f'tasks_channel_id = "{TASKS_CHANNEL}"\ndefault_user_id = "{DISCORD_OWNER}"\npoll_seconds = 0.3\n'
    )
    start_daemon(DISCORD_BOT_TOKEN=TOKEN)

    def on_discord() -> list[str]:
        dm = discord.dms.get(DISCORD_OWNER)
        return [message["content"] for message in discord.channels.get(dm, [])] if dm else []

    wait_until(lambda: any("signal is reconnecting since" in t for t in on_discord()), what="the alert")
    assert channel(env, "discord")["state"] == "connected"
    gateway.start()
    wait_until(lambda: any("signal is back" in t for t in gateway.texts_to(SIGNAL_ADMIN)), what="back")
    wait_until(lambda: any("signal is back" in t for t in on_discord()), what="back on Discord")
    on_signal = "\n".join(gateway.texts_to(SIGNAL_ADMIN))
    assert on_signal.count("signal is reconnecting since") == 1 and on_signal.count("signal is back") == 1
    told = "\n".join(on_discord())  # dozens of attempts to reconnect, one alert
    assert told.count("signal is reconnecting since") == 1 and told.count("signal is back") == 1
    gateway.stop()


def test_doctor_fails_a_channel_configured_after_the_daemon_started_and_a_stopped_daemon(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # The newcomer's hour (#14): [signal] added, the gateway answers, and the daemon, which has not
    # reloaded, is still deaf: doctor must say so, and what makes it hear.
    gateway = FakeGateway().start()
    try:
        daemon = start_daemon()
        env.write_tasks(settings=signal_settings(gateway))
        result = env.cli("doctor", "--json")
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        assert checks["signal gateway"]["ok"] and checks["daemon"]["ok"]
        assert result.returncode == 1 and not checks["signal channel"]["ok"], checks.get("signal channel")
        assert checks["signal channel"]["detail"] == "configured, but the running daemon has not started it"
        assert checks["signal channel"]["fix"].startswith("moltbot reload")
        env.cli("reload", check=True)
        wait_until(lambda: channel(env, "signal").get("state") == "connected", what="the reloaded channel")
        daemon.stop()
        result = env.cli("doctor", "--json")
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        assert result.returncode == 1 and not checks["daemon"]["ok"] and checks["daemon"]["required"]
    finally:
        gateway.stop()
