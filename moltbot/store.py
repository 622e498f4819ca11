"""The store: Peewee models on SQLite, their migrations, and every query.

The database is the source of truth for tasks, runs, checkpoints and events.
Nothing outside this module builds a query. Transactions that read and then
write start ``IMMEDIATE``: a deferred transaction that later upgrades to a
write lock gets SQLITE_BUSY at once instead of waiting, which the daemon and a
concurrent CLI would otherwise hit.

The daemon's per-run statements (find due tasks, claim, start, finish) are
hand-written SQL: Peewee spends ~250 us building each query, which made
every run start measurably late (see benchmarks/). Peewee still owns the
schema, the migrations and every cold path (CLI, config sync, status).

Times are stored as fixed-width UTC strings (``2026-11-23T09:00:00.000000Z``):
readable with the sqlite3 shell, and sortable as text, so ordering and the
``next_run`` index work on them directly.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from peewee import (
    AutoField,
    BooleanField,
    DatabaseProxy,
    Field,
    FloatField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
    fn,
)

if TYPE_CHECKING:
    from moltbot.runner import RunResult  # what finish_run records

__all__ = [
    "ACTIVE_RUN_STATES",
    "SCHEMA_VERSION",
    "Checkpoint",
    "Event",
    "Run",
    "Task",
    "database",
    "open_db",
]

UTC = UTC
database = DatabaseProxy()
_writer = threading.RLock()
TERMINAL_RUN_STATES = ("success", "failed", "timeout", "interrupted", "skipped", "missed")
ACTIVE_RUN_STATES = ("queued", "running")


def to_db(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; times must be aware")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class UTCDateTimeField(Field):
    """An aware datetime stored as a fixed-width UTC ISO-8601 string."""

    field_type = "TEXT"

    def db_value(self, value: datetime | None) -> str | None:
        return to_db(value)

    def python_value(self, value: str | None) -> datetime | None:
        return from_db(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False
        only_save_dirty = True  # an UPDATE names only the columns that changed


class Task(BaseModel):
    """A task's definition (as JSON) and its scheduling state."""

    task_id = TextField(primary_key=True)
    name = TextField()
    definition = TextField()  # the tasks.json entry, as loaded
    schedule_key = TextField()  # schedule text @ zone; a change re-anchors
    anchor = UTCDateTimeField()  # when this schedule was first registered
    priority = IntegerField(default=5)
    overlap = TextField(default="skip")  # skip | queue: may it come due while running?
    enabled = BooleanField(default=True)
    removed = BooleanField(default=False)  # gone from tasks.json; history kept
    status = TextField(default="idle")  # idle | running | paused | error
    next_run = UTCDateTimeField(null=True, index=True)
    last_run = UTCDateTimeField(null=True)  # when the last attempt started
    last_finished = UTCDateTimeField(null=True)
    last_status = TextField(null=True)
    run_count = IntegerField(default=0)
    error_count = IntegerField(default=0)
    last_error = TextField(null=True)
    paused_by = TextField(null=True)  # None | "user" | "shutdown"
    current_run_id = IntegerField(null=True)

    def spec(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.definition)
        return result


class Run(BaseModel):
    """One attempt (or one recorded non-attempt: skipped, missed)."""

    id = AutoField()
    task_id = TextField()
    status = TextField(index=True)  # queued running success failed timeout interrupted skipped missed
    trigger = TextField()  # schedule | manual | remote | retry | resume | recovery | overlap
    requested_by = TextField(null=True)
    attempt = IntegerField(default=1)
    scheduled_for = UTCDateTimeField(null=True)
    queued_at = UTCDateTimeField(null=True)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    exit_code = IntegerField(null=True)
    message = TextField(null=True)
    stdout_tail = TextField(null=True)
    stderr_tail = TextField(null=True)
    log_path = TextField(null=True)
    pgid = IntegerField(null=True)  # the task's process group while it runs
    owner_pid = IntegerField(null=True)  # the moltbot process supervising it
    stop_requested = BooleanField(default=False)

    class Meta:
        indexes = ((("task_id", "id"), False),)

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return float((self.finished_at - self.started_at).total_seconds())
        return None


class Checkpoint(BaseModel):
    task_id = TextField(primary_key=True)
    data = TextField()
    run_id = IntegerField(null=True)
    updated_at = UTCDateTimeField()


