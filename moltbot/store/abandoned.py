"""Runs nobody supervises any more: a crashed daemon's (settled at its restart), and on PostgreSQL a
node's whose lease ran out (settled by another node: store/sessions.py)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from moltbot.store.connection import from_db, is_postgresql, sql, to_db, write_transaction
from moltbot.store.events import add_event
from moltbot.store.runs import RunTicket
from moltbot.store.sessions import current_node, current_session

__all__ = ["alive", "recover_abandoned_runs", "settle_session"]

_RUNNING_COLUMNS = "id, task_id, attempt, trigger, requested_by, scheduled_for, started_at, owner_pid"


def recover_abandoned_runs(now: datetime) -> list[RunTicket]:
    """After a crash (kill -9): runs left running become interrupted, their tasks freed.

    A run whose supervising process is still alive (a foreground ``moltbot
    run``) is left alone. The caller kills what an abandoned run left running
    (``runner.processes_of_run``): nobody supervises it any more. On PostgreSQL,
    only this node's: its earlier sessions' runs, and its foreground runs.
    """
    message = "interrupted: the daemon stopped without shutting down (crash or kill -9)"
    with write_transaction():
        if is_postgresql():
            node, session = current_node(), current_session()
            rows = sql(
                f"SELECT {_RUNNING_COLUMNS} FROM run WHERE status = 'running' AND node = ? "
                "AND (session_id IS NULL "
                "OR session_id IN (SELECT id FROM daemon_session WHERE node = ? AND id <> ?))",
                (node, node, session or 0),
            ).fetchall()
            sql(
                "UPDATE daemon_session SET ended_at = ?, ended_how = 'crashed (settled by its restart)' "
                "WHERE node = ? AND id <> ? AND ended_at IS NULL",
                (to_db(now), node, session or 0),
            )
        else:
            rows = sql(f"SELECT {_RUNNING_COLUMNS} FROM run WHERE status = 'running'").fetchall()
        return _interrupt([row for row in rows if row[7] == os.getpid() or not alive(row[7])], now, message)


def settle_session(session: int, node: str, lost_by: str, now: datetime) -> list[RunTicket] | None:
    """PostgreSQL, by another node: a session whose lease ran out is ended and its runs interrupted
    (the caller re-plans them); None when someone else settled it first."""
    with write_transaction():
        ended = sql(
            "UPDATE daemon_session SET ended_at = ?, ended_how = ? WHERE id = ? AND ended_at IS NULL",
            (to_db(now), f"lease lost; settled by {node}", session),
        )
        if ended.rowcount == 0:
            return None
        sql(
            "UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'sending' AND session_id = ?",
            (f"node {lost_by} was lost while sending; it may have been delivered", session),
        )
        rows = sql(
            f"SELECT {_RUNNING_COLUMNS} FROM run WHERE status = 'running' AND session_id = ?", (session,)
        )
        message = (
            f"interrupted: node {lost_by} stopped renewing its lease (dead or cut off); settled by {node}"
        )
        return _interrupt(rows.fetchall(), now, message)


def _interrupt(rows: list[tuple[Any, ...]], now: datetime, message: str) -> list[RunTicket]:
    abandoned = []
    for run_id, task_id, attempt, trigger, requested_by, scheduled_for, started_at, _owner in rows:
        sql(
            "UPDATE run SET status = 'interrupted', finished_at = ?, message = ? WHERE id = ?",
            (to_db(now), message, run_id),
        )
        add_event(now, task_id, "interrupted", f"run {run_id}: {message}")
        sql(
            "UPDATE task SET current_run_id = NULL, last_status = 'interrupted', "
            "status = CASE WHEN paused_by IS NOT NULL THEN 'paused' ELSE 'idle' END "
            "WHERE task_id = ? AND current_run_id = ?",
            (task_id, run_id),
        )
        abandoned.append(
            RunTicket(
                run_id, task_id, attempt, trigger, requested_by, from_db(scheduled_for), from_db(started_at)
            )
        )
    return abandoned


def alive(pid: int | None) -> bool:
    """Whether a process ``pid`` runs on this host (one of another user's counts)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
