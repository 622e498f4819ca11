"""Forgetting old history: finished runs, events, delivered messages and handled commands."""

from __future__ import annotations

from datetime import datetime

from moltbot.records import TERMINAL_RUN_STATES
from moltbot.store.connection import sql, to_db, write_transaction

__all__ = ["prune"]

PRUNE_BATCH = 2000


def prune(before: datetime) -> tuple[int, list[str]]:
    """Delete what finished before ``before``; the number of runs deleted and their log files.

    In batches of short transactions, oldest first: one transaction over a
    large backlog would hold the write lock, and every run start, for seconds.
    Messages given up stay (``moltbot outbox`` lists them).
    """
    stamp = to_db(before)
    states = ", ".join(f"'{state}'" for state in TERMINAL_RUN_STATES)
    deleted, logs = 0, []
    while True:
        with write_transaction():
            batch = sql(
                f"SELECT id, log_path FROM run WHERE finished_at IS NOT NULL AND finished_at < ? "
                f"AND status IN ({states}) ORDER BY id LIMIT ?",
                (stamp, PRUNE_BATCH),
            ).fetchall()
            if not batch:
                break
            sql(f"DELETE FROM run WHERE id IN ({', '.join(str(row[0]) for row in batch)})")
        deleted += len(batch)
        logs += [row[1] for row in batch if row[1]]
    while True:
        with write_transaction():
            removed = sql(
                "DELETE FROM event WHERE id IN (SELECT id FROM event WHERE timestamp < ? LIMIT ?)",
                (stamp, PRUNE_BATCH),
            ).rowcount
        if not removed:
            break
    with write_transaction():
        sql("DELETE FROM outbox WHERE status = 'sent' AND created_at < ?", (stamp,))
        sql("DELETE FROM inbox WHERE received_at < ?", (stamp,))
    return deleted, logs
