"""The store: the SQLite database that is moltbot's source of truth.

It holds tasks, runs, checkpoints and events; nothing outside this package
builds a query. Two layers share one connection per thread (so one
transaction can span both):

- this module: the connection, write transactions, and hand-written SQL for
  what runs often (the daemon's per-run statements, status). Peewee spent
  ~250 us building each query, and importing it costs ~45 ms that
  ``moltbot status`` cannot afford (see benchmarks/).
- ``moltbot.store.orm``: Peewee models, migrations and the cold paths (config
  sync, CLI requests, recovery, pruning), loaded on first use. Its names are
  reachable here as well (``store.Task``, ``store.sync_tasks``).

Write transactions start ``IMMEDIATE``: a deferred transaction that later
upgrades to a write lock gets SQLITE_BUSY at once instead of waiting, which
the daemon and a concurrent CLI would otherwise hit. Times are stored as
fixed-width UTC strings (``2026-11-23T09:00:00.000000Z``): readable with the
sqlite3 shell, and sortable as text, so ordering and indexes work on them.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from moltbot.runner import RunResult  # what finish_run records
    from moltbot.store.orm import (
        MIGRATIONS as MIGRATIONS,
    )
    from moltbot.store.orm import (
        MODELS as MODELS,
    )
    from moltbot.store.orm import (
        BaseModel as BaseModel,
    )
    from moltbot.store.orm import (
        Checkpoint as Checkpoint,
    )
    from moltbot.store.orm import (
        Event as Event,
    )
    from moltbot.store.orm import (
        Meta as Meta,
    )
    from moltbot.store.orm import (
        Run as Run,
    )
    from moltbot.store.orm import (
        SyncResult as SyncResult,
    )
    from moltbot.store.orm import (
        Task as Task,
    )
    from moltbot.store.orm import (
        TaskDefinition as TaskDefinition,
    )
    from moltbot.store.orm import (  # re-exported: loaded lazily by __getattr__ below
        UTCDateTimeField as UTCDateTimeField,
    )
    from moltbot.store.orm import (
        current_run as current_run,
    )
    from moltbot.store.orm import (
        derive_status as derive_status,
    )
    from moltbot.store.orm import (
        enqueue_run as enqueue_run,
    )
    from moltbot.store.orm import (
        get_run as get_run,
    )
    from moltbot.store.orm import (
        get_task as get_task,
    )
    from moltbot.store.orm import (
        last_finished_run as last_finished_run,
    )
    from moltbot.store.orm import (
        list_tasks as list_tasks,
    )
    from moltbot.store.orm import (
        pause_task as pause_task,
    )
    from moltbot.store.orm import (
        prune as prune,
    )
    from moltbot.store.orm import (
        queued_runs as queued_runs,
    )
    from moltbot.store.orm import (
        recent_events as recent_events,
    )
    from moltbot.store.orm import (
        recent_runs as recent_runs,
    )
    from moltbot.store.orm import (
        recover_abandoned_runs as recover_abandoned_runs,
    )
    from moltbot.store.orm import (
        request_stop as request_stop,
    )
    from moltbot.store.orm import (
        resume_task as resume_task,
    )
    from moltbot.store.orm import (
        runs_with_stop_requested as runs_with_stop_requested,
    )
    from moltbot.store.orm import (
        set_run_recap as set_run_recap,
    )
    from moltbot.store.orm import (
        skip_queued as skip_queued,
    )
    from moltbot.store.orm import (
        start_queued as start_queued,
    )
    from moltbot.store.orm import (
        sync_tasks as sync_tasks,
    )
    from moltbot.store.orm import (
        tasks_paused_by as tasks_paused_by,
    )

TERMINAL_RUN_STATES = ("success", "failed", "timeout", "interrupted", "skipped", "missed")
ACTIVE_RUN_STATES = ("queued", "running")
# The schema version this code writes; orm.MIGRATIONS has one step per version.
SCHEMA_VERSION = 4
_ORM_NAMES = frozenset(
    {
        "UTCDateTimeField",
        "BaseModel",
        "Task",
        "Run",
        "Checkpoint",
        "Event",
        "Meta",
        "MODELS",
        "MIGRATIONS",
        "recent_events",
        "TaskDefinition",
        "SyncResult",
        "sync_tasks",
        "derive_status",
        "get_task",
        "list_tasks",
        "pause_task",
        "resume_task",
        "tasks_paused_by",
        "enqueue_run",
        "queued_runs",
        "start_queued",
        "skip_queued",
        "get_run",
        "current_run",
        "last_finished_run",
        "set_run_recap",
        "request_stop",
        "runs_with_stop_requested",
        "recover_abandoned_runs",
        "recent_runs",
        "prune",
    }
)


def __getattr__(name: str) -> Any:
    """Peewee-backed names load ``moltbot.store.orm`` on first use."""
    if name in _ORM_NAMES:
        return getattr(importlib.import_module("moltbot.store.orm"), name)
    raise AttributeError(f"module 'moltbot.store' has no attribute {name!r}")


# --- the connection -----------------------------------------------------------------

_path: Path | None = None
_local = threading.local()
# Threads of one process take turns here rather than in SQLite: a writer
# that finds the database locked sleeps in SQLite's busy handler for
# milliseconds at a time, which showed up directly as firing lateness.
_writer = threading.RLock()
# The daemon checkpoints the WAL on a thread of its own (see
# background_checkpoints); a checkpoint inside a commit on the loop thread
# stalled run starts by milliseconds (benchmarks/: p99 lateness 6.3 -> 3 ms).
_auto_checkpoint = True
_after_commit: Callable[[], None] | None = None
# Told after a commit that queued outgoing messages (the chat bridges wait on it).
_outbox_listeners: list[Callable[[], None]] = []


def open_db(path: Path) -> None:
    """Use the database at ``path`` (created and migrated as needed) from now on."""
    global _path
    path.parent.mkdir(parents=True, exist_ok=True)
    _path = path
    orm = _loaded_orm()
    if orm is not None:
        orm.database.close()  # drop Peewee's hold on a previous database's connection
    conn = connection()
    conn.execute("PRAGMA journal_mode = wal")  # kept in the file; set once per process is plenty
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema {version}; this moltbot knows up to {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        importlib.import_module("moltbot.store.orm").migrate()


def connection() -> sqlite3.Connection:
    """This thread's connection to the current database (opened on first use)."""
    if _path is None:
        raise RuntimeError("the store is not open (call store.open_db first)")
    if getattr(_local, "path", None) != _path:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (and so does no one else).
        # timeout: SQLite's busy timeout, for the CLI and the daemon writing at once.
        fresh = sqlite3.connect(str(_path), timeout=15, isolation_level=None)
        fresh.execute("PRAGMA synchronous = normal")  # WAL + NORMAL survives a process crash
        if not _auto_checkpoint:
            fresh.execute("PRAGMA wal_autocheckpoint = 0")
        fresh.execute("PRAGMA foreign_keys = 1")
        _local.path, _local.conn, _local.depth = _path, fresh, 0
    conn: sqlite3.Connection = _local.conn
    return conn


