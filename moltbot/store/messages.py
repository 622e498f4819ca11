"""Chat traffic in the store: the inbox, the outbox and who waits for a run.

Channel-neutral on purpose: a channel is a name ("signal", "discord"; "alerts"
for alerts not yet handed to a channel), an address is whatever that channel
sends to (``ADMINS``: that channel's alert recipients). Every command received
is written here before it is acted on, and every message moltbot promises is
written here before it is sent, so neither a crash nor an outage loses or
repeats one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from moltbot.records import ADMINS, ALERTS, OutboxMessage, Watcher
from moltbot.store.connection import (
    from_db,
    insert_id,
    is_postgresql,
    note_outbox_write,
    sql,
    to_db,
    write_transaction,
)
from moltbot.store.sessions import SERVER_NOW, current_session

__all__ = [
    "ADMINS",
    "ALERTS",
    "accept_inbound",
    "due_outbox",
    "enqueue_message",
    "fail_unroutable",
    "hand_over",
    "mark_failed",
    "mark_sending",
    "mark_sent",
    "next_outbox_due",
    "pending_outbox",
    "postpone",
    "recover_sending",
    "seen",
    "watch_run",
]


_COLUMNS = (
    "id, channel, address, kind, text, run_id, reply_to, reply_author, created_at, due_at, attempts, status, "
    "sent_at, last_error"
)


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    created_at, due_at = from_db(row[8]), from_db(row[9])
    assert created_at is not None and due_at is not None
    return OutboxMessage(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], created_at, due_at, row[10], row[11],
        from_db(row[12]), row[13],
    )  # fmt: skip


# --- the inbox --------------------------------------------------------------------------


def accept_inbound(channel: str, sender: str, sent_at: int, chat: str, text: str, now: datetime) -> bool:
    """Record a command; False when this (sender, timestamp) was seen before (a replay).

    Inside the caller's transaction: the command, what it did and its answer commit together.
    """
    cursor = sql(
        "INSERT INTO inbox (channel, sender, sent_at, chat, text, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (channel, sender, sent_at, chat, text, to_db(now)),
    )
    return cursor.rowcount == 1


def seen(channel: str, sender: str, sent_at: int) -> bool:
    """Was this message recorded before (a replay)?"""
    row = sql(
        "SELECT 1 FROM inbox WHERE channel = ? AND sender = ? AND sent_at = ?", (channel, sender, sent_at)
    ).fetchone()
    return row is not None


# --- the outbox -------------------------------------------------------------------------


def enqueue_message(
    watcher: Watcher, text: str | None, now: datetime, *, kind: str = "text", run_id: int | None = None
) -> int:
    """Promise a message to ``watcher`` (written before it is sent); its id."""
    with write_transaction():
        new_id = insert_id(
            "INSERT INTO outbox (channel, address, kind, text, run_id, reply_to, reply_author, created_at, "
            "due_at, attempts, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending')",
            (
                watcher.channel,
                watcher.address,
                kind,
                text,
                run_id,
                watcher.reply_to,
                watcher.reply_author,
                to_db(now),
                to_db(now),
            ),
        )
        note_outbox_write()
    assert new_id is not None
    return new_id


def watch_run(run_id: int, watcher: Watcher) -> None:
    """Deliver the run's result to ``watcher`` when it ends (in the transaction that records the end)."""
    with write_transaction():
        sql(
            "INSERT INTO run_watch (run_id, channel, address, reply_to, reply_author) VALUES (?, ?, ?, ?, ?)",
            (run_id, watcher.channel, watcher.address, watcher.reply_to, watcher.reply_author),
        )


# A message to queue in place of others: (to whom, text, kind, run_id).
Replacement = tuple[Watcher, str | None, str, int | None]


