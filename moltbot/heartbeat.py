"""The daemon loop's signs of life: WATCHDOG=1 to systemd, and the heartbeat to an outside monitor.

Both are given by the scheduling loop itself, never by a thread of their own, so both stop
when the loop hangs. systemd's watchdog is petted at the start of each pass (a database
locked by another process is waited out, not a hang: systemd must not restart the daemon for
it). The heartbeat (``[daemon] heartbeat_url``, every ``heartbeat_seconds``) goes out only
after a pass that went through: while the loop is stuck, or cannot do its work (the database
locked), or the daemon is stopped, it stops, and the monitor alerts (``pings.py`` sends it).
"""

from __future__ import annotations

import time

from moltbot.config.settings import Settings
from moltbot.pings import Pings
from moltbot.records import HEARTBEAT
from moltbot.systemd import Notifier

__all__ = ["Liveness"]


class Liveness:
    def __init__(self, notifier: Notifier, pings: Pings, settings: Settings) -> None:
        self.notifier = notifier
        self.pings = pings
        self.url = settings.heartbeat_url
        self.every = settings.heartbeat_seconds
        self._watchdog_at = 0.0  # monotonic: the next WATCHDOG=1 is due then
        self._heartbeat_at = 0.0  # and the next heartbeat

    def pet_watchdog(self, summary: str) -> None:
        """WATCHDOG=1 from the loop itself: if the loop hangs, systemd restarts the daemon."""
        interval = self.notifier.watchdog_interval
        if interval is None or time.monotonic() < self._watchdog_at:
            return
        self.notifier.watchdog(summary)
        self._watchdog_at = time.monotonic() + interval

    def beat(self) -> None:
        """A pass went through: the heartbeat, when it is due."""
        if not self.url or time.monotonic() < self._heartbeat_at:
            return
        self.pings.send(HEARTBEAT, self.url)
        self._heartbeat_at = time.monotonic() + self.every

    def seconds_to_next(self) -> float | None:
        """Until the loop has a sign of life to give (None: it has none to give)."""
        due = [self._heartbeat_at] if self.url else []
        if self.notifier.watchdog_interval is not None:
            due.append(self._watchdog_at)
        return max(0.0, min(due) - time.monotonic()) if due else None
