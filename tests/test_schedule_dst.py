"""Schedules across DST, property-tested against a small reference of the documented rule.

The rule (README, *Schedules*): a wall-clock time a schedule names runs once; one that does not
exist (spring forward) runs at the first instant after the gap; an ambiguous one (fall back) runs
at its first occurrence only. And whatever the form and the zone, the next instant is strictly
after the instant asked about.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moltbot.schedules import Cron, parse_schedule

ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Santiago",
    "Africa/Casablanca",  # an hour back during Ramadan
    "Asia/Kathmandu",  # +05:45, no DST
    "Europe/London",
    "UTC",
)
YEARS = range(2026, 2031)
# Wall-clock forms, as cron expressions (what the named forms become) and as written.
EXPRESSIONS = (
    "0 * * * *",  # hourly
    "* * * * *",  # minutely
    "30 2 * * *",  # daily at 02:30
    "45 1 * * 0",  # weekly on sun at 01:45
    "*/20 2 * * 0",
    "30 * * * 0",
    "*/30 3 * * 0",
    "0 0 * * *",
    "15 3 * * 1-5",
    "0 1,2,3 * * *",
)
NAMED = (
    "hourly",
    "minutely",
    "daily at 02:30",
    "weekly on sun at 01:45",
    "weekdays at 00:30",
    "monthly on last at 02:15",
)
OTHER_FORMS = ("every 30m", "every 1h", "every 2h", "every 1d", "every 2 days at 02:30", "every 1w at 01:45")
MINUTE = timedelta(minutes=1)
ANCHOR = datetime(2025, 12, 31, 23, 17, tzinfo=UTC)


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The instants (UTC, whole minutes) where the zone's offset changes, in YEARS."""
    zone = ZoneInfo(zone_name)
    found = []
    at = datetime(YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(YEARS[-1] + 1, 1, 1, tzinfo=UTC)
    while at < end:
        step = at + timedelta(hours=1)
        if at.astimezone(zone).utcoffset() != step.astimezone(zone).utcoffset():
            low, high = at, step
            while high - low > MINUTE:
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle if middle > low else low + MINUTE
                else:
                    high = middle
            found.append(high)
        at = step
    return tuple(found)


def _field_matches(field: str, value: int, low: int, high: int) -> bool:
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            first, last = (int(x) for x in part.split("-"))
        else:
            first = last = int(part)
        if first <= value <= last and (value - first) % step == 0:
            return True
    return False


def wall_matches(expression: str, wall: datetime) -> bool:
    """A tiny cron matcher (numbers, *, */n, ranges, lists, L for the month's last day; day of
    week 0 = Sunday)."""
    minute, hour, day, month, weekday = expression.split()
    last_day = (wall + timedelta(days=1)).month != wall.month
    return (
        _field_matches(minute, wall.minute, 0, 59)
        and _field_matches(hour, wall.hour, 0, 23)
        and (last_day if day == "L" else _field_matches(day, wall.day, 1, 31))
        and _field_matches(month, wall.month, 1, 12)
        and _field_matches(weekday, (wall.weekday() + 1) % 7, 0, 6)
    )


def fires_at(expression: str, zone: ZoneInfo, instant: datetime) -> bool:
    """The documented rule, minute by minute: does a run of ``expression`` happen at ``instant``?"""
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    if local.fold == 0 and wall_matches(expression, wall):  # fold 1: the second pass of a repeated hour
        return True
    previous = (instant - MINUTE).astimezone(zone).replace(tzinfo=None, fold=0)
    skipped = previous + MINUTE
    while skipped < wall:  # the wall times a spring-forward gap just jumped over
        if wall_matches(expression, skipped):
            return True
        skipped += MINUTE
    return False


def reference_next(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    instant = after.replace(second=0, microsecond=0) + MINUTE
    while not fires_at(expression, zone, instant):
        instant += MINUTE
    return instant


@st.composite
def near_a_transition(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone, and an instant within two days of one of its transitions (anywhere, without DST)."""
    zone = draw(st.sampled_from(ZONES))
    found = transitions(zone)
    if found:
        base = draw(st.sampled_from(found))
        offset = draw(st.integers(-2 * 86400, 2 * 86400))
    else:
        base = datetime(YEARS[0], 1, 1, tzinfo=UTC)
        offset = draw(st.integers(0, len(YEARS) * 365 * 86400))
    micro = draw(st.sampled_from([0, 1, 500_000]))
    return zone, base + timedelta(seconds=offset, microseconds=micro)


@settings(max_examples=400, deadline=None)
@given(near_a_transition(), st.sampled_from(EXPRESSIONS))
def test_cron_forms_follow_the_documented_rule(at: tuple[str, datetime], expression: str) -> None:
    zone_name, after = at
    zone = ZoneInfo(zone_name)
    schedule = Cron(expression, zone, expression)
    found = schedule.next_after(after, ANCHOR)
    assert found is not None and found > after
    assert found == reference_next(expression, zone, after), (zone_name, after.isoformat(), expression)


@settings(max_examples=300, deadline=None)
@given(near_a_transition(), st.sampled_from(NAMED + OTHER_FORMS + ("at 2027-10-31T02:30", "in 90 minutes")))
def test_every_form_answers_strictly_after_the_instant_asked_about(
    at: tuple[str, datetime], text: str
) -> None:
    zone_name, after = at
    schedule = parse_schedule(text, ZoneInfo(zone_name))
    found = schedule.next_after(after, ANCHOR)
    assert found is None or found > after
    if isinstance(schedule, Cron):
        assert found == reference_next(schedule.expression, ZoneInfo(zone_name), after)


def test_the_zones_really_change_offset_in_those_years() -> None:
    """The strategies above hit gaps and overlaps, not only quiet days."""
    for zone in ZONES:
        expected = zone not in ("Asia/Kathmandu", "UTC")
        assert bool(transitions(zone)) == expected, zone


BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "after", "expected"),
    [
        # A restart in the second pass of the repeated hour: the 02:30 of that day (00:30Z, its
        # first occurrence) is over; the next one is the next day's.
        ("daily at 02:30", BERLIN, utc(2027, 10, 31, 1, 10), utc(2027, 11, 1, 1, 30)),
        ("weekly on sun at 01:45", NEW_YORK, utc(2027, 11, 7, 6, 20), utc(2027, 11, 14, 6, 45)),
    ],
)
def test_a_restart_during_a_repeated_hour_never_goes_back(
    text: str, zone: ZoneInfo, after: datetime, expected: datetime
) -> None:
    assert parse_schedule(text, zone).next_after(after, ANCHOR) == expected


def test_hourly_runs_once_per_wall_time_across_both_changes() -> None:
    def runs(schedule_zone: ZoneInfo, start: datetime, count: int) -> list[str]:
        schedule, found, at = parse_schedule("hourly", schedule_zone), [], start
        for _ in range(count):
            at = schedule.next_after(at, ANCHOR)
            assert at is not None
            found.append(at.astimezone(schedule_zone).strftime("%H:%M%z"))
        return found

    # Berlin falls back at 03:00 CEST: 02:00 runs once (its first occurrence), then 03:00 CET.
    assert runs(BERLIN, utc(2027, 10, 30, 22, 30), 4) == [
        "01:00+0200",
        "02:00+0200",
        "03:00+0100",
        "04:00+0100",
    ]
    # Lord Howe springs forward by 30 minutes at 02:00: that hour runs at 02:30, the gap's end.
    assert runs(LORD_HOWE, utc(2027, 10, 2, 13, 0), 4) == [
        "00:00+1030",
        "01:00+1030",
        "02:30+1100",
        "03:00+1100",
    ]
