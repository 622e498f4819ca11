"""The health board: channels and threads as they report, recorded on change, the admins told once.

The board's passes are driven here with an injected clock (as test_core drives
the daemon's loop); a real SQLite store records what it writes and queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.core import Core
from moltbot.core.health import HealthBoard
from moltbot.records import HEALTH, HealthReport
from tests.conftest import Env

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
