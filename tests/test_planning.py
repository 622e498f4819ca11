"""What happens to a due task: on time, late within grace, or missed after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from moltbot.core.planning import plan_due
from moltbot.schedules import parse_schedule

ZONE = ZoneInfo("Europe/Berlin")
ANCHOR = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def plan(text: str, due: datetime, now: datetime, missed: str = "once", cap: int = 10, late_since=None):  # type: ignore[no-untyped-def]
    return plan_due(
        parse_schedule(text, ZONE),
        ANCHOR,
        due,
        now,
        missed=missed,
        grace=GRACE,
        max_catchup=cap,
        late_since=late_since,
    )


def test_on_time_runs_the_occurrence_and_the_next_comes_from_the_schedule() -> None:
    due = ANCHOR + timedelta(minutes=5)
    result = plan("every 5m", due, due + timedelta(seconds=2))
    assert result.run_for == due
    assert result.next_run == due + timedelta(minutes=5)  # not "finished + 5m"
    assert result.records == []


def test_within_grace_a_fast_schedule_coalesces_and_records_it() -> None:
    due = ANCHOR + timedelta(seconds=10)
    result = plan("every 10s", due, due + timedelta(seconds=35))
    assert result.run_for == due + timedelta(seconds=30)
    assert result.next_run == due + timedelta(seconds=40)
    ((status, first, message),) = result.records
    assert status == "skipped" and first == due and "3 occurrence(s)" in message


def test_missed_skip_records_every_missed_run_and_runs_nothing() -> None:
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # daily at 09:00 Berlin
    now = due + timedelta(days=2, hours=3)
    result = plan("daily at 09:00", due, now, missed="skip")
    assert result.run_for is None
    assert result.next_run == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    ((status, first, message),) = result.records
    assert status == "missed" and first == due and "missed 3 run(s)" in message and "policy: skip" in message


def test_missed_once_runs_the_latest_once() -> None:
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    now = due + timedelta(days=2, hours=3)
    result = plan("daily at 09:00", due, now, missed="once")
    assert result.run_for == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert result.next_run == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    ((status, _, message),) = result.records
    assert status == "missed" and "missed 2 run(s)" in message


def test_missed_all_replays_oldest_first_but_at_most_the_cap() -> None:
    due = ANCHOR + timedelta(hours=1)
    now = due + timedelta(hours=14, minutes=30)  # 15 hourly occurrences
    result = plan("every 1h", due, now, missed="all", cap=10)
    assert result.run_for == due + timedelta(hours=5)  # the 5 oldest are dropped
    assert result.next_run == due + timedelta(hours=6)  # still due: the loop replays the rest
    ((status, first, message),) = result.records
    assert status == "missed" and first == due and "missed 5 run(s)" in message and "at most 10" in message
    # The next claim (now unchanged) continues the replay without dropping more.
    again = plan("every 1h", result.next_run, now, missed="all", cap=10)
    assert again.run_for == due + timedelta(hours=6) and again.records == []


def test_a_late_one_shot_runs_once_with_policy_once_and_not_with_skip() -> None:
    fire = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    once = plan("at 2026-11-23T10:00", fire, fire + timedelta(hours=2))
    assert once.run_for == fire and once.next_run is None and once.records == []
    skip = plan("at 2026-11-23T10:00", fire, fire + timedelta(hours=2), missed="skip")
    assert skip.run_for is None and skip.next_run is None and skip.records[0][0] == "missed"


def test_a_queued_occurrence_after_a_long_run_is_not_counted_as_missed() -> None:
    due = ANCHOR + timedelta(minutes=5)
    finished = due + timedelta(minutes=20)  # the previous run was busy until now
    result = plan("every 1h", due, finished + timedelta(seconds=1), missed="skip", late_since=finished)
    assert result.run_for == due and result.records == []


def test_a_long_outage_of_a_per_second_task_is_bounded() -> None:
    due = ANCHOR + timedelta(seconds=1)
    now = due + timedelta(days=30)
    result = plan("every 1s", due, now, missed="all", cap=10)
    assert result.run_for == now  # enumeration was cut short: one run now
    assert "more than" in result.records[0][2]
