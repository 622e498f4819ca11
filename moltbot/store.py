"""The store: Peewee models on SQLite, their migrations, and every query.

The database is the source of truth for tasks, runs, checkpoints and events.
Nothing outside this module builds a query. Transactions that read and then
write start ``IMMEDIATE``: a deferred transaction that later upgrades to a
write lock gets SQLITE_BUSY at once instead of waiting, which the daemon and a
concurrent CLI would otherwise hit.

Times are stored as fixed-width UTC strings (``2026-11-23T09:00:00.000000Z``):
readable with the sqlite3 shell, and sortable as text, so ordering and the
``next_run`` index work on them directly.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
TERMINAL_RUN_STATES = ("success", "failed", "timeout", "interrupted", "skipped", "missed")
ACTIVE_RUN_STATES = ("queued", "running")


class UTCDateTimeField(Field):
    """An aware datetime stored as a fixed-width UTC ISO-8601 string."""

    field_type = "TEXT"

    def db_value(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be aware")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def python_value(self, value: str | None) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


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
            return (self.finished_at - self.started_at).total_seconds()
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
    with database.atomic("IMMEDIATE"):
        yield


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict_replace().execute()


def get_meta(key: str) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else None


# --- events --------------------------------------------------------------------------


def add_event(at: datetime, task_id: str, action: str, message: str, duration: float | None = None) -> None:
    Event.create(timestamp=at, task_id=task_id, action=action, message=message, duration=duration)


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
    if task.current_run_id is not None:
        return "running"
    if task.paused_by:
        return "paused"
    if task.last_status in ("failed", "timeout"):
        return "error"
    return "idle"


def get_task(task_id: str) -> Task | None:
    return Task.get_or_none(Task.task_id == task_id)


def task_ids() -> list[str]:
    return [row.task_id for row in Task.select(Task.task_id).where(Task.removed == False)]  # noqa: E712


def list_tasks() -> list[Task]:
    return list(Task.select().where(Task.removed == False).order_by(Task.priority, Task.task_id))  # noqa: E712


def _schedulable() -> Any:
    return (
        Task.next_run.is_null(False)
        & Task.paused_by.is_null()
        & (Task.current_run_id.is_null() | (Task.overlap == "skip"))
        & (Task.enabled == True)  # noqa: E712
        & (Task.removed == False)  # noqa: E712
    )


def earliest_next_run() -> datetime | None:
    """When the next scheduled task is due (index walk on next_run)."""
    row = Task.select(Task.next_run).where(_schedulable()).order_by(Task.next_run).limit(1).first()
    return row.next_run if row else None


def due_tasks(now: datetime, limit: int) -> list[Task]:
    """Tasks due at ``now``: highest priority (lowest number) first, then oldest due."""
    return list(
        Task.select()
        .where(_schedulable() & (Task.next_run <= now))
        .order_by(Task.priority, Task.next_run)
        .limit(limit)
    )


def set_next_run(task_id: str, next_run: datetime | None) -> None:
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


def record_run(
    task_id: str, status: str, trigger: str, scheduled_for: datetime | None, now: datetime, message: str
) -> Run:
    """Record a run that did not execute (skipped or missed), with its event."""
    run = Run.create(
        task_id=task_id,
        status=status,
        trigger=trigger,
        scheduled_for=scheduled_for,
        queued_at=now,
        finished_at=now,
        message=message,
    )
    add_event(now, task_id, status, message)
    return run


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
    return Run.select().where(Run.status == "queued").exists()


def mark_started(run: Run, task: Task, now: datetime) -> None:
    """Inside a write transaction: the run is running and owns its task."""
    run.status, run.started_at, run.owner_pid = "running", now, os.getpid()
    run.save()
    task.current_run_id = run.id
    task.status = derive_status(task)
    task.save()
    add_event(now, task.task_id, "started", f"run {run.id} started ({run.trigger})")


def start_queued(run_id: int, now: datetime) -> tuple[Run, str | None]:
    """Start a queued run; returns the run and, if it was not started, why."""
    with write_transaction():
        run = Run.get_by_id(run_id)
        if run.status != "queued":
            return run, f"run {run_id} is {run.status}"
        task = Task.get_or_none(Task.task_id == run.task_id)
        if task is None or task.removed:
            _finish_unstarted(run, "skipped", now, "task no longer exists")
            return run, "task no longer exists"
        if task.current_run_id is not None:
            # Callers only see queued runs of idle tasks, so this is a race
            # with a concurrent claim; leave it queued for the next pass.
            return run, "task is running"
        mark_started(run, task, now)
        return run, None


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


def set_run_process(run_id: int, pgid: int, log_path: str) -> None:
    Run.update(pgid=pgid, log_path=log_path).where(Run.id == run_id).execute()


def get_run(run_id: int) -> Run | None:
    return Run.get_or_none(Run.id == run_id)


def current_run(task_id: str) -> Run | None:
    task = get_task(task_id)
    if task is None or task.current_run_id is None:
        return None
    return get_run(task.current_run_id)


def last_finished_run(task_id: str) -> Run | None:
    return (
        Run.select()
        .where((Run.task_id == task_id) & Run.started_at.is_null(False) & Run.finished_at.is_null(False))
        .order_by(Run.id.desc())
        .first()
    )


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


@dataclass(frozen=True)
class Outcome:
    """What the runner reports about a finished attempt."""

    status: str  # success | failed | timeout | interrupted
    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    message: str
    stdout_tail: str
    stderr_tail: str


def finish_run(run_id: int, outcome: Outcome, *, release_task: bool, pause_by: str | None = None) -> Run:
    """Record an attempt's end; ``release_task`` False while a retry follows."""
    with write_transaction():
        run = Run.get_by_id(run_id)
        run.status, run.exit_code, run.message = outcome.status, outcome.exit_code, outcome.message
        run.finished_at = outcome.finished_at
        run.stdout_tail, run.stderr_tail = outcome.stdout_tail, outcome.stderr_tail
        run.save()
        task = Task.get_or_none(Task.task_id == run.task_id)
        duration = (outcome.finished_at - outcome.started_at).total_seconds()
        action = {"success": "completed"}.get(outcome.status, outcome.status)
        add_event(outcome.finished_at, run.task_id, action, f"run {run.id}: {outcome.message}", duration)
        if task is None:
            return run
        task.last_run = outcome.started_at
        task.run_count += 1
        if outcome.status in ("failed", "timeout"):
            task.error_count += 1
            task.last_error = outcome.message
        if outcome.status != "interrupted" or pause_by:
            task.last_status = outcome.status
        if release_task:
            task.current_run_id = None
            task.last_finished = outcome.finished_at
        if pause_by:
            task.paused_by = pause_by
        task.status = derive_status(task)
        task.save()
        return run


