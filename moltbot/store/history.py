"""Reading runs back: one, a task's latest, its current one, when tasks last ran; a run's playbook recap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from moltbot.records import RAN_RUN_STATES, Run
from moltbot.store.connection import from_db, is_postgresql, sql, write_transaction

__all__ = [
    "current_run",
    "get_run",
    "has_started_a_run",
    "last_finished_run",
    "last_ran",
    "recent_runs",
    "run_from_row",
    "set_run_recap",
]

RUN_COLUMNS = (
    "id, task_id, status, trigger, requested_by, attempt, scheduled_for, queued_at, started_at, finished_at, "
    "exit_code, message, stdout_tail, stderr_tail, log_path, owner_pid, stop_requested, recap, node"
)


def run_from_row(row: tuple[Any, ...]) -> Run:
    return Run(
        id=row[0],
        task_id=row[1],
        status=row[2],
        trigger=row[3],
        requested_by=row[4],
        attempt=row[5],
        scheduled_for=from_db(row[6]),
        queued_at=from_db(row[7]),
        started_at=from_db(row[8]),
        finished_at=from_db(row[9]),
        exit_code=row[10],
        message=row[11],
        stdout_tail=row[12],
        stderr_tail=row[13],
        log_path=row[14],
        owner_pid=row[15],
        stop_requested=bool(row[16]),
        recap=row[17],
        # Shown only when several nodes share the database: on SQLite every run is this box's.
        node=row[18] if is_postgresql() else None,
    )


def get_run(run_id: int) -> Run | None:
    row = sql(f"SELECT {RUN_COLUMNS} FROM run WHERE id = ?", (run_id,)).fetchone()
    return run_from_row(row) if row else None


def recent_runs(task_id: str, limit: int) -> list[Run]:
    """A task's runs, newest first."""
    rows = sql(f"SELECT {RUN_COLUMNS} FROM run WHERE task_id = ? ORDER BY id DESC LIMIT ?", (task_id, limit))
    return [run_from_row(row) for row in rows]


def current_run(task_id: str) -> Run | None:
    row = sql("SELECT current_run_id FROM task WHERE task_id = ?", (task_id,)).fetchone()
    return get_run(row[0]) if row and row[0] is not None else None


def last_finished_run(task_id: str) -> Run | None:
    """The task's latest run that started and ended (its output tails)."""
    row = sql(
        f"SELECT {RUN_COLUMNS} FROM run WHERE task_id = ? AND started_at IS NOT NULL "
        "AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
        (task_id,),
    ).fetchone()
    return run_from_row(row) if row else None


def has_started_a_run(task_id: str) -> bool:
    """Whether the task ever started a run (a one-shot that did is done)."""
    return (
        sql("SELECT 1 FROM run WHERE task_id = ? AND started_at IS NOT NULL LIMIT 1", (task_id,)).fetchone()
        is not None
    )


def last_ran(task_ids: Sequence[str]) -> dict[str, datetime]:
    """When each task's latest run that ran (not skipped, not missed) started; tasks without one
    are left out."""
    found: dict[str, datetime] = {}
    states = ", ".join(f"'{state}'" for state in RAN_RUN_STATES)
    for start in range(0, len(task_ids), 500):  # under SQLite's limit on parameters, old versions' too
        chunk = tuple(task_ids[start : start + 500])
        rows = sql(
            f"SELECT task_id, MAX(started_at) FROM run WHERE task_id IN ({', '.join('?' * len(chunk))}) "
            f"AND status IN ({states}) AND started_at IS NOT NULL GROUP BY task_id",
            chunk,
        )
        for task_id, started_at in rows:
            instant = from_db(started_at)
            assert instant is not None  # selected as not null
            found[task_id] = instant
    return found


def set_run_recap(run_id: int, recap: str) -> None:
    """Store a playbook run's recap (its process does, before it exits and the run ends)."""
    with write_transaction():
        sql("UPDATE run SET recap = ? WHERE id = ?", (recap, run_id))
