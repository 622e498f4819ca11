"""The schedule grammar and its DST behaviour, with fixed instants (no real clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moltbot.schedules import ScheduleError, parse_schedule, resolve_wall_time

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)


def local(schedule_text: str, zone: ZoneInfo, after: datetime, count: int = 3, **fields: object) -> list[str]:
    schedule = parse_schedule(schedule_text, zone, **fields)  # type: ignore[arg-type]
    return [t.astimezone(zone).isoformat() for t in schedule.upcoming(after, ANCHOR, count)]


def test_intervals_count_from_the_anchor_not_from_when_asked() -> None:
    schedule = parse_schedule("every 5m", BERLIN)
    assert schedule.next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(minutes=5)
    # Asking late (a run that finished 7 minutes late) does not shift the grid.
    late = ANCHOR + timedelta(minutes=12, seconds=3)
    assert schedule.next_after(late, ANCHOR) == ANCHOR + timedelta(minutes=15)
    assert parse_schedule("every 30s", BERLIN).next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(seconds=30)
    assert parse_schedule("every 2h", BERLIN).next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(hours=2)


def test_hour_intervals_are_elapsed_time_across_dst() -> None:
    anchor = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET, an hour before the gap
    times = parse_schedule("every 1h", BERLIN).upcoming(anchor, anchor, 2)
    assert [t - anchor for t in times] == [timedelta(hours=1), timedelta(hours=2)]


def test_day_intervals_keep_the_wall_clock_time_across_dst() -> None:
    anchor = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET the day before spring-forward
    times = parse_schedule("every 1d", BERLIN).upcoming(anchor, anchor, 2)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M %Z") for t in times] == ["29 09:00 CEST", "30 09:00 CEST"]
    at = parse_schedule("every 2 days at 07:30", BERLIN).upcoming(anchor, anchor, 2)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in at] == ["30 07:30", "01 07:30"]


def test_calendar_words() -> None:
    after = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
    assert local("daily at 09:00", BERLIN, after, 1) == ["2026-11-24T09:00:00+01:00"]
    assert local("weekdays at 07:30", BERLIN, datetime(2026, 11, 27, 12, 0, tzinfo=UTC), 2) == [
        "2026-11-30T07:30:00+01:00",
        "2026-12-01T07:30:00+01:00",
    ]
    assert local("weekly on mon at 08:00", BERLIN, after, 1) == ["2026-11-30T08:00:00+01:00"]
    assert local("weekly on tue,thu at 08:00", BERLIN, after, 2) == [
        "2026-11-24T08:00:00+01:00",
        "2026-11-26T08:00:00+01:00",
    ]
    assert local("monthly on 1 at 06:00", BERLIN, after, 1) == ["2026-12-01T06:00:00+01:00"]
    assert local("monthly on last at 23:00", BERLIN, after, 1) == ["2026-11-30T23:00:00+01:00"]
    assert local("0 9 * * 1-5", NEW_YORK, after, 1) == ["2026-11-23T09:00:00-05:00"]  # 07:00 there now


def test_monthly_on_the_31st_skips_short_months_like_cron() -> None:
    after = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert local("monthly on 31 at 06:00", BERLIN, after, 2) == [
        "2026-03-31T06:00:00+02:00",
        "2026-05-31T06:00:00+02:00",
    ]


def test_one_shots() -> None:
    at = parse_schedule("at 2026-12-24T18:00:00.250", BERLIN)
    fire = at.next_after(ANCHOR, ANCHOR)
    assert fire == datetime(2026, 12, 24, 17, 0, 0, 250000, tzinfo=UTC)  # fractional seconds kept
    assert at.next_after(fire, ANCHOR) is None and at.one_shot
    assert parse_schedule("at 2026-12-24T18:00:00+00:00", BERLIN).next_after(ANCHOR, ANCHOR) == datetime(
        2026, 12, 24, 18, tzinfo=UTC
    )
    relative = parse_schedule("in 10 minutes", BERLIN)
    assert relative.next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(minutes=10)
    assert relative.upcoming(ANCHOR, ANCHOR, 5) == [ANCHOR + timedelta(minutes=10)]


def test_discord_schedule_values() -> None:
    after = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert local("minutely", BERLIN, after, 1) == ["2026-11-23T13:01:00+01:00"]
    assert local("hourly", BERLIN, after, 1) == ["2026-11-23T14:00:00+01:00"]
    assert local("daily", BERLIN, after, 1, time_of_day="09:15") == ["2026-11-24T09:15:00+01:00"]
    assert local("daily", BERLIN, after, 1) == ["2026-11-24T00:00:00+01:00"]
    # Unlike the original, a weekly task on today's weekday runs today when the time is ahead.
    assert local("weekly", BERLIN, after, 1, day_of_week="monday", time_of_day="18:00") == [
        "2026-11-23T18:00:00+01:00"
    ]
    assert local("monthly", BERLIN, after, 1, day_of_month=15, time_of_day="08:00") == [
        "2026-12-15T08:00:00+01:00"
    ]
    assert local("yearly", BERLIN, after, 1, month=2, day_of_month=29) == ["2028-02-29T00:00:00+01:00"]
    assert parse_schedule("every_3_hours", BERLIN).next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(hours=3)
    assert parse_schedule("in_45_seconds", BERLIN).next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(
        seconds=45
    )
    today = parse_schedule("today_at_18:30", BERLIN)
    assert today.next_after(ANCHOR, ANCHOR) == datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    tomorrow = parse_schedule("tomorrow_at_07:00", BERLIN)
    assert tomorrow.next_after(ANCHOR, ANCHOR) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    on_date = parse_schedule("on_date", BERLIN, specific_date="24.12.2026", time_of_day="18:00")
    assert on_date.next_after(ANCHOR, ANCHOR) == datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    assert parse_schedule("secondly", BERLIN).next_after(ANCHOR, ANCHOR) == ANCHOR + timedelta(seconds=1)


def test_every_n_days_with_time_starts_on_the_anchor_day_when_still_ahead() -> None:
    anchor = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 05:00 Berlin
    schedule = parse_schedule("every_2_days", BERLIN, time_of_day="06:00")
    times = schedule.upcoming(anchor, anchor, 2)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in times] == ["23 06:00", "25 06:00"]


@pytest.mark.parametrize(
    ("text", "fields", "message"),
    [
        ("every 5 fortnights", {}, "unknown unit"),
        ("every 0m", {}, "at least 1"),
        ("daily at 25:00", {}, "invalid time"),
        ("weekly on funday at 08:00", {}, "unknown weekday"),
        ("monthly on 32 at 06:00", {}, "not 1-31"),
        ("61 * * * *", {}, "invalid cron expression"),
        ("at tomorrow-ish", {}, "invalid ISO-8601"),
        ("sometimes", {}, "unknown schedule"),
        ("on_date", {}, "needs a specific_date"),
        ("on_date", {"specific_date": "2026/12/24"}, "invalid date"),
        ("every 5m at 09:00", {}, "'at' only goes with day or week"),
        ("", {}, "empty schedule"),
    ],
)
def test_bad_schedules_say_why(text: str, fields: dict[str, str], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text, BERLIN, **fields)  # type: ignore[arg-type]


# --- DST ---------------------------------------------------------------------------------


def test_a_time_in_the_spring_gap_runs_once_right_after_the_gap() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert local("daily at 02:30", BERLIN, after, 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    gap = resolve_wall_time(datetime(2026, 3, 29, 2, 30), BERLIN)
    assert gap == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_an_ambiguous_time_in_the_autumn_fold_runs_once_first_occurrence() -> None:
    after = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert local("daily at 02:30", BERLIN, after, 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # Asked from inside the fold, after the first 02:30, it does not fire again at the second.
    second_half = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:45 CEST
    assert local("daily at 02:30", BERLIN, second_half, 1) == ["2026-10-26T02:30:00+01:00"]


def test_one_shot_at_a_nonexistent_local_time_fires_after_the_gap() -> None:
    schedule = parse_schedule("at 2026-03-08T02:30", NEW_YORK)
    assert schedule.next_after(ANCHOR.replace(year=2025), ANCHOR) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Santiago", "UTC"]


@settings(max_examples=150, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 59]),
)
def test_daily_fires_exactly_once_per_local_day(zone_name: str, day: date, hour: int, minute: int) -> None:
    """Across DST in several zones and years: one fire per local day, never early, never twice."""
    zone = ZoneInfo(zone_name)
    schedule = parse_schedule(f"daily at {hour:02d}:{minute:02d}", zone)
    start = resolve_wall_time(datetime.combine(day, datetime.min.time()), zone) - timedelta(seconds=1)
    fires = schedule.upcoming(start, start, 4)
    local_days = [f.astimezone(zone).date() for f in fires]
    assert len(set(local_days)) == len(local_days), "a day fired twice"
    assert all(later > earlier for earlier, later in pairwise(fires))
    for fire in fires:
        wall = fire.astimezone(zone)
        target = wall.replace(hour=hour, minute=minute, second=0, tzinfo=None)
        if resolve_wall_time(target, zone) == fire and fire.astimezone(zone).replace(tzinfo=None) == target:
            continue  # the wall time existed and is exactly when it fired
        # Otherwise the wall time fell in a gap: it fires at the end of the gap, later that day.
        assert wall.replace(tzinfo=None) > target - timedelta(hours=3), (fire, target)
    consecutive = [(b - a).days for a, b in pairwise(local_days)]
    assert all(d == 1 for d in consecutive), local_days


@settings(max_examples=150, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    text=st.sampled_from(
        ["every 7m", "every 90s", "every 3h", "every 1d", "every 2w", "*/10 * * * *", "hourly"]
    ),
)
def test_next_after_is_strictly_later_and_monotonic(zone_name: str, instant: datetime, text: str) -> None:
    zone = ZoneInfo(zone_name)
    schedule = parse_schedule(text, zone)
    anchor = datetime(2019, 6, 1, 12, 0, tzinfo=UTC)
    first = schedule.next_after(instant, anchor)
    assert first is not None and first > instant
    second = schedule.next_after(first, anchor)
    assert second is not None and second > first
    # Nothing is skipped: asking from just before ``first`` still yields ``first``.
    assert schedule.next_after(first - timedelta(microseconds=1), anchor) == first


@settings(max_examples=150, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    anchor=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 1), timezones=st.just(UTC)
    ),
    days=st.sampled_from([1, 2, 7]),
)
def test_calendar_day_intervals_keep_the_wall_time_across_dst(
    zone_name: str, anchor: datetime, days: int
) -> None:
    """`every Nd` fires on every Nth local day at the anchor's wall time; where that time does not
    exist (a spring-forward gap) it fires later that same day, by less than the gap."""
    zone = ZoneInfo(zone_name)
    fires = parse_schedule(f"every {days}d", zone).upcoming(anchor, anchor, 6)
    local_anchor = anchor.astimezone(zone)
    wall = local_anchor.replace(tzinfo=None).time()
    for index, fire in enumerate(fires, start=1):
        local = fire.astimezone(zone)
        assert local.date() == local_anchor.date() + timedelta(days=index * days)
        if local.time() != wall:
            naive = datetime.combine(local.date(), wall)
            round_trip = naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
            assert round_trip != naive, f"{naive} exists in {zone_name} but fired at {local}"
            assert timedelta(0) < local.replace(tzinfo=None) - naive <= timedelta(hours=1)
    assert all(b > a for a, b in pairwise(fires))


@pytest.mark.parametrize(
    ("macro", "word"),
    [("@hourly", "hourly"), ("@daily", "daily"), ("@midnight", "daily"), ("@weekly", "weekly"),
     ("@monthly", "monthly"), ("@yearly", "yearly"), ("@annually", "yearly"), ("@DAILY", "daily")],
)  # fmt: skip
def test_crons_at_macros_are_its_words(macro: str, word: str) -> None:
    # The README documents `@daily` (cron's spelling); a newcomer copying a crontab line writes it.
    after = datetime(2026, 11, 26, 19, 5, tzinfo=UTC)
    assert local(macro, BERLIN, after, 4) == local(word, BERLIN, after, 4)


def test_reboot_is_refused_with_what_to_write_instead() -> None:
    with pytest.raises(
        ScheduleError,
        match="@reboot: moltbot has no start-up schedule; a oneshot systemd unit runs a command at boot",
    ):
        parse_schedule("@reboot", BERLIN)
