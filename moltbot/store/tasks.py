"""Task rows: registering definitions, pausing and resuming, and the queries planning needs.

``task_states`` and the due queries are on hot paths (``status`` on 10 000
tasks; the daemon's loop), so they build tuples straight from the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

from moltbot.records import Task, TaskState
from moltbot.store.chains import chains_by_task, rebuild_chains
from moltbot.store.connection import from_db, sql, to_db, write_transaction
from moltbot.store.events import add_event

__all__ = [
    "DueTask",
    "SyncResult",
    "TaskDefinition",
    "due_tasks",
    "earliest_next_run",
    "get_task",
    "list_tasks",
    "pause_task",
    "resume_task",
    "set_next_run",
    "status_of",
    "sync_tasks",
    "task_states",
    "tasks_paused_by",
]

_TASK_COLUMNS = (
    "task_id, name, definition, schedule_key, anchor, priority, overlap, enabled, removed, status, next_run, "
    "last_run, last_finished, last_status, run_count, error_count, last_error, paused_by, current_run_id"
)
PRIORITIES = range(1, 11)  # 1 = highest; the config enforces the range


def status_of(current_run_id: int | None, paused_by: str | None, last_status: str | None) -> str:
    """The one place the displayed status is derived from a task's state."""
    if current_run_id is not None:
        return "running"
    if paused_by:
        return "paused"
    if last_status in ("failed", "timeout"):
        return "error"
    return "idle"


def _task(row: tuple[Any, ...]) -> Task:
    anchor = from_db(row[4])
    assert anchor is not None
    return Task(
        task_id=row[0],
        name=row[1],
        definition=row[2],
        schedule_key=row[3],
        anchor=anchor,
        priority=row[5],
        overlap=row[6],
        enabled=bool(row[7]),
        removed=bool(row[8]),
        status=row[9],
        next_run=from_db(row[10]),
        last_run=from_db(row[11]),
        last_finished=from_db(row[12]),
        last_status=row[13],
        run_count=row[14],
        error_count=row[15],
        last_error=row[16],
        paused_by=row[17],
        current_run_id=row[18],
    )


def get_task(task_id: str) -> Task | None:
    row = sql(f"SELECT {_TASK_COLUMNS} FROM task WHERE task_id = ?", (task_id,)).fetchone()
    return _task(row) if row else None


def list_tasks() -> list[Task]:
    """The tasks still defined somewhere, highest priority first."""
    query = f"SELECT {_TASK_COLUMNS} FROM task WHERE removed = FALSE ORDER BY priority, task_id"
    rows = sql(query).fetchall()
    return [_task(row) for row in rows]


def tasks_paused_by(by: str) -> list[Task]:
    rows = sql(f"SELECT {_TASK_COLUMNS} FROM task WHERE paused_by = ?", (by,)).fetchall()
    return [_task(row) for row in rows]


def task_states() -> list[TaskState]:
    rows = sql(
        "SELECT task_id, name, status, last_run, next_run, run_count, error_count, last_status, last_error, "
        "paused_by, priority, enabled, current_run_id, schedule_key FROM task WHERE removed = FALSE "
        "ORDER BY priority, task_id"
    ).fetchall()
    chains = chains_by_task()
    return [
        TaskState(
            r[0],
            r[1],
            r[2],
            from_db(r[3]),
            from_db(r[4]),
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            bool(r[11]),
            r[12],
            r[13],
            after=chains.get(r[0], ((), ()))[0],
            after_failure=chains.get(r[0], ((), ()))[1],
        )
        for r in rows
    ]


# --- registering definitions -------------------------------------------------------------


class TaskDefinition(NamedTuple):
    """What the store needs of a spec to register or update a task."""

    task_id: str
    name: str
    definition: str
    schedule_key: str
    priority: int
    enabled: bool
    overlap: str
    anchor: datetime | None = None  # set by the source (a Discord task's next_run); else registration time


class SyncResult(NamedTuple):
    """What a sync did, by task id."""

    added: list[str]
    changed: list[str]
    rescheduled: list[str]
    removed: list[str]


def sync_tasks(
    definitions: Iterable[TaskDefinition],
    now: datetime,
    first_run: Callable[[str, datetime], datetime | None],
    scope: Callable[[str], bool] = lambda task_id: True,
) -> SyncResult:
    """Make the tasks ``scope`` covers match ``definitions`` (one source: tasks.json, or the
    Discord channel); ``first_run(task_id, anchor)`` gives next_run. Tasks outside the scope
    are left alone, so one source never removes the other's."""
    result = SyncResult([], [], [], [])
    with write_transaction():
        existing = {task.task_id: task for task in map(_task, sql(f"SELECT {_TASK_COLUMNS} FROM task"))}
        for item in definitions:
            task = existing.pop(item.task_id, None)
            if task is None:
                _insert(item, now, first_run(item.task_id, now) if item.enabled else None)
                add_event(now, item.task_id, "added", "task added from config")
                result.added.append(item.task_id)
            elif _update(task, item, now, first_run, result):
                add_event(now, item.task_id, "changed", "definition changed in config")
                result.changed.append(item.task_id)
        for task_id, task in existing.items():  # the ones no longer defined
            if not task.removed and scope(task_id):
                sql("UPDATE task SET removed = TRUE, next_run = NULL WHERE task_id = ?", (task_id,))
                add_event(now, task_id, "removed", "task removed from config (history kept)")
                result.removed.append(task_id)
        rebuild_chains()
    return result


