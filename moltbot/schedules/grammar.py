"""Schedule grammar: a schedule string (or the Discord tool's fields) in, a schedule form out. No I/O."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from moltbot.schedules.forms import Cron, Every, Once, Schedule, ScheduleError, resolve_wall_time

__all__ = ["parse_schedule"]

_UNITS = {
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "second": timedelta(seconds=1),
    "seconds": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
    "w": timedelta(weeks=1),
    "week": timedelta(weeks=1),
    "weeks": timedelta(weeks=1),
}
_WEEKDAYS = {
    name: index
    for index, names in enumerate(
        [
            ("sun", "sunday"),
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
        ]
    )
    for name in names
}
# cron's @-macros: what an experienced cron user expects the bare Discord
# words to mean when no time or day is given.
_MACROS = {
    "minutely": "* * * * *",
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
}

_EVERY = re.compile(r"every\s+(\d+)\s*([a-z]+)(?:\s+at\s+(\S+))?")
_EVERY_DISCORD = re.compile(r"every_(\d+)_(seconds|minutes|hours|days|weeks)")
_IN = re.compile(r"in[\s_]+(\d+)[\s_]*([a-z]+)")
_AT_TIME = r"at[\s_]+(\d{1,2}:\d{2}(?::\d{2})?)"
_DAILY = re.compile(r"(daily|weekdays|weekends)\s+" + _AT_TIME)
_WEEKLY = re.compile(r"weekly\s+on\s+([a-z]+(?:\s*,\s*[a-z]+)*)\s+" + _AT_TIME)
_MONTHLY = re.compile(r"monthly\s+on\s+(\d{1,2}|last)\s+" + _AT_TIME)
_DAY_AT = re.compile(r"(today|tomorrow)_" + _AT_TIME)


def _clock_time(text: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text.strip())
    if not match:
        raise ScheduleError(f"invalid time {text!r} (expected HH:MM)")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ScheduleError(f"invalid time {text!r} (expected HH:MM, 00:00-23:59)")
    return time(hour, minute, second)


def _cron_at(clock: time, days_of_month: str, weekdays: str, months: str = "*") -> str:
    if clock.second:
        raise ScheduleError("calendar schedules run on whole minutes; drop the seconds")
    return f"{clock.minute} {clock.hour} {days_of_month} {months} {weekdays}"


def _weekday_numbers(text: str) -> str:
    numbers = []
    for name in re.split(r"\s*,\s*", text.strip().lower()):
        if name not in _WEEKDAYS:
            raise ScheduleError(f"unknown weekday {name!r} (use mon, tue, ... sun)")
        numbers.append(str(_WEEKDAYS[name]))
    return ",".join(numbers)


def _parse_instant(text: str, zone: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ScheduleError(f"invalid ISO-8601 time {text!r}") from exc
    if parsed.tzinfo is None:
        return resolve_wall_time(parsed, zone)
    return parsed.astimezone(UTC)


def _parse_date(text: str) -> date:
    try:
        if "." in text:
            return datetime.strptime(text, "%d.%m.%Y").date()  # noqa: DTZ007 (a date, no time)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ScheduleError(f"invalid date {text!r} (use YYYY-MM-DD or DD.MM.YYYY)") from exc


def _cron(text: str, zone: ZoneInfo, expression: str) -> Cron:
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=zone))
    except CronSimError as exc:
        raise ScheduleError(f"invalid cron expression {expression!r}: {exc}") from exc
    return Cron(text, zone, expression)


def _every(text: str, zone: ZoneInfo, count: int, unit: str, at: time | None = None) -> Every:
    if unit not in _UNITS:
        raise ScheduleError(f"unknown unit {unit!r} (use s, m, h, d or w)")
    if count <= 0:
        raise ScheduleError("an interval must be at least 1")
    step = count * _UNITS[unit]
    calendar = step.days > 0 and step % timedelta(days=1) == timedelta(0)
    if at is not None and not calendar:
        raise ScheduleError("'at' only goes with day or week intervals")
    return Every(text, zone, step, calendar=calendar, at=at)


def _discord_words(
    text: str,
    zone: ZoneInfo,
    clock: time | None,
    day_of_week: str | None,
    day_of_month: int | None,
    month: int | None,
    specific_date: str | None,
) -> Schedule | None:
    """The original Discord tool's schedule values, with their extra fields."""
    if text == "secondly":
        return _every(text, zone, 1, "s")
    if text in ("minutely", "hourly"):
        return _cron(text, zone, _MACROS[text])
    if text in _MACROS:
        at = clock or time(0, 0)
        if text == "daily":
            return _cron(text, zone, _cron_at(at, "*", "*"))
        if text == "weekly":
            weekdays = _weekday_numbers(day_of_week) if day_of_week else "0"
            return _cron(text, zone, _cron_at(at, "*", weekdays))
        if text == "monthly":
            return _cron(text, zone, _cron_at(at, str(day_of_month or 1), "*"))
        return _cron(text, zone, _cron_at(at, str(day_of_month or 1), "*", str(month or 1)))
    if match := _EVERY_DISCORD.fullmatch(text):
        return _every(text, zone, int(match[1]), match[2], clock if match[2] in ("days", "weeks") else None)
    if match := _DAY_AT.fullmatch(text):
        offset = 1 if match[1] == "tomorrow" else 0
        return Once(text, zone, local_clock=_clock_time(match[2]), day_offset=offset)
    if text == "on_date":
        if not specific_date:
            raise ScheduleError("'on_date' needs a specific_date (YYYY-MM-DD or DD.MM.YYYY)")
        wall = datetime.combine(_parse_date(specific_date), clock or time(0, 0))
        return Once(text, zone, instant=resolve_wall_time(wall, zone))
    return None


