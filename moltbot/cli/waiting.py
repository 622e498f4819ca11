"""What waits for the admins' answer, as ``status`` shows it: runs that asked, occurrences to approve."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from moltbot.core import Question
from moltbot.local_times import wall_clock

__all__ = ["question_json", "waiting_lines"]


def question_json(question: Question) -> dict[str, Any]:
    return {
        "id": question.id,
        "number": question.number,
        "origin": question.origin,
        "task_id": question.task_id,
        "run_id": question.run_id,
        "scheduled_for": question.scheduled_for.isoformat() if question.scheduled_for else None,
        "text": question.text,
        "choices": list(question.choices),
        "asked_at": question.asked_at.isoformat(),
        "expires_at": question.expires_at.isoformat(),
    }


def waiting_lines(questions: list[Question], zone: ZoneInfo) -> list[str]:
    """``backup: running, waiting for an answer since 14:03`` (a run that asked),
    ``patch-all: waiting for approval since 04:00`` (an occurrence), ``moltbot ask: …`` (no task)."""
    if not questions:
        return []
    lines = ["waiting for an answer:"]
    for question in questions:
        since = wall_clock(question.asked_at, zone, "minutes")[11:]
        until = wall_clock(question.expires_at, zone, "minutes")[11:]
        if question.origin == "approval":
            what = f"{question.task_id}: waiting for approval since {since}"
        elif question.run_id is not None:
            what = f"{question.task_id}: running, waiting for an answer since {since}"
        else:
            what = f"moltbot ask: waiting for an answer since {since}"
        lines.append(f"  #{question.number} {what} (until {until})")
    return lines
