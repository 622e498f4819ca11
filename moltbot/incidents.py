"""Incidents: a failing or overdue task told to the admins as one story, and its phone-sized texts.

A failing task opens an incident at its first failed scheduled occurrence; the
admins hear of it once it has failed ``alert_after`` times in a row, then at
most every ``alert_repeat`` (how many failures since), and once more when a
run succeeds ("recovered"). An overdue one (``expect_success_within``) is told
once and closed by the next success. The store keeps them (``store/incidents.py``);
this module is pure: the policy a run's end is judged by, and the texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from moltbot.records import Incident

__all__ = [
    "FAILING",
    "OVERDUE",
    "AlertPolicy",
    "closed_text",
    "overdue_text",
    "reminder_text",
    "span",
]

FAILING = "failing"
OVERDUE = "overdue"


@dataclass(frozen=True)
class AlertPolicy:
    """How a run's end may alert: the task's fields, and whether anyone can be told now."""

    notify: str = "failure"  # failure | always | never
    alert_after: int = 1
    alert_repeat_seconds: float | None = 86400.0  # None: never reminded
    scheduled: bool = True  # a scheduled occurrence (a requested run's requester hears anyway)
    can_alert: bool = True  # an alert channel can deliver it, and the daemon is not stopping
    zone: tzinfo = UTC  # of the times in the texts


def span(seconds: float) -> str:
    """``40 s``, ``12 min``, ``2 h``, ``3 d``: how long, for a phone."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= 2 * size or (unit != "d" and seconds >= size):
            return f"{round(seconds / size)} {unit}"
    return f"{round(seconds)} s"


def _hhmm(instant: datetime, zone: tzinfo, now: datetime) -> str:
    local = instant.astimezone(zone)
    same_day = local.date() == now.astimezone(zone).date()
    return local.strftime("%H:%M" if same_day else "%d %b %H:%M")


def _failures(count: int) -> str:
    return f"{count} failure{'' if count == 1 else 's'}"


def reminder_text(task_id: str, failures: int, since: datetime, now: datetime, zone: tzinfo) -> str:
    return (
        f"🔁 {task_id} still failing: {_failures(failures)} since {_hhmm(since, zone, now)}. "
        f"output:{task_id} for the output, pause:{task_id} to silence it"
    )


def closed_text(task_id: str, failing: Incident | None, overdue: Incident | None, now: datetime) -> str:
    """One message for a success that ends what the admins were told: failing, overdue, or both."""
    if failing is not None:
        text = f"✅ {task_id} recovered after {_failures(failing.failures)}"
        text += f" ({_since(failing.opened_at, now)})"
        return text + (f"; it had not succeeded for {_since(overdue.opened_at, now)}" if overdue else "")
    assert overdue is not None
    return f"✅ {task_id} succeeded again (none for {_since(overdue.opened_at, now)} before)"


def _since(instant: datetime, now: datetime) -> str:
    return span((now - instant).total_seconds())


def overdue_text(
    task_id: str, last_success: datetime | None, since: datetime, now: datetime, zone: tzinfo
) -> str:
    last = f"last success {_hhmm(last_success, zone, now)}" if last_success else "never succeeded"
    return (
        f"⏰ {task_id} has not succeeded for {span((now - since).total_seconds())} ({last}). "
        f"run:{task_id} to try now"
    )
