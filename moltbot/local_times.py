"""Times for people: every front (CLI, chat) shows an instant through here, in the zone it is given.

That zone is ``[daemon] timezone`` (the host's when unset: ``Core.local_zone``),
so ``status``, ``logs`` and the chat replies agree with ``next`` and ``doctor``
whatever ``TZ`` the process has. JSON output is for machines and stays UTC
ISO-8601 with its offset.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from moltbot.durations import span

__all__ = ["clock_time", "done", "relative", "stamped", "wall_clock", "with_weekday"]


def wall_clock(instant: datetime, zone: ZoneInfo, precision: str = "seconds") -> str:
    """``2026-11-26 14:03:00`` (``precision="minutes"``: ``2026-11-26 14:03``), for a column whose
    zone is said once."""
    # isoformat, not strftime: three times faster, and status lists every task.
    text = instant.astimezone(zone).isoformat(" ", precision)
    return text[:16] if precision == "minutes" else text[:19]


def stamped(instant: datetime, zone: ZoneInfo, precision: str = "seconds") -> str:
    """``2026-11-26 14:03:00 CET``: the wall clock and the zone's name for it (``+0545`` where the
    zone has no abbreviation)."""
    return f"{wall_clock(instant, zone, precision)} {instant.astimezone(zone).tzname()}"


def with_weekday(instant: datetime, zone: ZoneInfo) -> str:
    """``Thu 26 Nov 14:03:00 CET``: upcoming times on a phone, where the weekday says most."""
    return instant.astimezone(zone).strftime("%a %d %b %H:%M:%S %Z")


def done(ran_at: datetime, zone: ZoneInfo) -> str:
    """What a one-shot that has run shows instead of a next run: ``done (ran 2026-11-26 14:03 CET)``."""
    return f"done (ran {stamped(ran_at, zone, 'minutes')})"


def relative(moment: datetime, now: datetime) -> str:
    """``in 5 h 50 min``, ``3 min ago``, ``now`` (within a second): beside or instead of a clock time,
    where how far away it is matters more than when."""
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {span(seconds)}" if seconds > 0 else f"{span(seconds)} ago"


def clock_time(instant: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``14:03`` today, ``Mon 14:03`` within a week, ``2026-11-16 14:03`` before: a log line's time
    on a phone, as short as it can be without being ambiguous."""
    local, today = instant.astimezone(zone), now.astimezone(zone)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if abs((today.date() - local.date()).days) < 7:
        return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")
