"""Incidents in the store: a failing or overdue task's story, kept so a restart neither repeats nor forgets.

A run's end updates its task's incidents inside the transaction that records
it (``runs.py: finish_run``) and queues what the admins are owed then (the
opening alert, a reminder, the recovery): alert and incident commit together.
The policy and the texts are ``moltbot/incidents.py``; the overdue ones are
opened by the daemon's dead-man check (``core/overdue.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from moltbot import incidents
from moltbot.incidents import FAILING, OVERDUE, AlertPolicy
from moltbot.records import ADMINS, ALERTS, Incident
from moltbot.store.connection import from_db, insert_id, note_outbox_write, sql, to_db, write_transaction

__all__ = ["CREATE_INCIDENT", "last_successes", "open_incidents", "open_overdue", "run_ended"]

CREATE_INCIDENT = (
    "CREATE TABLE IF NOT EXISTS incident (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, "
    "kind TEXT NOT NULL, opened_at TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0, "
    "alerted INTEGER NOT NULL DEFAULT 0, last_alert_at TEXT, closed_at TEXT)",
    "CREATE INDEX IF NOT EXISTS incident_open ON incident (task_id, kind) WHERE closed_at IS NULL",
)
_COLUMNS = "id, task_id, kind, opened_at, failures, alerted, last_alert_at"
FAILED = ("failed", "timeout")


def run_ended(task_id: str, run_id: int, status: str, now: datetime, policy: AlertPolicy) -> None:
    """Inside finish_run: the task's incidents after this end, and the alerts it owes."""
    tell = policy.can_alert and policy.notify == "failure"
    if policy.notify == "always" and policy.scheduled and policy.can_alert:
        _alert(None, run_id, now)  # every scheduled end alerts: no incident texts on top
    open_now = {incident.kind: incident for incident in _open(task_id)}
    if status == "success":
        owed: dict[str, Incident] = {}
        for incident in open_now.values():
            sql("UPDATE incident SET closed_at = ? WHERE id = ?", (to_db(now), incident.id))
            # Owed to whoever heard the opening, whether or not anyone can be told now (a
            # foreground run, a shutdown): it waits in the outbox like any alert.
            if incident.alerted and (incident.kind == OVERDUE or policy.notify == "failure"):
                owed[incident.kind] = incident
        if owed:
            _alert(incidents.closed_text(task_id, owed.get(FAILING), owed.get(OVERDUE), now), None, now)
        return
    if status not in FAILED or not policy.scheduled:
        return  # a requested run's failure is its requester's to hear; not an occurrence that failed
    failing = open_now.get(FAILING)
    if failing is None:
        new_id = insert_id(
            "INSERT INTO incident (task_id, kind, opened_at, failures) VALUES (?, ?, ?, 1)",
            (task_id, FAILING, to_db(now)),
        )
        failing = Incident(new_id or 0, task_id, FAILING, now, 1, False, None)
    else:
        failing = failing._replace(failures=failing.failures + 1)
        sql("UPDATE incident SET failures = ? WHERE id = ?", (failing.failures, failing.id))
    if not tell:
        return
    if not failing.alerted:
        if failing.failures >= policy.alert_after:
            sql("UPDATE incident SET alerted = 1, last_alert_at = ? WHERE id = ?", (to_db(now), failing.id))
            _alert(None, run_id, now)  # the opening alert: this run's result (handlers/format.py)
        return
    repeat = policy.alert_repeat_seconds
    last = failing.last_alert_at
    if repeat is not None and last is not None and now - last >= timedelta(seconds=repeat):
        sql("UPDATE incident SET last_alert_at = ? WHERE id = ?", (to_db(now), failing.id))
        text = incidents.reminder_text(task_id, failing.failures, failing.opened_at, now, policy.zone)
        _alert(text, None, now)


def open_overdue(task_id: str, since: datetime, text: str, now: datetime, tell: bool) -> bool:
    """The dead-man check's verdict: an overdue incident opened (status shows it), told once when
    ``tell`` (someone can hear it now; else later, while still open). False: nothing new."""
    with write_transaction():
        found = next((incident for incident in _open(task_id) if incident.kind == OVERDUE), None)
        if found is not None and (found.alerted or not tell):
            return False
        if found is None:
            sql(
                "INSERT INTO incident (task_id, kind, opened_at, alerted, last_alert_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (task_id, OVERDUE, to_db(since), int(tell), to_db(now) if tell else None),
            )
        else:
            sql("UPDATE incident SET alerted = 1, last_alert_at = ? WHERE id = ?", (to_db(now), found.id))
        if tell:
            _alert(text, None, now)
    return True


def open_incidents() -> list[Incident]:
    """Every incident not closed yet, oldest first."""
    rows = sql(f"SELECT {_COLUMNS} FROM incident WHERE closed_at IS NULL ORDER BY id").fetchall()
    return [_incident(row) for row in rows]


def last_successes() -> dict[str, datetime]:
    """Each task's last successful run's end."""
    rows = sql(
        "SELECT task_id, MAX(finished_at) FROM run WHERE status = 'success' AND finished_at IS NOT NULL "
        "GROUP BY task_id"
    ).fetchall()
    return {task_id: when for task_id, finished in rows if (when := from_db(finished)) is not None}


def _open(task_id: str) -> list[Incident]:
    rows = sql(f"SELECT {_COLUMNS} FROM incident WHERE task_id = ? AND closed_at IS NULL", (task_id,))
    return [_incident(row) for row in rows.fetchall()]


def _incident(row: tuple[object, ...]) -> Incident:
    id_, task_id, kind, opened_at, failures, alerted, last_alert_at = row
    opened = from_db(str(opened_at))
    assert opened is not None
    return Incident(
        int(str(id_)), str(task_id), str(kind), opened, int(str(failures)), bool(alerted),
        from_db(last_alert_at) if isinstance(last_alert_at, str) else None,
    )  # fmt: skip


def _alert(text: str | None, run_id: int | None, now: datetime) -> None:
    """An alert for the admins, queued in the caller's transaction: a text, or a run's result."""
    sql(
        "INSERT INTO outbox (channel, address, kind, text, run_id, created_at, due_at, attempts, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'pending')",
        (ALERTS, ADMINS, "text" if run_id is None else "run-finished", text, run_id, to_db(now), to_db(now)),
    )
    note_outbox_write()
