"""The daemon's health board: how each chat channel and background thread is, for all to see.

Channels (their transports report: connected, reconnecting after an error,
down until fixed) and supervised threads (``moltbot/threads.py``: running,
restarting after an error) tell the board from their own threads; that only
changes memory. The board's own thread records each change in the store's
meta table (``moltbot status`` and ``doctor`` are other processes: they read
it through ``Core.health_report``) and tells the listeners (the sd_notify
``STATUS=`` line), so the WAL sees a write per change, never one per pass.
It also tells the admins (``Chat.alert``: every channel that can deliver it,
or this one once it is back) when a channel has been down longer than
``down_alert_after``, once per outage, and that it is back after such an
alert; never once per attempt to reconnect.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from moltbot import store
from moltbot.clock import Clock
from moltbot.core.chat import Chat
from moltbot.records import HEALTH, ChannelHealth, HealthReport, PingHealth, ThreadHealth
from moltbot.redact import redact_urls
from moltbot.threads import Supervised

__all__ = ["HealthBoard"]

log = logging.getLogger(__name__)


class HealthBoard:
    def __init__(self, clock: Clock, chat: Chat) -> None:
        self.clock = clock
        self.chat = chat
        self.down_alert_after = timedelta(minutes=5)
        self.zone: tzinfo = UTC  # of the times in alerts and the status line
        self._lock = threading.Lock()
        self._channels: dict[str, ChannelHealth] = {}
        self._threads: dict[str, ThreadHealth] = {}
        self._pings: dict[str, PingHealth] = {}
        self._told_down: dict[str, ChannelHealth] = {}  # channels the admins heard are down
        self._recorded: HealthReport | None = None
        self._changed = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._thread = Supervised("health", self._one_pass, self)

    # --- lifecycle (the daemon's) -----------------------------------------------------------

    def start(self, down_alert_after: timedelta, zone: tzinfo) -> None:
        self.down_alert_after, self.zone = down_alert_after, zone
        self._thread.start()

    def stop(self) -> None:
        """The thread ends and the record goes: with no daemon, no channel is connected."""
        self._thread.stopping.set()
        self._changed.set()
        self._thread.stop()
        store.set_meta(HEALTH, None)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the board's thread) after each change is recorded."""
        self._listeners.append(listener)

    # --- what channels report (any thread; memory only) -----------------------------------

    def channel_connecting(self, name: str) -> None:
        """A channel starts, not connected yet (counts as down from now, for the alert)."""
        self._set_channel(name, "connecting", None)

    def channel_connected(self, name: str) -> None:
        self._set_channel(name, "connected", None)

    def channel_lost(self, name: str, error: str) -> None:
        """Not connected because of ``error``; the channel keeps trying."""
        self._set_channel(name, "reconnecting", error)

    def channel_down(self, name: str, error: str) -> None:
        """Not connected, and it stops trying until moltbot is fixed and restarted."""
        self._set_channel(name, "down", error)

    def forget_channel(self, name: str) -> None:
        """A channel taken out of moltbot.toml (reload): it and its threads leave the board."""
        with self._lock:
            self._channels.pop(name, None)
            self._told_down.pop(name, None)
            for thread in [thread for thread in self._threads if thread.startswith(f"{name}-")]:
                del self._threads[thread]
        self._changed.set()

    def _set_channel(self, name: str, state: str, error: str | None) -> None:
        error = error and redact_urls(error)  # shown by status, doctor, STATUS= and alerts
        with self._lock:
            old = self._channels.get(name)
            if old is not None and error is None:
                error = old.error  # the last error stays visible once it is connected again
            if old is not None and (old.state, old.error) == (state, error):
                return
            # An outage's start stays its start, whatever the attempts to reconnect say.
            since = old.since if old is not None and not old.up and state != "connected" else None
            self._channels[name] = ChannelHealth(name, state, since or self.clock.now(), error)
        self._changed.set()

    # --- what supervised threads report (threads.ThreadWatch) ----------------------------------

    def thread_running(self, name: str, failures: int) -> None:
        self._set_thread(name, "running", None, failures)

    def thread_failed(self, name: str, error: str, failures: int) -> None:
        self._set_thread(name, "restarting", error, failures)

    def _set_thread(self, name: str, state: str, error: str | None, failures: int) -> None:
        self._record(self._threads, name, state, error, lambda since, error: ThreadHealth(
            name, state, since, error, failures))  # fmt: skip

    # --- how pings fare (pings.PingWatch) ------------------------------------------------------

    def ping_result(self, name: str, url: str, error: str | None) -> None:
        """A ping to ``url`` (masked) got through (``error`` None) or not; recorded when that changes."""
        state = "failed" if error else "ok"
        self._record(self._pings, name, state, error, lambda since, error: PingHealth(
            name, url, state, since, error))  # fmt: skip

    def _record(
        self,
        table: dict[str, Any],
        name: str,
        state: str,
        error: str | None,
        make: Callable[[datetime, str | None], Any],
    ) -> None:
        """A thread's or a ping's report: a good one keeps the last error to show, ``since`` stays
        while the state does, and an unchanged report changes nothing (no wake-up, no write)."""
        error = error and redact_urls(error)
        with self._lock:
            old = table.get(name)
            if old is not None and error is None:
                error = old.error
            since = old.since if old is not None and old.state == state else self.clock.now()
            entry = make(since, error)
            if entry == old:
                return
            table[name] = entry
        self._changed.set()

    # --- what the board says ----------------------------------------------------------------

    def report(self) -> HealthReport:
        with self._lock:
            return HealthReport(
                tuple(sorted(self._channels.values())),
                tuple(sorted(self._threads.values())),
                tuple(sorted(self._pings.values())),
            )

    def summary(self) -> str:
        """One line for sd_notify's STATUS: every channel, and the threads that are restarting."""
        report = self.report()
        parts = [f"{channel.name}: {self._describe(channel)}" for channel in report.channels]
        parts += [
            f"{thread.name} restarting since {self._hhmm(thread.since)} ({thread.error})"
            for thread in report.threads
            if thread.state == "restarting"
        ]
        parts += [
            f"{ping.name} ping failing ({ping.error})" for ping in report.pings if ping.state == "failed"
        ]
        return "; ".join(parts)

    def _describe(self, channel: ChannelHealth) -> str:
        if channel.up:
            return "connected"
        error = f" ({channel.error})" if channel.error else ""
        return f"{channel.state} since {self._hhmm(channel.since)}{error}"

    def _hhmm(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).strftime("%H:%M")

    # --- the board's thread -----------------------------------------------------------------

    def _one_pass(self) -> None:
        self._changed.clear()
        self.record()
        self._changed.wait(self.tell_admins(self.report()))

    def record(self) -> bool:
        """Write the board to the store if it changed since the last time, and tell the listeners."""
        report = self.report()
        if report == self._recorded:
            return False
        store.set_meta(HEALTH, json.dumps(report.as_json()))
        self._recorded = report
        for listener in self._listeners:
            listener()
        return True

    def tell_admins(self, report: HealthReport) -> float | None:
        """Alert what has been down too long, or is back after such an alert; the seconds until
        the next channel down now would be down too long (None: none is down)."""
        now = self.clock.now()
        next_due: float | None = None
        for channel in report.channels:
            told = self._told_down.get(channel.name)
            if channel.up:
                if told is not None:
                    del self._told_down[channel.name]
                    self.chat.alert(f"✅ {channel.name} is back (down since {self._hhmm(told.since)})")
                continue
            if told is not None and told.since == channel.since:
                continue  # this outage was told
            left = (channel.since + self.down_alert_after - now).total_seconds()
            if left <= 0:
                self._told_down[channel.name] = channel
                self.chat.alert(f"⚠ {channel.name} is {self._describe(channel)}{_what_next(channel)}")
                log.warning("%s: %s for longer than %s", channel.name, channel.state, self.down_alert_after)
            else:
                next_due = left if next_due is None else min(next_due, left)
        return next_due


def _what_next(channel: ChannelHealth) -> str:
    if channel.state == "down":
        return "; it waits for a fix and a restart of moltbot"
    return "; moltbot keeps trying"
