"""Tasks-Channel messages: every schedule value of the original, Berlin wall times across DST, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moltbot.discord_tasks.message import KNOWN_KEYS, InvalidTask, parse_message, render_message

BERLIN = ZoneInfo("Europe/Berlin")


def message(**fields: object) -> str:
    task = {
        "task_name": "water plants",
        "description": "",
        "schedule": "daily",
        "time": None,
        "specific_date": None,
        "day_of_month": None,
        "month": None,
        "day_of_week": None,
        "action_type": "channel_post",
        "action_target": "123456789012345678",
        "action_template": "Water the plants!",
        "one_time": False,
        "created_at": "2026-01-10T08:00:00",
        "first_run": "2026-01-10T09:00:00",
        "next_run": "2026-01-10T09:00:00",
        "active": True,
    }
    task.update(fields)
    header = "📋 **Task: water plants**\n├─ Schedule: daily\n└─ Action: channel_post → 1234"
    return f"{header}\n\n```json\n{json.dumps(task, indent=2)}\n```"


def parse(content: str) -> object:
    return parse_message("1001", content, "42", BERLIN)


# (schedule, extra fields, one_time, next_run as written, the two fire times that follow it, in Berlin)
CASES = [
    ("in_10_minutes", {}, True, "2026-01-10T09:00:00.123456", []),
    ("in_2_hours", {}, True, "2026-01-10T09:00:00", []),
    ("in_30_seconds", {}, True, "2026-01-10T09:00:00", []),
    ("today_at_18:30", {}, True, "2026-01-10T18:30:00", []),
    ("tomorrow_at_07:00", {}, True, "2026-01-11T07:00:00", []),
    ("on_date", {"specific_date": "24.12.2026", "time": "18:00"}, True, "2026-12-24T18:00:00", []),
    ("minutely", {}, False, "2026-01-10T09:00:00", ["2026-01-10 09:01", "2026-01-10 09:02"]),
    ("hourly", {}, False, "2026-01-10T09:00:00", ["2026-01-10 10:00", "2026-01-10 11:00"]),
    ("daily", {"time": "09:00"}, False, "2026-01-10T09:00:00", ["2026-01-11 09:00", "2026-01-12 09:00"]),
    ("weekly", {"day_of_week": "monday", "time": "08:00"}, False, "2026-01-12T08:00:00",
     ["2026-01-19 08:00", "2026-01-26 08:00"]),
    ("monthly", {"day_of_month": 31, "time": "06:00"}, False, "2026-01-31T06:00:00",
     ["2026-03-31 06:00", "2026-05-31 06:00"]),
    ("yearly", {"month": 3, "day_of_month": 29, "time": "02:30"}, False, "2025-03-29T02:30:00",
     ["2026-03-29 03:00", "2027-03-29 02:30"]),
    ("every_15_minutes", {}, False, "2026-01-10T09:00:00", ["2026-01-10 09:15", "2026-01-10 09:30"]),
    ("every_2_hours", {}, False, "2026-01-10T09:00:00", ["2026-01-10 11:00", "2026-01-10 13:00"]),
    ("every_3_days", {"time": "07:30"}, False, "2026-01-10T07:30:00",
     ["2026-01-13 07:30", "2026-01-16 07:30"]),
    ("every_2_weeks", {"time": "07:30"}, False, "2026-01-10T07:30:00",
     ["2026-01-24 07:30", "2026-02-07 07:30"]),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "extra", "one_time", "next_run", "following"), CASES)
def test_every_schedule_value_of_the_original(
    schedule: str, extra: dict[str, object], one_time: bool, next_run: str, following: list[str]
) -> None:
    task = parse(message(schedule=schedule, one_time=one_time, next_run=next_run, **extra))
    assert task is not None
    assert task.one_time is one_time
    due = datetime.fromisoformat(next_run).replace(microsecond=0)
    assert task.next_run.astimezone(BERLIN).replace(tzinfo=None, microsecond=0) == due
    plan = task.schedule_in(BERLIN)
    got, at = [], task.next_run
    for _ in following:
        at = plan.next_after(at, task.next_run)
        got.append(at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M"))
    assert got == following  # from the schedule (no drift), with every day field honoured
    if one_time:
        assert plan.next_after(task.next_run, task.next_run) is None


def test_naive_berlin_times_across_dst() -> None:
    # Spring forward 2026-03-29: 02:30 does not exist in Berlin -> the first instant after the gap.
    spring = parse(message(schedule="in_1_hours", one_time=True, next_run="2026-03-29T02:30:00"))
    assert spring is not None and spring.next_run == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # Fall back 2026-10-25: 02:30 happens twice -> its first occurrence (CEST, UTC+2).
    fall = parse(message(schedule="in_1_hours", one_time=True, next_run="2026-10-25T02:30:00"))
    assert fall is not None and fall.next_run == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    winter = parse(message(next_run="2026-01-10T09:00:00"))
    summer = parse(message(next_run="2026-07-10T09:00:00"))
    assert winter is not None and winter.next_run.hour == 8  # CET
    assert summer is not None and summer.next_run.hour == 7  # CEST
    absolute = parse(message(next_run="2026-07-10T09:00:00Z"))
    offset = parse(message(next_run="2026-07-10T09:00:00+05:30"))
    assert absolute is not None and absolute.next_run == datetime(2026, 7, 10, 9, 0, tzinfo=UTC)
    assert offset is not None and offset.next_run == datetime(2026, 7, 10, 3, 30, tzinfo=UTC)


def test_chatter_is_no_task_and_broken_tasks_say_why() -> None:
    assert parse("good morning, channel!") is None
    assert parse_message("1", '{"task_name": "bare", "schedule": "hourly", "action_type": "self_task", '
                         '"next_run": "2026-01-10T09:00:00Z"}', None, BERLIN) is not None  # fmt: skip
    with pytest.raises(InvalidTask, match="does not parse"):
        parse("```json\n{not json\n```")
    with pytest.raises(InvalidTask) as caught:
        parse(message(schedule="fortnightly", action_type="shout", time="25:00", next_run="soon", month=13))
    reasons = " | ".join(caught.value.reasons)
    for needle in ("action_type “shout”", "time “25:00”", "next_run “soon”", "month must be 1-12"):
        assert needle in reasons
    with pytest.raises(InvalidTask, match="schedule “fortnightly”"):
        parse(message(schedule="fortnightly"))  # unknown values are refused, never run "daily"
    with pytest.raises(InvalidTask, match="task_name is missing"):
        parse(message(task_name=""))


def test_render_keeps_header_and_json_in_step_and_refuses_to_truncate() -> None:
    task = parse(message(schedule="daily", time="09:00"))
    assert task is not None
    following = task.next_run + timedelta(days=1)
    content = render_message(task, following, BERLIN)
    assert "(next run: 2026-01-11 09:00 CET)" in content and len(content) <= 2000
    again = parse(content)
    assert (
        again is not None
        and again.next_run == following
        and again.data["created_at"] == "2026-01-10T08:00:00"
    )
    long = parse(message(action_template="x" * 1900))
    assert long is not None
    with pytest.raises(ValueError, match="Discord allows 2000"):
        render_message(long, following, BERLIN)


def test_only_the_formats_own_keys_are_kept_and_written_back() -> None:
    task = parse(message(kind="playbook", playbook="/etc/passwd", env={"LD_PRELOAD": "/tmp/x.so"}))
    assert task is not None
    assert set(task.data) <= KNOWN_KEYS and task.data["task_name"] == "water plants"
    content = render_message(task, task.next_run + timedelta(days=1), BERLIN)
    assert "/etc/passwd" not in content and "LD_PRELOAD" not in content