class Event(BaseModel):
    """The original scheduler's task_log: what happened, for ``moltbot logs``."""

    id = AutoField()
    timestamp = UTCDateTimeField(index=True)
    task_id = TextField()
    action = TextField()
    message = TextField()
    duration = FloatField(null=True)

    class Meta:
        indexes = ((("task_id", "id"), False),)


class Meta(BaseModel):
    key = TextField(primary_key=True)
    value = TextField()


MODELS = [Task, Run, Checkpoint, Event, Meta]


# --- opening and migrations ---------------------------------------------------------


def _migrate_1(db: SqliteDatabase) -> None:
    db.create_tables(MODELS)


# Each entry moves the schema up one version. Later ones use
# playhouse.migrate.SqliteMigrator (add_column, add_index, ...); the version
# lives in PRAGMA user_version so it is read without touching any table.
MIGRATIONS: list[Callable[[SqliteDatabase], None]] = [_migrate_1]
SCHEMA_VERSION = len(MIGRATIONS)


def open_db(path: Path) -> SqliteDatabase:
    """Open (creating and migrating as needed) the database and bind the models."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(
        str(path),
        timeout=15,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": 15000,
            "synchronous": "normal",  # WAL + NORMAL survives a process crash; fsync at checkpoints
            "foreign_keys": 1,
        },
    )
    database.initialize(db)
    db.connect(reuse_if_open=True)
    version = db.pragma("user_version")
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema {version}; this moltbot knows up to {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        with db.atomic("IMMEDIATE"):
            version = db.pragma("user_version")
            for migration in MIGRATIONS[version:]:
                migration(db)
            db.pragma("user_version", SCHEMA_VERSION)
    return db


@contextmanager
def write_transaction() -> Iterator[None]:
    # Threads of one process take turns here rather than in SQLite: a writer
    # that finds the database locked sleeps in SQLite's busy handler for
    # milliseconds at a time, which showed up directly as firing lateness.
    with _writer, database.atomic("IMMEDIATE"):
        yield


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict_replace().execute()


def get_meta(key: str) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else None


# --- events --------------------------------------------------------------------------


def _sql(query: str, params: tuple[Any, ...] = ()) -> Any:
    return database.execute_sql(query, params)


def add_event(at: datetime, task_id: str, action: str, message: str, duration: float | None = None) -> None:
    _sql(
        "INSERT INTO event (timestamp, task_id, action, message, duration) VALUES (?, ?, ?, ?, ?)",
        (to_db(at), task_id, action, message, duration),
    )


def recent_events(task_id: str | None, limit: int) -> list[Event]:
    query = Event.select()
    if task_id:
        query = query.where(Event.task_id == task_id)
    return list(query.order_by(Event.id.desc()).limit(limit))


# --- tasks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDefinition:
    """What the store needs of a spec to register or update a task."""

    task_id: str
    name: str
    definition: str
    schedule_key: str
    priority: int
    enabled: bool
    overlap: str


@dataclass
class SyncResult:
    added: list[str]
    changed: list[str]
    rescheduled: list[str]
    removed: list[str]


def sync_tasks(
    definitions: Iterable[TaskDefinition],
    now: datetime,
    first_run: Callable[[str, datetime], datetime | None],
) -> SyncResult:
    """Make the tasks table match the config. ``first_run(task_id, anchor)`` gives next_run."""
    result = SyncResult([], [], [], [])
    with write_transaction():
        existing = {task.task_id: task for task in Task.select()}
        seen = set()
        for item in definitions:
            seen.add(item.task_id)
            task = existing.get(item.task_id)
            if task is None:
                Task.create(
                    task_id=item.task_id,
                    name=item.name,
                    definition=item.definition,
                    schedule_key=item.schedule_key,
                    anchor=now,
                    priority=item.priority,
                    overlap=item.overlap,
                    enabled=item.enabled,
                    next_run=first_run(item.task_id, now) if item.enabled else None,
                )
                add_event(now, item.task_id, "added", "task added from config")
                result.added.append(item.task_id)
                continue
            reschedule = (
                task.schedule_key != item.schedule_key or task.removed or (item.enabled and not task.enabled)
            )
            if not (reschedule or task.definition != item.definition or task.name != item.name):
                continue
            task.name, task.definition, task.priority = item.name, item.definition, item.priority
            task.overlap = item.overlap
            if reschedule:
                task.anchor = now
                task.schedule_key = item.schedule_key
                task.next_run = first_run(item.task_id, now) if item.enabled else None
                result.rescheduled.append(item.task_id)
            elif not item.enabled:
                task.next_run = None
            task.enabled, task.removed = item.enabled, False
            task.status = derive_status(task)
            task.save()
            add_event(now, item.task_id, "changed", "definition changed in config")
            result.changed.append(item.task_id)
        for task_id, task in existing.items():
            if task_id not in seen and not task.removed:
                task.removed, task.next_run = True, None
                task.save()
                add_event(now, task_id, "removed", "task removed from config (history kept)")
                result.removed.append(task_id)
    return result


def derive_status(task: Task) -> str:
    """The one place the displayed status is computed from the task's state."""
    return status_of(task.current_run_id, task.paused_by, task.last_status)