def hand_over(done: Sequence[int], replacements: Sequence[Replacement], now: datetime) -> bool:
    """In one transaction: the ``done`` rows are handed over (marked sent) to new rows: an
    alert to each channel or each admin, a long text to its parts. A retry then never
    repeats what was handed over. False (nothing done) when one of them is no longer pending:
    another node handed it over first (writers take turns, so the check holds to the commit)."""
    with write_transaction():
        if done:
            marks = ", ".join("?" for _ in done)
            (pending,) = sql(
                f"SELECT count(*) FROM outbox WHERE status = 'pending' AND id IN ({marks})", tuple(done)
            ).fetchone()
            if pending != len(set(done)):
                return False
        for watcher, text, kind, run_id in replacements:
            enqueue_message(watcher, text, now, kind=kind, run_id=run_id)
        for message_id in done:
            mark_sent(message_id, now)
    return True


def due_outbox(
    channel: str, now: datetime, limit: int = 50, address: str | None = None
) -> list[OutboxMessage]:
    """Pending messages of a channel (to ``address`` only, if given) whose time has come, oldest first."""
    where = "status = 'pending' AND due_at <= ? AND channel = ?" + (" AND address = ?" if address else "")
    params: tuple[Any, ...] = (to_db(now), channel, *((address,) if address else ()))
    rows = sql(f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
    return [_message(row) for row in rows]


def next_outbox_due(channel: str) -> datetime | None:
    row = sql(
        "SELECT min(due_at) FROM outbox WHERE status = 'pending' AND channel = ?", (channel,)
    ).fetchone()
    return from_db(row[0]) if row else None


def pending_outbox() -> list[OutboxMessage]:
    """Everything not delivered yet, and what was given up (for ``moltbot outbox``)."""
    return [_message(row) for row in sql(f"SELECT {_COLUMNS} FROM outbox WHERE status != 'sent' ORDER BY id")]


def mark_sending(message_id: int) -> bool:
    """Before the request: after a crash, a row left here may have been delivered. False when it
    is not pending any more: another node is sending it (or did)."""
    with write_transaction():
        return bool(
            sql(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, session_id = ? "
                "WHERE id = ? AND status = 'pending'",
                (current_session(), message_id),
            ).rowcount
        )


def mark_sent(message_id: int, now: datetime) -> None:
    with write_transaction():
        sql(
            "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
            (to_db(now), message_id),
        )


def postpone(message_id: int, until: datetime, error: str) -> None:
    """The request surely did not take effect: try again later."""
    with write_transaction():
        sql(
            "UPDATE outbox SET status = 'pending', due_at = ?, last_error = ? WHERE id = ?",
            (to_db(until), error, message_id),
        )


def mark_failed(message_id: int, error: str) -> None:
    """Given up: refused, or it may have been delivered (never sent twice)."""
    with write_transaction():
        sql("UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?", (error, message_id))


def fail_unroutable(channels: Sequence[str]) -> list[OutboxMessage]:
    """Give up (mark failed) what waits for a channel not among ``channels`` (the configured ones),
    rather than keep it forever; ``moltbot outbox`` lists it."""
    routable = (ALERTS, *channels)
    marks = ", ".join("?" for _ in routable)
    query = f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' AND channel NOT IN ({marks})"
    if not sql(query, routable).fetchone():  # the usual case: no write transaction at all
        return []
    with write_transaction():
        rows = sql(query, routable).fetchall()
        for row in rows:
            sql(
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?",
                (f"no {row[1]} channel is configured", row[0]),
            )
    return [_message(row) for row in rows]


def recover_sending() -> list[int]:
    """Rows a crash left between request and answer: they may have been delivered, so they
    are not sent again; they are marked failed and listed by ``moltbot outbox``."""
    # Several nodes: only the rows of sessions that ended (or lost their lease): another node's
    # rows are that node's to finish.
    mine = (
        " AND (session_id IS NULL OR session_id NOT IN (SELECT id FROM daemon_session "
        f"WHERE ended_at IS NULL AND lease_until >= {SERVER_NOW}))"
        if is_postgresql()
        else ""
    )
    with write_transaction():
        rows = [row[0] for row in sql(f"SELECT id FROM outbox WHERE status = 'sending'{mine}")]
        sql(
            f"UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'sending'{mine}",
            ("the daemon stopped while sending; it may have been delivered",),
        )
    return rows