def begin_retry(previous: Run, now: datetime) -> Run:
    """The next attempt of a failed run: a new row that keeps owning the task."""
    with write_transaction():
        run = Run.create(
            task_id=previous.task_id,
            status="queued",
            trigger="retry",
            requested_by=previous.requested_by,
            attempt=previous.attempt + 1,
            scheduled_for=previous.scheduled_for,
            queued_at=now,
        )
        task = Task.get(Task.task_id == previous.task_id)
        mark_started(run, task, now)
        return run


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
    row = Checkpoint.get_or_none(Checkpoint.task_id == task_id)
    return row.data if row else None


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
PlanFn = Callable[[Task], Decision]


def apply_plan(task_id: str, now: datetime, plan: PlanFn, trigger: str = "schedule") -> Run | None:
    """Claim a due task in one transaction: record what is not run, advance
    next_run, and create the running row if ``plan`` says to run.

    ``plan(task)`` returns (run_for, next_run, records) or None to leave the
    task alone; it sees the row as re-read inside the transaction, so two
    claimers can never both run the same occurrence.
    """
    with write_transaction():
        task = Task.get_or_none(Task.task_id == task_id)
        if task is None or task.next_run is None or task.next_run > now or task.paused_by:
            return None
        decision = plan(task)
        if decision is None:
            return None
        run_for, next_run, records = decision
        for status, scheduled_for, message in records:
            record_run(task_id, status, trigger, scheduled_for, now, message)
        task.next_run = next_run
        if run_for is None or task.current_run_id is not None:
            task.save()
            return None
        run = Run.create(
            task_id=task_id, status="queued", trigger=trigger, scheduled_for=run_for, queued_at=now
        )
        mark_started(run, task, now)
        return run