def status_of(current_run_id: int | None, paused_by: str | None, last_status: str | None) -> str:
    if current_run_id is not None:
        return "running"
    if paused_by:
        return "paused"
    if last_status in ("failed", "timeout"):
        return "error"
    return "idle"


class TaskState(NamedTuple):
    """A task's row as status shows it (a plain tuple, no model: status on
    10 000 tasks must stay well under a second)."""

    task_id: str
    name: str
    status: str
    last_run: datetime | None
    next_run: datetime | None
    run_count: int
    error_count: int
    last_status: str | None
    last_error: str | None
    paused_by: str | None
    priority: int
    enabled: bool
    current_run_id: int | None


def task_states() -> list[TaskState]:
    rows = _sql(
        "SELECT task_id, name, status, last_run, next_run, run_count, error_count, last_status, last_error, "
        "paused_by, priority, enabled, current_run_id FROM task WHERE removed = 0 ORDER BY priority, task_id"
    ).fetchall()
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
        )
        for r in rows
    ]


def get_task(task_id: str) -> Task | None:
    return Task.get_or_none(Task.task_id == task_id)


def task_ids() -> list[str]:
    return [row.task_id for row in Task.select(Task.task_id).where(Task.removed == False)]  # noqa: E712


def list_tasks() -> list[Task]:
    return list(Task.select().where(Task.removed == False).order_by(Task.priority, Task.task_id))  # noqa: E712


# A task is schedulable when it has a next_run, is not paused, enabled, still
# in the config, and either idle or allowed to come due while running
# (overlap = skip, so the occurrence can be recorded as skipped).
_SCHEDULABLE = (
    "next_run IS NOT NULL AND paused_by IS NULL AND enabled = 1 AND removed = 0 "
    "AND (current_run_id IS NULL OR overlap = 'skip')"
)


@dataclass(frozen=True)
class DueTask:
    """What planning needs to know of a due task."""

    task_id: str
    next_run: datetime
    anchor: datetime
    current_run_id: int | None
    last_finished: datetime | None


def earliest_next_run() -> datetime | None:
    """When the next scheduled task is due (an index walk on next_run)."""
    row = _sql(f"SELECT next_run FROM task WHERE {_SCHEDULABLE} ORDER BY next_run LIMIT 1").fetchone()
    return from_db(row[0]) if row else None


def due_tasks(now: datetime, limit: int) -> list[DueTask]:
    """Tasks due at ``now``: highest priority (lowest number) first, then oldest due."""
    rows = _sql(
        "SELECT task_id, next_run, anchor, current_run_id, last_finished FROM task "
        f"WHERE {_SCHEDULABLE} AND next_run <= ? ORDER BY priority, next_run LIMIT ?",
        (to_db(now), limit),
    ).fetchall()
    return [DueTask(r[0], from_db(r[1]), from_db(r[2]), r[3], from_db(r[4])) for r in rows]  # type: ignore[arg-type]


def set_next_run(task_id: str, next_run: datetime | None) -> None:
    with write_transaction():
        Task.update(next_run=next_run).where(Task.task_id == task_id).execute()


def pause_task(task_id: str, by: str, now: datetime) -> Task:
    with write_transaction():
        task = Task.get(Task.task_id == task_id)
        task.paused_by = by
        if by == "user":
            task.next_run = None  # recomputed from the schedule on resume
        task.status = derive_status(task)
        task.save()
        add_event(now, task_id, "paused", f"paused by {by}")
        return task


