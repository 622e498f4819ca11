"""Questions for the admins in the store: asked, answered once, or expired.

A question is a row before it is sent (its text goes out through the outbox in
the same transaction), so a pending approval or ``moltbot ask`` survives a
restart; an answer is taken by a conditional update, so two answers (or an
answer and the timeout) can never both win.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from moltbot.records import Question
from moltbot.store.connection import from_db, insert_id, sql, to_db, write_transaction

__all__ = [
    "answer_question",
    "expired_questions",
    "get_question",
    "insert_question",
    "next_expiry",
    "open_questions",
    "set_question_run",
]

_COLUMNS = (
    "id, number, asked_at, expires_at, text, choices, sent_to, origin, task_id, scheduled_for, run_id, "
    "status, answer, answered_by, answered_at"
)


def _question(row: tuple[Any, ...]) -> Question:
    asked_at, expires_at = from_db(row[2]), from_db(row[3])
    assert asked_at is not None and expires_at is not None
    return Question(
        row[0], row[1], asked_at, expires_at, row[4], tuple(json.loads(row[5])), tuple(json.loads(row[6])),
        row[7], row[8], from_db(row[9]), row[10], row[11], row[12], row[13], from_db(row[14]),
    )  # fmt: skip


def insert_question(
    text: str,
    choices: tuple[str, ...],
    sent_to: tuple[str, ...],
    origin: str,
    now: datetime,
    expires_at: datetime,
    *,
    task_id: str | None = None,
    scheduled_for: datetime | None = None,
    run_id: int | None = None,
) -> Question | None:
    """Record a question, numbered after the open ones; None when this occurrence was asked about."""
    with write_transaction():
        taken = {row[0] for row in sql("SELECT number FROM question WHERE status = 'open'")}
        number = next(n for n in range(1, len(taken) + 2) if n not in taken)
        new_id = insert_id(
            "INSERT INTO question (number, asked_at, expires_at, text, choices, asked_of, sent_to, "
            "origin, task_id, scheduled_for, run_id, status) VALUES (?, ?, ?, ?, ?, 'admins', ?, ?, ?, ?, ?, "
            "'open') ON CONFLICT DO NOTHING",
            (
                number, to_db(now), to_db(expires_at), text, json.dumps(list(choices)),
                json.dumps(list(sent_to)), origin, task_id, to_db(scheduled_for), run_id,
            ),
        )  # fmt: skip
        if new_id is None:
            return None
        return get_question(new_id)


def get_question(question_id: int) -> Question | None:
    row = sql(f"SELECT {_COLUMNS} FROM question WHERE id = ?", (question_id,)).fetchone()
    return _question(row) if row else None


def open_questions() -> list[Question]:
    """The questions still waiting for an answer, oldest first."""
    rows = sql(f"SELECT {_COLUMNS} FROM question WHERE status = 'open' ORDER BY id")
    return [_question(row) for row in rows]


def answer_question(
    question_id: int, answer: str, by: str, now: datetime, status: str = "answered", run_id: int | None = None
) -> bool:
    """Settle an open question (``status`` "answered" or "expired"); False when it was settled before."""
    cursor = sql(
        "UPDATE question SET status = ?, answer = ?, answered_by = ?, answered_at = ?, "
        "run_id = COALESCE(?, run_id) WHERE id = ? AND status = 'open'",
        (status, answer, by, to_db(now), run_id, question_id),
    )
    return cursor.rowcount == 1


def set_question_run(question_id: int, run_id: int) -> None:
    """The run an approval started (or recorded as not run)."""
    sql("UPDATE question SET run_id = ? WHERE id = ?", (run_id, question_id))


def expired_questions(now: datetime) -> list[Question]:
    """Open questions whose time is up, oldest first (the caller settles each)."""
    rows = sql(
        f"SELECT {_COLUMNS} FROM question WHERE status = 'open' AND expires_at <= ? ORDER BY id",
        (to_db(now),),
    )
    return [_question(row) for row in rows]


def next_expiry() -> datetime | None:
    row = sql("SELECT MIN(expires_at) FROM question WHERE status = 'open'").fetchone()
    return from_db(row[0]) if row else None