def background_checkpoints(after_commit: Callable[[], None]) -> None:
    """From now on, commits in this process never checkpoint the WAL themselves;
    ``after_commit`` is told of each commit, and the caller runs ``checkpoint``."""
    global _auto_checkpoint, _after_commit
    _auto_checkpoint, _after_commit = False, after_commit
    if getattr(_local, "path", None) is not None:
        _local.conn.execute("PRAGMA wal_autocheckpoint = 0")


def checkpoint() -> None:
    """Copy the WAL into the database without blocking writers (PASSIVE)."""
    connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def schema_version() -> int:
    return int(connection().execute("PRAGMA user_version").fetchone()[0])


def _loaded_orm() -> Any:
    import sys

    return sys.modules.get("moltbot.store.orm")


@contextmanager
def write_transaction() -> Iterator[None]:
    """One IMMEDIATE transaction; a nested use is a savepoint inside it.

    The daemon records a batch of run ends and claims in one transaction (one
    commit per loop pass, not two per run); the savepoints keep each item
    all-or-nothing when one of them fails.
    """
    with _writer:
        conn = connection()
        if _local.depth:
            savepoint = f"s{_local.depth}"
            conn.execute(f"SAVEPOINT {savepoint}")
            _local.depth += 1
            try:
                yield
            except BaseException:
                conn.execute(f"ROLLBACK TO {savepoint}")
                raise
            finally:
                _local.depth -= 1
                conn.execute(f"RELEASE {savepoint}")
            return
        conn.execute("BEGIN IMMEDIATE")
        _local.depth = 1
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
            if _after_commit is not None:
                _after_commit()
            if getattr(_local, "outbox_written", False):
                _local.outbox_written = False
                outbox_may_have_changed()
            callbacks, _local.after_commit = getattr(_local, "after_commit", []), []
            for callback in callbacks:
                callback()
        finally:
            _local.depth = 0
            _local.outbox_written = False
            _local.after_commit = []