def resume_task(task_id: str, next_run: datetime | None, now: datetime, message: str) -> Task:
    with write_transaction():
        task = Task.get(Task.task_id == task_id)
        task.paused_by = None
        task.next_run = next_run
        task.status = derive_status(task)
        task.save()
        add_event(now, task_id, "resumed", message)
        return task


def tasks_paused_by(by: str) -> list[Task]:
    return list(Task.select().where(Task.paused_by == by))


# --- runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTicket:
    """A run the executor is to carry out (or has recorded)."""

    id: int
    task_id: str
    attempt: int
    trigger: str
    requested_by: str | None
    scheduled_for: datetime | None
    started_at: datetime | None


def _insert_run(
    task_id: str,
    status: str,
    trigger: str,
    *,
    scheduled_for: datetime | None,
    queued_at: datetime,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    message: str | None = None,
    requested_by: str | None = None,
    attempt: int = 1,
) -> int:
    cursor = _sql(
        "INSERT INTO run (task_id, status, trigger, requested_by, attempt, scheduled_for, queued_at, "
        "started_at, finished_at, message, owner_pid, stop_requested) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (
            task_id,
            status,
            trigger,
            requested_by,
            attempt,
            to_db(scheduled_for),
            to_db(queued_at),
            to_db(started_at),
            to_db(finished_at),
            message,
            os.getpid() if started_at else None,
        ),
    )
    return int(cursor.lastrowid)


def record_run(
    task_id: str, status: str, trigger: str, scheduled_for: datetime | None, now: datetime, message: str
) -> int:
    """Record a run that did not execute (skipped or missed), with its event."""
    run_id = _insert_run(
        task_id, status, trigger, scheduled_for=scheduled_for, queued_at=now, finished_at=now, message=message
    )
    add_event(now, task_id, status, message)
    return run_id


def _start(
    task_id: str,
    trigger: str,
    now: datetime,
    *,
    scheduled_for: datetime | None,
    requested_by: str | None = None,
    attempt: int = 1,
    queued_run: int | None = None,
) -> RunTicket:
    """Inside a write transaction: a running row that owns its task."""
    if queued_run is None:
        run_id = _insert_run(
            task_id,
            "running",
            trigger,
            scheduled_for=scheduled_for,
            queued_at=now,
            started_at=now,
            requested_by=requested_by,
            attempt=attempt,
        )
    else:
        run_id = queued_run
        _sql(
            "UPDATE run SET status = 'running', started_at = ?, owner_pid = ? WHERE id = ?",
            (to_db(now), os.getpid(), run_id),
        )
    _sql("UPDATE task SET current_run_id = ?, status = 'running' WHERE task_id = ?", (run_id, task_id))
    add_event(now, task_id, "started", f"run {run_id} started ({trigger})")
    return RunTicket(run_id, task_id, attempt, trigger, requested_by, scheduled_for, now)


def enqueue_run(
    task_id: str,
    trigger: str,
    requested_by: str | None,
    now: datetime,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
) -> Run:
    """A promise to run: written down first, started by the daemon."""
    with write_transaction():
        run = Run.create(
            task_id=task_id,
            status="queued",
            trigger=trigger,
            requested_by=requested_by,
            queued_at=now,
            scheduled_for=scheduled_for or now,
            attempt=attempt,
        )
        add_event(
            now,
            task_id,
            "queued",
            f"run {run.id} queued ({trigger}{', by ' + requested_by if requested_by else ''})",
        )
        return run


def queued_runs(limit: int) -> list[Run]:
    """Queued runs of tasks that are not running, in priority order."""
    return list(
        Run.select(Run)
        .join(Task, on=(Run.task_id == Task.task_id))
        .where((Run.status == "queued") & Task.current_run_id.is_null())
        .order_by(Task.priority, Run.id)
        .limit(limit)
    )


def has_queued_runs() -> bool:
    return _sql("SELECT 1 FROM run WHERE status = 'queued' LIMIT 1").fetchone() is not None


def start_queued(run_id: int, now: datetime) -> tuple[RunTicket | None, str | None]:
    """Start a queued run; returns its ticket, or None and why it was not started."""
    with write_transaction():
        run = Run.get_by_id(run_id)
        if run.status != "queued":
            return None, f"run {run_id} is {run.status}"
        task = Task.get_or_none(Task.task_id == run.task_id)
        if task is None or task.removed:
            _finish_unstarted(run, "skipped", now, "task no longer exists")
            return None, "task no longer exists"
        if task.current_run_id is not None:
            # Callers only see queued runs of idle tasks, so this is a race
            # with a concurrent claim; leave it queued for the next pass.
            return None, "task is running"
        ticket = _start(
            run.task_id,
            run.trigger,
            now,
            scheduled_for=run.scheduled_for,
            requested_by=run.requested_by,
            attempt=run.attempt,
            queued_run=run.id,
        )
        return ticket, None


