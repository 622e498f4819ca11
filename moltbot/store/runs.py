"""A run's life in the store: claimed (or recorded as not run), started, finished, retried.

These statements run for every scheduled run, so they are hand-written SQL on
the daemon's own connection. A claim re-reads the task inside its
transaction: two claimers can never both run the same occurrence.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from moltbot.incidents import AlertPolicy
from moltbot.records import Plan
from moltbot.store.chains import queue_follow_ups
from moltbot.store.connection import (
    insert_id,
    is_postgresql,
    note_outbox_write,
    sql,
    to_db,
    write_transaction,
)
from moltbot.store.events import add_event
from moltbot.store.incidents import run_ended
from moltbot.store.sessions import current_node, current_session
from moltbot.store.tasks import DUE_COLUMNS, DueTask, due_task, status_of

if TYPE_CHECKING:
    from moltbot.runner import RunResult  # what finish_run records

__all__ = [
    "OccurrenceTaken",
    "RunTicket",
    "apply_plan",
    "begin_retry",
    "finish_run",
    "record_run",
    "refuse_second_execution",
    "start_run",
]

log = logging.getLogger(__name__)


class RunTicket(NamedTuple):
    """A run the executor is to carry out (or has recorded)."""

    id: int
    task_id: str
    attempt: int
    trigger: str
    requested_by: str | None
    scheduled_for: datetime | None
    started_at: datetime | None


class OccurrenceTaken(Exception):
    """The database refused a second execution of the same attempt of an occurrence.

    The unique key over (task, scheduled_for, attempt) of executions
    (store/schema.py, migration 5) makes this the planner's safety net: a bug
    that plans an occurrence twice becomes a refused claim, never a second run.
    """

    def __init__(self, task_id: str, scheduled_for: datetime | None, attempt: int) -> None:
        self.task_id, self.scheduled_for, self.attempt = task_id, scheduled_for, attempt
        super().__init__(f"{task_id}: occurrence {to_db(scheduled_for)} attempt {attempt} already has a run")


def insert_run(
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
    values = (
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
        current_node() or None,
        current_session() if started_at else None,
    )
    # ON CONFLICT rather than catching the error: the same text will serve PostgreSQL, where an
    # error aborts the whole transaction (#15). The conflict is the occurrence's unique key.
    new_id = insert_id(
        "INSERT INTO run (task_id, status, trigger, requested_by, attempt, scheduled_for, queued_at, "
        "started_at, finished_at, message, owner_pid, node, session_id, stop_requested) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE) ON CONFLICT DO NOTHING",
        values,
    )
    if new_id is None:
        raise OccurrenceTaken(task_id, scheduled_for, attempt)
    return new_id


def record_run(
    task_id: str, status: str, trigger: str, scheduled_for: datetime | None, now: datetime, message: str
) -> int:
    """Record a run that did not execute (skipped or missed), with its event."""
    run_id = insert_run(
        task_id, status, trigger, scheduled_for=scheduled_for, queued_at=now, finished_at=now, message=message
    )
    add_event(now, task_id, status, message)
    return run_id


def start_run(
    task_id: str,
    trigger: str,
    now: datetime,
    *,
    scheduled_for: datetime | None,
    requested_by: str | None = None,
    attempt: int = 1,
    queued_run: int | None = None,
) -> RunTicket:
    """Inside a write transaction: a running row (new, or the queued one) that owns its task."""
    if queued_run is None:
        run_id = insert_run(
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
        sql(
            "UPDATE run SET status = 'running', started_at = ?, owner_pid = ?, node = ?, session_id = ? "
            "WHERE id = ?",
            (to_db(now), os.getpid(), current_node() or None, current_session(), run_id),
        )
    sql("UPDATE task SET current_run_id = ?, status = 'running' WHERE task_id = ?", (run_id, task_id))
    where = f" on {current_node()}" if is_postgresql() and current_node() else ""  # several nodes: which
    add_event(now, task_id, "started", f"run {run_id} started ({trigger}){where}")
    return RunTicket(run_id, task_id, attempt, trigger, requested_by, scheduled_for, now)


def finish_run(
    ticket: RunTicket,
    outcome: RunResult,
    *,
    release_task: bool,
    pause_by: str | None = None,
    alert: AlertPolicy | None = None,
) -> bool:
    """Record an attempt's end; ``release_task`` False while a retry follows. False when another node
    settled the run meanwhile (nothing recorded).

    At the run's end (``release_task``), the chats watching it get their
    message queued in this same transaction, and the task's incidents are
    updated with what ``alert`` (the task's policy) owes the admins
    (``store/incidents.py``): a result is never lost between the two.
    """
    duration = (outcome.finished_at - outcome.started_at).total_seconds()
    failed = outcome.status in ("failed", "timeout")
    # Several nodes: the run id is the fencing token. A run another node settled meanwhile (this
    # node lost its lease: store/sessions.py) is no longer `running`, and its end changes nothing.
    still_ours = " AND status = 'running'" if is_postgresql() else ""
    with write_transaction():
        updated = sql(
            "UPDATE run SET status = ?, exit_code = ?, message = ?, started_at = ?, finished_at = ?, "
            f"stdout_tail = ?, stderr_tail = ?, log_path = ? WHERE id = ?{still_ours}",
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
        if updated.rowcount == 0 and still_ours:
            log.warning(
                "run %d of %s was settled by another node meanwhile: its end is not recorded",
                ticket.id,
                ticket.task_id,
            )
            return False
        action = {"success": "completed"}.get(outcome.status, outcome.status)
        add_event(
            outcome.finished_at, ticket.task_id, action, f"run {ticket.id}: {outcome.message}", duration
        )
        row = sql(
            "SELECT current_run_id, paused_by, last_finished FROM task WHERE task_id = ?", (ticket.task_id,)
        ).fetchone()
        if row is None:
            return True
        current_run_id, paused_by, last_finished = row
        # Every end is the task's last result, `interrupted` too: the run stopped on request, or in a
        # shutdown (the task's pause says that it resumes), and status says so rather than the
        # result of the run before.
        last_status = outcome.status
        if release_task:
            _queue_run_messages(ticket, outcome, alert)
            queue_follow_ups(ticket.task_id, ticket.id, outcome.status, outcome.finished_at)
            current_run_id, last_finished = None, to_db(outcome.finished_at)
        paused_by = paused_by or pause_by  # a user's pause outlives a shutdown's
        sql(
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
    return True


def _queue_run_messages(ticket: RunTicket, outcome: RunResult, alert: AlertPolicy | None) -> None:
    """Inside finish_run: the run's result for whoever waits for it."""
    stamp = to_db(outcome.finished_at)
    queued = False
    if ticket.requested_by is not None:  # only requested runs have watchers; scheduled ones skip the query
        queued = bool(
            sql(
                "INSERT INTO outbox (channel, address, kind, run_id, reply_to, reply_author, "
                "created_at, due_at, attempts, status) SELECT channel, address, 'run-finished', ?, "
                "reply_to, reply_author, ?, ?, 0, 'pending' FROM run_watch WHERE run_id = ?",
                (ticket.id, stamp, stamp, ticket.id),
            ).rowcount
        )
        sql("DELETE FROM run_watch WHERE run_id = ?", (ticket.id,))
    policy = alert or AlertPolicy(scheduled=ticket.requested_by is None, can_alert=False)
    run_ended(ticket.task_id, ticket.id, outcome.status, outcome.finished_at, policy)
    if queued:
        note_outbox_write()


def begin_retry(previous: RunTicket, failure: RunResult, now: datetime) -> RunTicket | None:
    """Record a failed attempt and start the next one, a new row that keeps owning the task
    (and its watchers); None when the database refused it (the failure then stands)."""
    with write_transaction():
        try:
            with write_transaction():
                if not finish_run(previous, failure, release_task=False):
                    return None  # another node settled the run (this one lost its lease): no retry here
                ticket = start_run(
                    previous.task_id,
                    "retry",
                    now,
                    scheduled_for=previous.scheduled_for,
                    requested_by=previous.requested_by,
                    attempt=previous.attempt + 1,
                )
        except OccurrenceTaken as taken:
            finish_run(previous, failure, release_task=True)
            refuse_second_execution(taken, "retry", now)
            return None
        if previous.requested_by is not None:
            sql("UPDATE run_watch SET run_id = ? WHERE run_id = ?", (ticket.id, previous.id))
        return ticket


def refuse_second_execution(taken: OccurrenceTaken, trigger: str, now: datetime) -> int:
    """A claim the unique key refused: logged loudly and recorded as skipped, never run."""
    row = sql(
        "SELECT id FROM run WHERE task_id = ? AND scheduled_for = ? AND attempt = ? "
        "AND status NOT IN ('skipped', 'missed')",
        (taken.task_id, to_db(taken.scheduled_for), taken.attempt),
    ).fetchone()
    earlier = f"run {row[0]}" if row else "an earlier run"
    message = (
        f"not run: attempt {taken.attempt} of this occurrence already ran as {earlier} "
        "(the database refused a second execution; please report this as a bug)"
    )
    log.error("%s: %s", taken.task_id, message)
    return record_run(taken.task_id, "skipped", trigger, taken.scheduled_for, now, message)


def apply_plan(
    task_id: str,
    now: datetime,
    plan: Callable[[DueTask], Plan | None],
    trigger: str = "schedule",
    lead: timedelta = timedelta(0),
) -> RunTicket | None:
    """Claim a due task in one transaction: record what is not run, queue the
    catch-up runs, advance next_run, and create the running row if ``plan``
    says to run.

    ``plan(task)`` sees the row as re-read inside the transaction, so two
    claimers can never both run the same occurrence (and the database's
    unique key refuses it if a planner bug tried). With a ``lead``, a task
    due within it is claimed ahead: its run is recorded as starting at its
    due instant, and the caller starts it then.
    """
    with write_transaction():
        row = sql(
            f"SELECT {DUE_COLUMNS} FROM task WHERE task_id = ? AND next_run <= ? AND paused_by IS NULL",
            (task_id, to_db(now + lead)),
        ).fetchone()
        if row is None:
            return None
        task = due_task(row)
        now = max(now, task.next_run)
        decision = plan(task)
        if decision is None:
            return None
        for status, scheduled_for, message in decision.records:
            record_run(task_id, status, trigger, scheduled_for, now, message)
        for occurrence in decision.queue:
            _queue_occurrence(task_id, occurrence, now)
        sql("UPDATE task SET next_run = ? WHERE task_id = ?", (to_db(decision.next_run), task_id))
        if decision.run_for is None or task.current_run_id is not None:
            return None
        try:
            with write_transaction():
                return start_run(task_id, trigger, now, scheduled_for=decision.run_for)
        except OccurrenceTaken as taken:
            refuse_second_execution(taken, trigger, now)
            return None


def _queue_occurrence(task_id: str, occurrence: datetime, now: datetime) -> None:
    """A scheduled occurrence written down to run after the ones queued before it (catch-up)."""
    try:
        with write_transaction():
            run_id = insert_run(task_id, "queued", "catchup", scheduled_for=occurrence, queued_at=now)
            add_event(now, task_id, "queued", f"run {run_id} queued (catchup of {to_db(occurrence)})")
    except OccurrenceTaken as taken:
        refuse_second_execution(taken, "catchup", now)