def listen_for_outbox(listener: Callable[[], None], listen: bool = True) -> None:
    """Call ``listener`` after each commit that queued an outgoing message (``listen=False``: stop)."""
    if listen:
        _outbox_listeners.append(listener)
    elif listener in _outbox_listeners:
        _outbox_listeners.remove(listener)


def outbox_may_have_changed() -> None:
    """Another process (a task's run) may have queued messages: tell the listeners."""
    for listener in list(_outbox_listeners):
        listener()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current transaction commits (now, outside one).

    Waking the daemon inside a transaction would let it look before the
    change is visible, and then sleep through it.
    """
    if getattr(_local, "depth", 0):
        _local.after_commit = [*getattr(_local, "after_commit", []), callback]
    else:
        callback()


def note_outbox_write() -> None:
    """Inside a write transaction: it queues a message (the listener hears at commit)."""
    _local.outbox_written = True


def _sql(query: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
    return connection().execute(query, params)


def set_meta(key: str, value: str) -> None:
    with write_transaction():
        _sql("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def get_meta(key: str) -> str | None:
    row = _sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def save_checkpoint(task_id: str, data: str, run_id: int | None, now: datetime) -> None:
    with write_transaction():
        _sql(
            "INSERT OR REPLACE INTO checkpoint (task_id, data, run_id, updated_at) VALUES (?, ?, ?, ?)",
            (task_id, data, run_id, to_db(now)),
        )


def clear_checkpoint(task_id: str) -> bool:
    with write_transaction():
        return _sql("DELETE FROM checkpoint WHERE task_id = ?", (task_id,)).rowcount > 0


def to_db(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; times must be aware")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def add_event(at: datetime, task_id: str, action: str, message: str, duration: float | None = None) -> None:
    _sql(
        "INSERT INTO event (timestamp, task_id, action, message, duration) VALUES (?, ?, ?, ?, ?)",
        (to_db(at), task_id, action, message, duration),
    )


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


_DUE_COLUMNS = "task_id, next_run, anchor, current_run_id, last_finished"


def _due_task(row: tuple[Any, ...]) -> DueTask:
    next_run, anchor = from_db(row[1]), from_db(row[2])
    assert next_run is not None and anchor is not None  # selected as due, so both are set
    return DueTask(row[0], next_run, anchor, row[3], from_db(row[4]))


def earliest_next_run() -> datetime | None:
    """When the next scheduled task is due (an index walk on next_run)."""
    row = _sql(f"SELECT next_run FROM task WHERE {_SCHEDULABLE} ORDER BY next_run LIMIT 1").fetchone()
    return from_db(row[0]) if row else None


PRIORITIES = range(1, 11)  # 1 = highest; config.py enforces the range


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
        rows = _sql(
            f"SELECT {_DUE_COLUMNS} FROM task "
            f"WHERE priority = ? AND next_run <= ? AND {_SCHEDULABLE} ORDER BY next_run LIMIT ?",
            (priority, stamp, limit - len(found)),
        ).fetchall()
        found += [_due_task(row) for row in rows]
        if len(found) >= limit:
            break
    return found


def set_next_run(task_id: str, next_run: datetime | None) -> None:
    with write_transaction():
        _sql("UPDATE task SET next_run = ? WHERE task_id = ?", (to_db(next_run), task_id))


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
    assert cursor.lastrowid is not None
    return cursor.lastrowid


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


def has_queued_runs() -> bool:
    return _sql("SELECT 1 FROM run WHERE status = 'queued' LIMIT 1").fetchone() is not None


def finish_run(
    ticket: RunTicket,
    outcome: RunResult,
    *,
    release_task: bool,
    pause_by: str | None = None,
    alert: bool = False,
) -> None:
    """Record an attempt's end; ``release_task`` False while a retry follows.

    At the run's end (``release_task``), the chats watching it and, with
    ``alert``, the alert channel get their message queued in this same
    transaction: a result is never lost between the two.
    """
    duration = (outcome.finished_at - outcome.started_at).total_seconds()
    failed = outcome.status in ("failed", "timeout")
    with write_transaction():
        _sql(
            "UPDATE run SET status = ?, exit_code = ?, message = ?, started_at = ?, finished_at = ?, "
            "stdout_tail = ?, stderr_tail = ?, log_path = ? WHERE id = ?",
            (
                outcome.status,
                outcome.exit_code,
                outcome.message,
                to_db(outcome.started_at),
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
        if release_task:
            _queue_run_messages(ticket, outcome, alert)
        if outcome.status != "interrupted" or pause_by:
            last_status = outcome.status
        if release_task:
            current_run_id, last_finished = None, to_db(outcome.finished_at)
        paused_by = paused_by or pause_by  # a user's pause outlives a shutdown's
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


def _queue_run_messages(ticket: RunTicket, outcome: RunResult, alert: bool) -> None:
    """Inside finish_run: the run's result for whoever waits for it."""
    stamp = to_db(outcome.finished_at)
    queued = False
    if ticket.requested_by is not None:  # only requested runs have watchers; scheduled ones skip the query
        queued = bool(
            _sql(
                "INSERT INTO outbox (channel, address, kind, run_id, reply_to, reply_author, "
                "created_at, due_at, attempts, status) SELECT channel, address, 'run-finished', ?, "
                "reply_to, reply_author, ?, ?, 0, 'pending' FROM run_watch WHERE run_id = ?",
                (ticket.id, stamp, stamp, ticket.id),
            ).rowcount
        )
        _sql("DELETE FROM run_watch WHERE run_id = ?", (ticket.id,))
    if alert:
        _sql(
            "INSERT INTO outbox (channel, address, kind, run_id, created_at, due_at, attempts, status) "
            "VALUES ('alerts', 'admins', 'run-finished', ?, ?, ?, 0, 'pending')",
            (ticket.id, stamp, stamp),
        )
        queued = True
    if queued:
        note_outbox_write()