def _finish_unstarted(run: Run, status: str, now: datetime, message: str) -> None:
    run.status, run.finished_at, run.message = status, now, message
    run.save()
    add_event(now, run.task_id, status, f"run {run.id}: {message}")


def skip_queued(run_id: int, now: datetime, message: str) -> Run:
    with write_transaction():
        run = Run.get_by_id(run_id)
        if run.status == "queued":
            _finish_unstarted(run, "skipped", now, message)
        return run


def set_run_process(run_id: int, pgid: int) -> None:
    with write_transaction():
        _sql("UPDATE run SET pgid = ? WHERE id = ?", (pgid, run_id))


def get_run(run_id: int) -> Run | None:
    return Run.get_or_none(Run.id == run_id)


def current_run(task_id: str) -> Run | None:
    task = get_task(task_id)
    if task is None or task.current_run_id is None:
        return None
    return get_run(task.current_run_id)


def last_finished_run(task_id: str) -> Run | None:
    found: Run | None = (
        Run.select()
        .where((Run.task_id == task_id) & Run.started_at.is_null(False) & Run.finished_at.is_null(False))
        .order_by(Run.id.desc())
        .first()
    )
    return found


def request_stop(task_id: str, now: datetime) -> Run | None:
    with write_transaction():
        run = current_run(task_id)
        if run is None:
            return None
        run.stop_requested = True
        run.save()
        add_event(now, task_id, "stop_requested", f"stop requested for run {run.id}")
        return run


def runs_with_stop_requested() -> list[Run]:
    return list(Run.select().where((Run.status == "running") & (Run.stop_requested == True)))  # noqa: E712


def finish_run(
    ticket: RunTicket, outcome: RunResult, *, release_task: bool, pause_by: str | None = None
) -> None:
    """Record an attempt's end; ``release_task`` False while a retry follows."""
    duration = (outcome.finished_at - outcome.started_at).total_seconds()
    failed = outcome.status in ("failed", "timeout")
    with write_transaction():
        _sql(
            "UPDATE run SET status = ?, exit_code = ?, message = ?, finished_at = ?, stdout_tail = ?, "
            "stderr_tail = ?, log_path = ? WHERE id = ?",
            (
                outcome.status,
                outcome.exit_code,
                outcome.message,
                to_db(outcome.finished_at),
                outcome.stdout_tail,
                outcome.stderr_tail,
                str(outcome.log_path) if outcome.log_path else None,
                ticket.id,
            ),
        )
        action = {"success": "completed"}.get(outcome.status, outcome.status)
        add_event(
            outcome.finished_at, ticket.task_id, action, f"run {ticket.id}: {outcome.message}", duration
        )
        row = _sql(
            "SELECT current_run_id, paused_by, last_status, last_finished FROM task WHERE task_id = ?",
            (ticket.task_id,),
        ).fetchone()
        if row is None:
            return
        current_run_id, paused_by, last_status, last_finished = row
        if outcome.status != "interrupted" or pause_by:
            last_status = outcome.status
        if release_task:
            current_run_id, last_finished = None, to_db(outcome.finished_at)
        paused_by = pause_by or paused_by
        _sql(
            "UPDATE task SET last_run = ?, run_count = run_count + 1, error_count = error_count + ?, "
            "last_error = CASE WHEN ? THEN ? ELSE last_error END, last_status = ?, current_run_id = ?, "
            "last_finished = ?, paused_by = ?, status = ? WHERE task_id = ?",
            (
                to_db(outcome.started_at),
                int(failed),
                failed,
                outcome.message,
                last_status,
                current_run_id,
                last_finished,
                paused_by,
                status_of(current_run_id, paused_by, last_status),
                ticket.task_id,
            ),
        )