def _insert(item: TaskDefinition, now: datetime, next_run: datetime | None) -> None:
    sql(
        "INSERT INTO task (task_id, name, definition, schedule_key, anchor, priority, overlap, enabled, "
        "removed, status, next_run, run_count, error_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, 'idle', ?, 0, 0)",
        (
            item.task_id,
            item.name,
            item.definition,
            item.schedule_key,
            to_db(item.anchor or now),
            item.priority,
            item.overlap,
            item.enabled,
            to_db(next_run),
        ),
    )


def _update(
    task: Task,
    item: TaskDefinition,
    now: datetime,
    first_run: Callable[[str, datetime], datetime | None],
    result: SyncResult,
) -> bool:
    """Bring one registered task up to its definition; False when nothing changed."""
    reschedule = task.schedule_key != item.schedule_key or task.removed or (item.enabled and not task.enabled)
    if not (reschedule or task.definition != item.definition or task.name != item.name):
        return False
    anchor, next_run = task.anchor, task.next_run
    if reschedule:
        anchor = item.anchor or now
        next_run = first_run(item.task_id, now) if item.enabled else None
        result.rescheduled.append(item.task_id)
    elif not item.enabled:
        next_run = None
    sql(
        "UPDATE task SET name = ?, definition = ?, priority = ?, overlap = ?, anchor = ?, schedule_key = ?, "
        "next_run = ?, enabled = ?, removed = FALSE, status = ? WHERE task_id = ?",
        (
            item.name,
            item.definition,
            item.priority,
            item.overlap,
            to_db(anchor),
            item.schedule_key,
            to_db(next_run),
            item.enabled,
            status_of(task.current_run_id, task.paused_by, task.last_status),
            item.task_id,
        ),
    )
    return True


# --- pausing -------------------------------------------------------------------------------


def pause_task(task_id: str, by: str, now: datetime, reason: str | None = None) -> Task:
    """Paused by ``by`` (user, shutdown, discord); a user's pause also drops next_run
    (recomputed from the schedule on resume)."""
    with write_transaction():
        sql(
            "UPDATE task SET paused_by = ?, next_run = CASE WHEN ? THEN NULL ELSE next_run END, "
            "status = CASE WHEN current_run_id IS NULL THEN 'paused' ELSE 'running' END WHERE task_id = ?",
            (by, by == "user", task_id),
        )
        add_event(now, task_id, "paused", reason or f"paused by {by}")
        return _existing(task_id)


def resume_task(task_id: str, next_run: datetime | None, now: datetime, message: str) -> Task:
    with write_transaction():
        task = _existing(task_id)
        sql(
            "UPDATE task SET paused_by = NULL, next_run = ?, status = ? WHERE task_id = ?",
            (to_db(next_run), status_of(task.current_run_id, None, task.last_status), task_id),
        )
        add_event(now, task_id, "resumed", message)
        return _existing(task_id)


def _existing(task_id: str) -> Task:
    task = get_task(task_id)
    if task is None:
        raise LookupError(f"no task {task_id!r}")
    return task


# --- what is due (the daemon's loop) ---------------------------------------------------------

# A task is schedulable when it has a next_run, is not paused, enabled, still
# in the config, and either idle or allowed to come due while running
# (overlap = skip, so the occurrence can be recorded as skipped).
SCHEDULABLE = (
    "next_run IS NOT NULL AND paused_by IS NULL AND enabled = TRUE AND removed = FALSE "
    "AND (current_run_id IS NULL OR overlap = 'skip')"
)
DUE_COLUMNS = (
    "task_id, next_run, anchor, current_run_id, last_finished, "
    "(SELECT COUNT(*) FROM run WHERE run.status = 'queued' AND run.task_id = task.task_id)"
)


class DueTask(NamedTuple):
    """What planning needs to know of a due task."""

    task_id: str
    next_run: datetime
    anchor: datetime
    current_run_id: int | None
    last_finished: datetime | None
    queued_runs: int  # runs written down to start when the task is free (a catch-up, a request)


def due_task(row: tuple[Any, ...]) -> DueTask:
    next_run, anchor = from_db(row[1]), from_db(row[2])
    assert next_run is not None and anchor is not None  # selected as due, so both are set
    return DueTask(row[0], next_run, anchor, row[3], from_db(row[4]), row[5])


def earliest_next_run() -> datetime | None:
    """When the next scheduled task is due (an index walk on next_run)."""
    row = sql(f"SELECT next_run FROM task WHERE {SCHEDULABLE} ORDER BY next_run LIMIT 1").fetchone()
    return from_db(row[0]) if row else None


def due_tasks(now: datetime, limit: int) -> list[DueTask]:
    """Tasks due at ``now``: highest priority (lowest number) first, then oldest due.

    One index seek per priority level, stopping once ``limit`` are found: a
    single ORDER BY sorted every due row, ~260 us per call with 1 000 due.
    """
    found: list[DueTask] = []
    if limit <= 0:
        return found
    stamp = to_db(now)
    for priority in PRIORITIES:
        rows = sql(
            f"SELECT {DUE_COLUMNS} FROM task "
            f"WHERE priority = ? AND next_run <= ? AND {SCHEDULABLE} ORDER BY next_run LIMIT ?",
            (priority, stamp, limit - len(found)),
        ).fetchall()
        found += [due_task(row) for row in rows]
        if len(found) >= limit:
            break
    return found


def set_next_run(task_id: str, next_run: datetime | None) -> None:
    with write_transaction():
        sql("UPDATE task SET next_run = ? WHERE task_id = ?", (to_db(next_run), task_id))
