"""The task log (``moltbot logs``): what happened to which task, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from moltbot.records import Event
from moltbot.store.connection import from_db, sql, to_db

__all__ = ["add_event", "recent_events"]


def add_event(at: datetime, task_id: str, action: str, message: str, duration: float | None = None) -> None:
    sql(
        "INSERT INTO event (timestamp, task_id, action, message, duration) VALUES (?, ?, ?, ?, ?)",
        (to_db(at), task_id, action, message, duration),
    )


def recent_events(task_id: str | None, limit: int) -> list[Event]:
    """Newest first, of one task or of all."""
    columns = "id, timestamp, task_id, action, message, duration"
    if task_id:
        rows = sql(
            f"SELECT {columns} FROM event WHERE task_id = ? ORDER BY id DESC LIMIT ?", (task_id, limit)
        ).fetchall()
    else:
        rows = sql(f"SELECT {columns} FROM event ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [_event(row) for row in rows]


def _event(row: tuple[Any, ...]) -> Event:
    timestamp = from_db(row[1])
    assert timestamp is not None
    return Event(row[0], timestamp, row[2], row[3], row[4], row[5])