def begin_retry(previous: RunTicket, now: datetime) -> RunTicket:
    """The next attempt of a failed run: a new row that keeps owning the task."""
    with write_transaction():
        return _start(
            previous.task_id,
            "retry",
            now,
            scheduled_for=previous.scheduled_for,
            requested_by=previous.requested_by,
            attempt=previous.attempt + 1,
        )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_abandoned_runs(now: datetime) -> list[Run]:
    """After a crash (kill -9): runs left running become interrupted, tasks freed.

    A run whose supervising process is still alive (a foreground ``moltbot
    run``) is left alone. The process group of an abandoned run is killed:
    nobody supervises it any more, and its task will be run again by policy.
    """
    with write_transaction():
        abandoned = []
        for run in Run.select().where(Run.status == "running"):
            if run.owner_pid != os.getpid() and _alive(run.owner_pid):
                continue
            if run.pgid:
                try:
                    os.killpg(run.pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            run.status, run.finished_at = "interrupted", now
            run.message = "interrupted: the daemon stopped without shutting down (crash or kill -9)"
            run.save()
            add_event(now, run.task_id, "interrupted", f"run {run.id}: {run.message}")
            abandoned.append(run)
        for run in abandoned:
            task = Task.get_or_none(Task.task_id == run.task_id)
            if task is not None and task.current_run_id == run.id:
                task.current_run_id = None
                task.last_status = "interrupted"
                task.status = derive_status(task)
                task.save()
        return abandoned


def recent_runs(task_id: str, limit: int) -> list[Run]:
    return list(Run.select().where(Run.task_id == task_id).order_by(Run.id.desc()).limit(limit))


def prune(before: datetime) -> tuple[int, list[str]]:
    """Delete finished runs and events older than ``before``; return log files to delete."""
    with write_transaction():
        old = Run.select(Run.id, Run.log_path).where(
            Run.finished_at.is_null(False) & (Run.finished_at < before) & Run.status.in_(TERMINAL_RUN_STATES)
        )
        logs = [row.log_path for row in old if row.log_path]
        deleted = (
            Run.delete()
            .where(
                Run.finished_at.is_null(False)
                & (Run.finished_at < before)
                & Run.status.in_(TERMINAL_RUN_STATES)
            )
            .execute()
        )
        Event.delete().where(Event.timestamp < before).execute()
        return deleted, logs


# --- checkpoints --------------------------------------------------------------------------


def load_checkpoint(task_id: str) -> str | None:
    row = _sql("SELECT data FROM checkpoint WHERE task_id = ?", (task_id,)).fetchone()
    return row[0] if row else None


def save_checkpoint(task_id: str, data: str, run_id: int | None, now: datetime) -> None:
    Checkpoint.insert(
        task_id=task_id, data=data, run_id=run_id, updated_at=now
    ).on_conflict_replace().execute()


def clear_checkpoint(task_id: str) -> bool:
    return bool(Checkpoint.delete().where(Checkpoint.task_id == task_id).execute())


def count_runs() -> int:
    return int(Run.select(fn.COUNT(Run.id)).scalar() or 0)


# (run_for, next_run, [(status, scheduled_for, message), ...]), or None: leave the task alone
Decision = tuple[datetime | None, datetime | None, list[tuple[str, datetime, str]]] | None
PlanFn = Callable[[DueTask], Decision]


def apply_plan(task_id: str, now: datetime, plan: PlanFn, trigger: str = "schedule") -> RunTicket | None:
    """Claim a due task in one transaction: record what is not run, advance
    next_run, and create the running row if ``plan`` says to run.

    ``plan(task)`` sees the row as re-read inside the transaction, so two
    claimers can never both run the same occurrence.
    """
    with write_transaction():
        row = _sql(
            "SELECT next_run, anchor, current_run_id, last_finished FROM task "
            "WHERE task_id = ? AND next_run <= ? AND paused_by IS NULL",
            (task_id, to_db(now)),
        ).fetchone()
        if row is None:
            return None
        task = DueTask(task_id, from_db(row[0]), from_db(row[1]), row[2], from_db(row[3]))  # type: ignore[arg-type]
        decision = plan(task)
        if decision is None:
            return None
        run_for, next_run, records = decision
        for status, scheduled_for, message in records:
            record_run(task_id, status, trigger, scheduled_for, now, message)
        _sql("UPDATE task SET next_run = ? WHERE task_id = ?", (to_db(next_run), task_id))
        if run_for is None or task.current_run_id is not None:
            return None
        return _start(task_id, trigger, now, scheduled_for=run_for)
