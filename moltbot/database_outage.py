"""The database held by another process beyond SQLite's busy timeout, as the daemon's loop lives it.

Such a lock is transient (a backup tool, a stray ``sqlite3`` shell, a CLI on
a slow disk): the loop backs off (``retries.DATABASE_WAIT``) and tries the
same pass again, so nothing it promised is lost, only late. It is logged once
when it starts and once when it ends, never per attempt; one that lasted
longer than ``retries.DATABASE_ALERT_AFTER_SECONDS`` is told to the admins
once, when the database takes writes again (the alert is written to the
database like every message, so it cannot be queued any earlier).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from moltbot import retries
from moltbot.clock import Clock

__all__ = ["DatabaseOutage"]

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


class DatabaseOutage:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.since: datetime | None = None
        self._failures = 0

    def failed(self, error: BaseException) -> float:
        """A pass found the database locked: how long to wait before the next one."""
        if self.since is None:
            self.since = self.clock.now()
            log.warning(
                "the database is locked by another process (%s); retrying, nothing is lost: "
                "runs start late until it is free",
                error,
            )
        self._failures += 1
        return retries.delay(retries.DATABASE_WAIT, self._failures)

    def over(self, alert: Callable[[str], None]) -> None:
        """A pass went through: an outage in progress is over."""
        if self.since is None:
            return
        lasted = (self.clock.now() - self.since).total_seconds()
        self.since, self._failures = None, 0
        log.warning("the database is available again after %s", _duration(lasted))
        if lasted >= retries.DATABASE_ALERT_AFTER_SECONDS:
            alert(
                f"the database was locked by another process for {_duration(lasted)}; "
                "runs due meanwhile started late, none was lost"
            )

    def summary(self) -> str | None:
        """For the sd_notify STATUS= line."""
        if self.since is None:
            return None
        return f"database locked since {self.since:%H:%M:%S} UTC"