def begin_retry(previous: RunTicket, now: datetime) -> RunTicket:
    """The next attempt of a failed run: a new row that keeps owning the task (and its watchers)."""
    with write_transaction():
        ticket = _start(
            previous.task_id,
            "retry",
            now,
            scheduled_for=previous.scheduled_for,
            requested_by=previous.requested_by,
            attempt=previous.attempt + 1,
        )
        if previous.requested_by is not None:
            _sql("UPDATE run_watch SET run_id = ? WHERE run_id = ?", (ticket.id, previous.id))
        return ticket


def load_checkpoint(task_id: str) -> str | None:
    row = _sql("SELECT data FROM checkpoint WHERE task_id = ?", (task_id,)).fetchone()
    return row[0] if row else None


# (run_for, next_run, [(status, scheduled_for, message), ...]), or None: leave the task alone
Decision = tuple[datetime | None, datetime | None, list[tuple[str, datetime, str]]] | None


PlanFn = Callable[[DueTask], Decision]


def apply_plan(
    task_id: str, now: datetime, plan: PlanFn, trigger: str = "schedule", lead: timedelta = timedelta(0)
) -> RunTicket | None:
    """Claim a due task in one transaction: record what is not run, advance
    next_run, and create the running row if ``plan`` says to run.

    ``plan(task)`` sees the row as re-read inside the transaction, so two
    claimers can never both run the same occurrence. With a ``lead``, a task
    due within it is claimed ahead: its run is recorded as starting at its
    due instant, and the caller starts it then.
    """
    with write_transaction():
        row = _sql(
            f"SELECT {_DUE_COLUMNS} FROM task WHERE task_id = ? AND next_run <= ? AND paused_by IS NULL",
            (task_id, to_db(now + lead)),
        ).fetchone()
        if row is None:
            return None
        task = _due_task(row)
        assert task.next_run is not None
        now = max(now, task.next_run)
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
