"""Runs asked for outside the schedule (CLI, chat, recovery), and requests to stop a run.

A request is written down first (a ``queued`` run row) and started by whoever
executes runs, so a run promised to someone is never lost between the two.
"""

from __future__ import annotations

from datetime import datetime

from moltbot.records import Run, Watcher
from moltbot.store.connection import sql, to_db, write_transaction
from moltbot.store.events import add_event
from moltbot.store.history import RUN_COLUMNS, current_run, get_run, run_from_row
from moltbot.store.messages import watch_run
from moltbot.store.runs import OccurrenceTaken, RunTicket, insert_run, refuse_second_execution, start_run

__all__ = [
    "enqueue_run",
    "has_queued_runs",
    "queued_runs",
    "request_stop",
    "runs_with_stop_requested",
    "skip_queued",
    "start_queued",
]


def enqueue_run(
    task_id: str,
    trigger: str,
    requested_by: str | None,
    now: datetime,
    *,
    refuse_because: str | None = None,
    watcher: Watcher | None = None,
    occurrence: datetime | None = None,
    attempt: int = 1,
) -> Run:
    """A promise to run, written down first. With ``refuse_because`` it is recorded and
    skipped at once (the requester gets an answer, the log a trace); a ``watcher`` gets
    the run's result when it ends. A run asked for is its own occurrence; one that
    carries on a scheduled ``occurrence`` (recovery, resume) is its next ``attempt``,
    and the database refuses it if that attempt already ran."""
    with write_transaction():
        try:
            with write_transaction():
                run_id = insert_run(
                    task_id,
                    "queued",
                    trigger,
                    scheduled_for=occurrence,
                    queued_at=now,
                    requested_by=requested_by,
                    attempt=attempt,
                )
        except OccurrenceTaken as taken:
            run_id = refuse_second_execution(taken, trigger, now)
        else:
            by = f", by {requested_by}" if requested_by else ""
            add_event(now, task_id, "queued", f"run {run_id} queued ({trigger}{by})")
            if refuse_because is not None:
                _finish_unstarted(run_id, task_id, "skipped", now, refuse_because)
            elif watcher is not None:
                watch_run(run_id, watcher)
        run = get_run(run_id)
        assert run is not None
        return run


def has_queued_runs() -> bool:
    return sql("SELECT 1 FROM run WHERE status = 'queued' LIMIT 1").fetchone() is not None


def queued_runs(limit: int) -> list[Run]:
    """Queued runs of tasks that are not running, in priority order."""
    columns = ", ".join(f"run.{column}" for column in RUN_COLUMNS.split(", "))
    rows = sql(
        f"SELECT {columns} FROM run JOIN task ON run.task_id = task.task_id "
        "WHERE run.status = 'queued' AND task.current_run_id IS NULL ORDER BY task.priority, run.id LIMIT ?",
        (limit,),
    )
    return [run_from_row(row) for row in rows]


ASKED_FOR = ("manual", "remote")  # the triggers of a run a person asked for (CLI, chat)


def start_queued(run_id: int, now: datetime) -> tuple[RunTicket | None, str | None]:
    """Start a queued run; its ticket, or None and why it was not started."""
    with write_transaction():
        run = get_run(run_id)
        if run is None or run.status != "queued":
            return None, f"run {run_id} is {run.status if run else 'gone'}"
        row = sql(
            "SELECT removed, current_run_id, paused_by, enabled FROM task WHERE task_id = ?", (run.task_id,)
        ).fetchone()
        if row is None or row[0]:
            _finish_unstarted(run.id, run.task_id, "skipped", now, "task no longer exists")
            return None, "task no longer exists"
        if run.trigger not in ASKED_FOR and (row[2] not in (None, "shutdown") or not row[3]):
            # Paused or disabled after it was queued (a chained run, a catch-up, an approval):
            # the owner's latest word wins. A run a person asked for runs anyway, as it would have.
            reason = f"not run: {run.task_id} was {'paused' if row[3] else 'disabled'} before it could start"
            _finish_unstarted(run.id, run.task_id, "skipped", now, reason)
            return None, reason
        if row[1] is not None:
            # Callers only see queued runs of idle tasks, so this is a race
            # with a concurrent claim; leave it queued for the next pass.
            return None, "task is running"
        ticket = start_run(
            run.task_id,
            run.trigger,
            now,
            scheduled_for=run.scheduled_for,
            requested_by=run.requested_by,
            attempt=run.attempt,
            queued_run=run.id,
        )
        return ticket, None


def skip_queued(run_id: int, now: datetime, message: str) -> None:
    with write_transaction():
        row = sql("SELECT task_id FROM run WHERE id = ? AND status = 'queued'", (run_id,)).fetchone()
        if row is not None:
            _finish_unstarted(run_id, row[0], "skipped", now, message)


def _finish_unstarted(run_id: int, task_id: str, status: str, now: datetime, message: str) -> None:
    sql(
        "UPDATE run SET status = ?, finished_at = ?, message = ? WHERE id = ?",
        (status, to_db(now), message, run_id),
    )
    add_event(now, task_id, status, f"run {run_id}: {message}")


def request_stop(task_id: str, now: datetime, watcher: Watcher | None = None) -> Run | None:
    """Mark the task's current run to be stopped (whoever supervises it stops it); a ``watcher``
    (the chat that asked) gets the run's result when it ends, once even if it watched already."""
    with write_transaction():
        run = current_run(task_id)
        if run is None:
            return None
        sql("UPDATE run SET stop_requested = TRUE WHERE id = ?", (run.id,))
        add_event(now, task_id, "stop_requested", f"stop requested for run {run.id}")
        watching = (
            watcher is not None
            and sql(
                "SELECT 1 FROM run_watch WHERE run_id = ? AND channel = ? AND address = ?",
                (run.id, watcher.channel, watcher.address),
            ).fetchone()
        )
        if watcher is not None and not watching:
            watch_run(run.id, watcher)
        return get_run(run.id)


def runs_with_stop_requested() -> list[Run]:
    rows = sql(f"SELECT {RUN_COLUMNS} FROM run WHERE status = 'running' AND stop_requested = TRUE")
    return [run_from_row(row) for row in rows]
