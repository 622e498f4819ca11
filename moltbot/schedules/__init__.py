"""Schedules: a schedule string in, the next fire instant out. No I/O.

``grammar`` reads the strings (and the Discord tool's fields); ``forms`` are
what they become (cron-like wall times, intervals, one-shots), each answering
``next_after``. What a schedule means across DST is in ``forms``' docstring.
"""

from moltbot.schedules.forms import Cron, Every, Never, Once, Schedule, ScheduleError, resolve_wall_time
from moltbot.schedules.grammar import parse_schedule

__all__ = [
    "Cron",
    "Every",
    "Never",
    "Once",
    "Schedule",
    "ScheduleError",
    "parse_schedule",
    "resolve_wall_time",
]
