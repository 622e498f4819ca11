"""Peewee models, migrations and the cold-path queries of the store.

Loaded on first use (see ``moltbot.store``); it runs on the store's own
per-thread connection, so its statements join the store's transactions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
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
)
from playhouse.migrate import SqliteMigrator
from playhouse.migrate import migrate as migrate_schema

from moltbot.store import (
    SCHEMA_VERSION,
    TERMINAL_RUN_STATES,
    RunTicket,
    _start,
    add_event,
    connection,
    from_db,
    status_of,
    to_db,
    write_transaction,
)


class _StoreConnection(SqliteDatabase):
    """Peewee on the store's connection for this thread (it never opens or closes its own)."""

    def _connect(self) -> Any:
        return connection()

    def _close(self, conn: Any) -> None:
        pass  # the store owns it


database = DatabaseProxy()
database.initialize(_StoreConnection("moltbot-store"))


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
    owner_pid = IntegerField(null=True)  # the moltbot process supervising it
    stop_requested = BooleanField(default=False)
    recap = TextField(null=True)  # playbook runs: the per-host recap, JSON (moltbot/playbooks.py)

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


def _migrate_1(db: DatabaseProxy) -> None:
    db.create_tables(MODELS)


# Each entry moves the schema up one version, using playhouse.migrate's
# SqliteMigrator (add_column, add_index, ...); the version lives in PRAGMA
# user_version so it is read without touching any table.
def _migrate_2(db: DatabaseProxy) -> None:
    """Due tasks are found per priority level (see store.due_tasks)."""
    migrator = SqliteMigrator(db.obj)
    migrate_schema(migrator.add_index("task", ("priority", "next_run"), False))


def _migrate_3(db: DatabaseProxy) -> None:
    """Chat traffic: inbox, outbox, run watchers (moltbot/store/messages.py)."""
    from moltbot.store import messages

    messages.create_tables()


def _migrate_4(db: DatabaseProxy) -> None:
    """Playbook runs keep their per-host recap (``run.recap``)."""
    # A database created at schema 1 by this version already has it (create_tables uses the models).
    if "recap" not in {column.name for column in db.get_columns("run")}:
        migrate_schema(SqliteMigrator(db.obj).add_column("run", "recap", Run.recap))


MIGRATIONS: list[Callable[[DatabaseProxy], None]] = [_migrate_1, _migrate_2, _migrate_3, _migrate_4]


def recent_events(task_id: str | None, limit: int) -> list[Event]:
    query = Event.select()
    if task_id:
        query = query.where(Event.task_id == task_id)
    return list(query.order_by(Event.id.desc()).limit(limit))


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
    anchor: datetime | None = None  # set by the source (a Discord task's next_run); else registration time


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
    scope: Callable[[str], bool] = lambda task_id: True,
) -> SyncResult:
    """Make the tasks ``scope`` covers match ``definitions`` (one source: tasks.json, or the
    Discord channel); ``first_run(task_id, anchor)`` gives next_run. Tasks outside the scope
    are left alone, so one source never removes the other's."""
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
                    anchor=item.anchor or now,
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
                task.anchor = item.anchor or now
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
            if task_id not in seen and not task.removed and scope(task_id):
                task.removed, task.next_run = True, None
                task.save()
                add_event(now, task_id, "removed", "task removed from config (history kept)")
                result.removed.append(task_id)
    return result


def derive_status(task: Task) -> str:
    """The one place the displayed status is computed from the task's state."""
    return status_of(task.current_run_id, task.paused_by, task.last_status)


def get_task(task_id: str) -> Task | None:
    return Task.get_or_none(Task.task_id == task_id)


def list_tasks() -> list[Task]:
    return list(Task.select().where(Task.removed == False).order_by(Task.priority, Task.task_id))  # noqa: E712


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


def get_run(run_id: int) -> Run | None:
    return Run.get_or_none(Run.id == run_id)


def set_run_recap(run_id: int, recap: str) -> None:
    """Store a playbook run's recap (its process does, before it exits and the run ends)."""
    with write_transaction():
        Run.update(recap=recap).where(Run.id == run_id).execute()


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
    run``) is left alone. The caller kills what an abandoned run left running
    (``runner.processes_of_run``): nobody supervises it any more.
    """
    with write_transaction():
        abandoned = []
        for run in Run.select().where(Run.status == "running"):
            if run.owner_pid != os.getpid() and _alive(run.owner_pid):
                continue
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


PRUNE_BATCH = 2000


def prune(before: datetime) -> tuple[int, list[str]]:
    """Delete finished runs and events older than ``before``; return log files to delete.

    In batches of short transactions, oldest first: one transaction over a
    large backlog would hold the write lock, and every run start, for seconds.
    """
    deleted, logs = 0, []
    finished_long_ago = (
        Run.finished_at.is_null(False) & (Run.finished_at < before) & Run.status.in_(TERMINAL_RUN_STATES)
    )
    while True:
        with write_transaction():
            batch = list(
                Run.select(Run.id, Run.log_path).where(finished_long_ago).order_by(Run.id).limit(PRUNE_BATCH)
            )
            if not batch:
                break
            Run.delete().where(Run.id.in_([row.id for row in batch])).execute()
        deleted += len(batch)
        logs += [row.log_path for row in batch if row.log_path]
    while True:
        with write_transaction():
            ids = [e.id for e in Event.select(Event.id).where(Event.timestamp < before).limit(PRUNE_BATCH)]
            if not ids:
                break
            Event.delete().where(Event.id.in_(ids)).execute()
    from moltbot.store import messages

    messages.prune(before)
    return deleted, logs


def migrate() -> None:
    """Bring the schema up to SCHEMA_VERSION (the caller found it behind)."""
    assert len(MIGRATIONS) == SCHEMA_VERSION, "one migration per schema version"
    with write_transaction():
        conn = connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(database)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
