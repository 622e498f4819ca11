"""Occurrences are unique in the database: a second execution of one attempt of a scheduled
occurrence is refused by the database itself (a unique key), whoever asks for it."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moltbot import store
from moltbot.records import Plan
from moltbot.runner import RunResult

DUE = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def registered(path: Path, task_id: str = "job") -> None:
    store.open_db(path)
    store.sync_tasks(
        [store.TaskDefinition(task_id, task_id, "{}", "every 1h@UTC", 5, True, "skip", None)],
        DUE - timedelta(hours=1),
        lambda _task_id, _anchor: DUE,
        lambda _task_id: True,
    )


def executions(task_id: str = "job") -> list[tuple[int, str, str, int]]:
    return (
        store.connection()
        .execute(
            "SELECT id, trigger, scheduled_for, attempt FROM run "
            "WHERE task_id = ? AND status NOT IN ('skipped', 'missed') ORDER BY id",
            (task_id,),
        )
        .fetchall()
    )


def finish(ticket: store.RunTicket, status: str = "success") -> None:
    now = DUE + timedelta(seconds=1)
    store.finish_run(ticket, RunResult(status, 0, now, now, status, "", "", None), release_task=True)


def test_a_planner_that_claims_an_occurrence_twice_gets_a_logged_skipped_claim(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registered(tmp_path / "moltbot.db")
    buggy_plan = lambda task: Plan(DUE, DUE)  # noqa: E731  (forgets to advance next_run)
    first = store.apply_plan("job", DUE, buggy_plan)
    assert first is not None
    finish(first)
    with caplog.at_level(logging.ERROR):
        assert store.apply_plan("job", DUE + timedelta(seconds=2), buggy_plan) is None
    assert len(executions()) == 1
    (refused,) = [run for run in store.recent_runs("job", 10) if run.status == "skipped"]
    assert refused.scheduled_for == DUE and f"already ran as run {first.id}" in (refused.message or "")
    assert "refused a second execution" in caplog.text
    assert store.get_task("job").current_run_id is None  # the task is free, not stuck


def test_recovery_and_retry_are_later_attempts_and_manual_runs_their_own_occurrences(tmp_path: Path) -> None:
    registered(tmp_path / "moltbot.db")
    first = store.apply_plan("job", DUE, lambda task: Plan(DUE, DUE + timedelta(hours=1)))
    assert first is not None
    failed = RunResult("failed", 1, DUE, DUE, "exit 1", "", "", None)
    retry = store.begin_retry(first, failed, DUE + timedelta(seconds=1))
    assert retry is not None and retry.attempt == 2 and retry.scheduled_for == DUE
    # The same attempt again (a recovery that forgot to count) is refused and recorded.
    again = store.enqueue_run("job", "recovery", None, DUE, occurrence=DUE, attempt=2)
    assert again.status == "skipped" and "already ran" in (again.message or "")
    later = store.enqueue_run("job", "recovery", None, DUE, occurrence=DUE, attempt=3)
    assert later.status == "queued"
    manual = [store.enqueue_run("job", "manual", "owner", DUE) for _ in range(2)]
    assert [run.status for run in manual] == ["queued", "queued"]
    assert [run.scheduled_for for run in manual] == [None, None]


def test_a_refused_retry_leaves_the_failure_standing_and_the_task_free(tmp_path: Path) -> None:
    registered(tmp_path / "moltbot.db")
    first = store.apply_plan("job", DUE, lambda task: Plan(DUE, DUE + timedelta(hours=1)))
    assert first is not None
    store.enqueue_run("job", "recovery", None, DUE, occurrence=DUE, attempt=2)  # takes attempt 2 first
    failed = RunResult("failed", 1, DUE, DUE, "exit 1", "", "", None)
    assert store.begin_retry(first, failed, DUE + timedelta(seconds=1)) is None
    assert store.get_run(first.id).status == "failed"
    assert store.get_task("job").current_run_id is None


def test_the_raw_database_refuses_a_second_execution(tmp_path: Path) -> None:
    registered(tmp_path / "moltbot.db")
    conn = sqlite3.connect(tmp_path / "moltbot.db")
    insert = (
        "INSERT INTO run (task_id, status, trigger, attempt, scheduled_for, queued_at, stop_requested) "
        "VALUES ('job', ?, 'schedule', 1, '2027-10-31T00:30:00.000000Z', '2027-10-31T00:30:00.000000Z', 0)"
    )
    conn.execute(insert, ("success",))
    conn.execute(insert, ("skipped",))  # a record of an occurrence not run is not an execution
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, ("running",))


def test_migration_keeps_the_duplicates_an_old_daemon_ran_as_later_attempts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    registered(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX run_occurrence_attempt")  # what a schema-4 database looks like
    conn.execute("PRAGMA user_version = 4")
    row = (
        "INSERT INTO run (task_id, status, trigger, attempt, scheduled_for, queued_at, message, "
        "stop_requested) "
        "VALUES ('job', ?, ?, 1, ?, '2027-10-31T00:30:00.000000Z', 'ok', 0)"
    )
    twice = "2027-10-31T00:30:00.000000Z"
    for status, trigger, scheduled in [
        ("success", "schedule", twice),
        ("skipped", "schedule", twice),
        ("success", "schedule", twice),  # the fall-back restart bug ran it again
        ("success", "manual", "2027-10-31T00:40:00.000000Z"),
        ("success", "manual", "2027-10-31T00:40:00.000000Z"),
    ]:
        conn.execute(row, (status, trigger, scheduled))
    conn.commit()
    conn.close()
    store.open_db(tmp_path / "other.db")  # forget the connection to the file under the old schema
    store.open_db(path)
    assert store.schema_version() == store.SCHEMA_VERSION
    rows = (
        store.connection()
        .execute("SELECT status, trigger, attempt, scheduled_for, message FROM run")
        .fetchall()
    )
    assert [(status, attempt) for status, trigger, attempt, _, _ in rows if trigger == "schedule"] == [
        ("success", 1),
        ("skipped", 1),
        ("success", 2),
    ]
    assert "ran again by a daemon from before" in rows[2][4]
    assert [scheduled for _, trigger, _, scheduled, _ in rows if trigger == "manual"] == [None, None]
