"""Small named values the daemon keeps (meta) and task checkpoints."""

from __future__ import annotations

from datetime import datetime

from moltbot.store.connection import sql, to_db, write_transaction

__all__ = ["clear_checkpoint", "get_meta", "load_checkpoint", "save_checkpoint", "set_meta"]


def set_meta(key: str, value: str | None) -> None:
    """Remember ``value`` under ``key`` (None: forget it)."""
    with write_transaction():
        if value is None:
            sql("DELETE FROM meta WHERE key = ?", (key,))
        else:
            sql(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def get_meta(key: str) -> str | None:
    row = sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def save_checkpoint(task_id: str, data: str, run_id: int | None, now: datetime) -> None:
    with write_transaction():
        sql(
            "INSERT INTO checkpoint (task_id, data, run_id, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (task_id) DO UPDATE SET data = excluded.data, run_id = excluded.run_id, "
            "updated_at = excluded.updated_at",
            (task_id, data, run_id, to_db(now)),
        )


def load_checkpoint(task_id: str) -> str | None:
    row = sql("SELECT data FROM checkpoint WHERE task_id = ?", (task_id,)).fetchone()
    return row[0] if row else None


def clear_checkpoint(task_id: str) -> bool:
    with write_transaction():
        return sql("DELETE FROM checkpoint WHERE task_id = ?", (task_id,)).rowcount > 0
