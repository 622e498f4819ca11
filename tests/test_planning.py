"""What happens to a due task: on time, late within grace, or missed after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from moltbot.core.planning import RECORDED_ONE_BY_ONE, plan_due
from moltbot.schedules import parse_schedule

ZONE = ZoneInfo("Europe/Berlin")
ANCHOR = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def plan(
    text: str, due: datetime, now: datetime, missed: str = "once", cap: int = 10, late_since=None, queued=0
):  # type: ignore[no-untyped-def]
    return plan_due(
        parse_schedule(text, ZONE),
        ANCHOR,
        due,
        now,
        missed=missed,
        grace=GRACE,
        max_catchup=cap,
        late_since=late_since,
        queued_runs=queued,
    )


def test_on_time_runs_the_occurrence_and_the_next_comes_from_the_schedule() -> None:
    due = ANCHOR + timedelta(minutes=5)
    result = plan("every 5m", due, due + timedelta(seconds=2))
    assert result.run_for == due
    assert result.next_run == due + timedelta(minutes=5)  # not "finished + 5m"
    assert result.records == () and result.queue == ()


def test_within_grace_a_fast_schedule_coalesces_and_records_each_occurrence() -> None:
    due = ANCHOR + timedelta(seconds=10)
    result = plan("every 10s", due, due + timedelta(seconds=35))
    assert result.run_for == due + timedelta(seconds=30)
    assert result.next_run == due + timedelta(seconds=40)
    assert [(status, instant) for status, instant, _ in result.records] == [
        ("skipped", due + timedelta(seconds=offset)) for offset in (0, 10, 20)
    ]
    assert all("coalesced into the run of" in message for _, _, message in result.records)


def test_missed_skip_records_one_row_per_missed_occurrence_and_runs_nothing() -> None:
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # daily at 09:00 Berlin
    now = due + timedelta(days=2, hours=3)
    result = plan("daily at 09:00", due, now, missed="skip")
    assert result.run_for is None and result.queue == ()
    assert result.next_run == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert [(status, instant) for status, instant, _ in result.records] == [
        ("missed", due + timedelta(days=day)) for day in range(3)
    ]
    assert "policy: skip" in result.records[0][2]


def test_missed_once_runs_the_latest_once_and_records_the_others() -> None:
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    now = due + timedelta(days=2, hours=3)
    result = plan("daily at 09:00", due, now, missed="once")
    assert result.run_for == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert result.next_run == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert [instant for _, instant, _ in result.records] == [due, due + timedelta(days=1)]


def test_missed_all_queues_every_occurrence_oldest_first_up_to_the_cap() -> None:
    due = ANCHOR + timedelta(hours=1)
    now = due + timedelta(hours=14, minutes=30)  # 15 hourly occurrences
    result = plan("every 1h", due, now, missed="all", cap=10)
    assert result.run_for is None  # nothing starts outside the queue: the replay keeps its order
    assert result.queue == tuple(due + timedelta(hours=hour) for hour in range(5, 15))
    assert result.next_run == due + timedelta(hours=15)
    assert [instant for _, instant, _ in result.records] == [due + timedelta(hours=hour) for hour in range(5)]
    assert all("at most max_catchup_runs = 10" in message for _, _, message in result.records)


def test_an_occurrence_that_comes_during_a_catch_up_is_queued_behind_it() -> None:
    due = ANCHOR + timedelta(hours=1)
    result = plan("every 1h", due, due + timedelta(seconds=1), missed="all", cap=10)
    assert result.run_for == due  # nothing queued: runs at once
    behind = plan("every 1h", due, due + timedelta(seconds=1), missed="all", cap=10, queued=3)
    assert behind.run_for is None and behind.queue == (due,)
    full = plan("every 1h", due, due + timedelta(seconds=1), missed="all", cap=3, queued=3)
    assert full.queue == () and full.records[0][:2] == ("skipped", due)


def test_missed_rows_are_capped_per_gap_with_one_row_counting_the_rest() -> None:
    due = ANCHOR + timedelta(minutes=1)
    now = due + timedelta(minutes=RECORDED_ONE_BY_ONE + 49, seconds=30)  # 150 occurrences
    result = plan("every 1m", due, now, missed="skip")
    assert len(result.records) == RECORDED_ONE_BY_ONE + 1
    status, first_of_rest, message = result.records[-1]
    assert status == "missed" and first_of_rest == due + timedelta(minutes=RECORDED_ONE_BY_ONE)
    assert "50 more occurrence(s)" in message


def test_a_late_one_shot_runs_once_with_policy_once_and_not_with_skip() -> None:
    fire = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    once = plan("at 2026-11-23T10:00", fire, fire + timedelta(hours=2))
    assert once.run_for == fire and once.next_run is None and once.records == ()
    skip = plan("at 2026-11-23T10:00", fire, fire + timedelta(hours=2), missed="skip")
    assert skip.run_for is None and skip.next_run is None and skip.records[0][0] == "missed"


def test_a_queued_occurrence_after_a_long_run_is_not_counted_as_missed() -> None:
    due = ANCHOR + timedelta(minutes=5)
    finished = due + timedelta(minutes=20)  # the previous run was busy until now
    result = plan("every 1h", due, finished + timedelta(seconds=1), missed="skip", late_since=finished)
    assert result.run_for == due and result.records == ()


def test_a_long_outage_of_a_per_second_task_is_bounded() -> None:
    due = ANCHOR + timedelta(seconds=1)
    now = due + timedelta(days=30)
    result = plan("every 1s", due, now, missed="all", cap=10)
    assert result.run_for == now  # enumeration was cut short: one run now
    assert len(result.records) == RECORDED_ONE_BY_ONE + 1 and "more than" in result.records[-1][2]