def parse_schedule(
    text: str,
    zone: ZoneInfo,
    *,
    time_of_day: str | None = None,
    day_of_week: str | None = None,
    day_of_month: int | None = None,
    month: int | None = None,
    specific_date: str | None = None,
) -> Schedule:
    """Parse a schedule string; the keyword fields carry the Discord task format."""
    raw = text
    text = " ".join(text.strip().split())
    lowered = text.lower()
    if not lowered:
        raise ScheduleError("empty schedule")
    clock = _clock_time(time_of_day) if time_of_day else None
    if lowered.startswith("@"):  # cron's macros: a line copied from a crontab
        if lowered == "@reboot":
            raise ScheduleError(
                "@reboot: moltbot has no start-up schedule; a oneshot systemd unit runs a command at boot"
            )
        word = {"@midnight": "daily", "@annually": "yearly"}.get(lowered, lowered[1:])
        if word not in _MACROS or word == "minutely":
            raise ScheduleError(
                f"unknown schedule {raw!r}; cron's are @hourly, @daily, @weekly, @monthly, @yearly"
            )
        lowered = word

    if lowered.startswith("at ") and not _DAY_AT.fullmatch(lowered):
        return Once(raw, zone, instant=_parse_instant(text[3:].strip(), zone))
    if match := _IN.fullmatch(lowered):
        unit = match[2]
        if unit not in _UNITS:
            raise ScheduleError(f"unknown unit {unit!r} in {raw!r}")
        return Once(raw, zone, delay=int(match[1]) * _UNITS[unit])
    if match := _EVERY.fullmatch(lowered):
        at = _clock_time(match[3]) if match[3] else None
        return _every(raw, zone, int(match[1]), match[2], at)
    if match := _DAILY.fullmatch(lowered):
        weekdays = {"daily": "*", "weekdays": "1-5", "weekends": "0,6"}[match[1]]
        return _cron(raw, zone, _cron_at(_clock_time(match[2]), "*", weekdays))
    if match := _WEEKLY.fullmatch(lowered):
        return _cron(raw, zone, _cron_at(_clock_time(match[2]), "*", _weekday_numbers(match[1])))
    if match := _MONTHLY.fullmatch(lowered):
        day = "L" if match[1] == "last" else match[1]
        if day != "L" and not 1 <= int(day) <= 31:
            raise ScheduleError(f"day of month {day} is not 1-31")
        return _cron(raw, zone, _cron_at(_clock_time(match[2]), day, "*"))
    found = _discord_words(lowered, zone, clock, day_of_week, day_of_month, month, specific_date)
    if found is not None:
        return found
    if len(text.split()) == 5:
        return _cron(raw, zone, text)
    raise ScheduleError(
        f"unknown schedule {raw!r}; examples: 'every 5m', 'daily at 09:00', "
        "'weekdays at 07:30', 'weekly on mon at 08:00', 'monthly on 1 at 06:00', "
        "'0 9 * * 1-5', 'at 2026-12-24T18:00', 'in 10 minutes', 'hourly', 'every_2_hours'"
    )
