"""Planning (pure): what to do with a task whose time has come, given how late it is.

No I/O and no clock of its own: the daemon's loop calls ``plan_due`` inside
the transaction that claims the task, with the instant it considers "now".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moltbot.schedules import Schedule

__all__ = ["ENUMERATION_LIMIT", "Plan", "plan_due"]

# How many missed occurrences are enumerated to report and replay them; past
# this a long outage of a per-second task is reported as "more than".
ENUMERATION_LIMIT = 10_000


@dataclass
class Plan:
    """What to do with a due task: run it (for which occurrence), what to record, next_run."""

    run_for: datetime | None
    next_run: datetime | None
    records: list[tuple[str, datetime, str]] = field(default_factory=list)  # (status, scheduled_for, message)


def _stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%SZ")


def _occurrences(
    schedule: Schedule, anchor: datetime, first: datetime, now: datetime
) -> tuple[list[datetime], bool]:
    """Fire instants from ``first`` up to ``now``; the flag says the list was cut short."""
    found = [first]
    current = first
    while len(found) < ENUMERATION_LIMIT:
        nxt = schedule.next_after(current, anchor)
        if nxt is None or nxt > now:
            return found, False
        found.append(nxt)
        current = nxt
    return found, True


def _count(items: list[datetime], truncated: bool) -> str:
    return f"more than {len(items)}" if truncated else str(len(items))


def plan_due(
    schedule: Schedule,
    anchor: datetime,
    due_at: datetime,
    now: datetime,
    *,
    missed: str,
    grace: timedelta,
    max_catchup: int,
    late_since: datetime | None = None,
) -> Plan:
    """Decide a due task's fate at ``now``.

    On time (late by at most ``grace``, counted from ``late_since`` when the
    task was busy until then): run it; occurrences that passed meanwhile are
    coalesced and recorded as skipped. Late (downtime, suspend): the task's
    ``missed`` policy says whether to skip them all, run once, or replay them
    all (at most ``max_catchup``). Every occurrence not run is recorded.
    """
    reference = max(due_at, late_since) if late_since else due_at
    occurrences, truncated = _occurrences(schedule, anchor, due_at, now)
    after_now = schedule.next_after(now, anchor)
    if now - reference <= grace:
        if len(occurrences) == 1:
            return Plan(due_at, schedule.next_after(due_at, anchor))
        skipped = occurrences[:-1]
        message = (
            f"{_count(skipped, truncated)} occurrence(s) from {_stamp(skipped[0])} coalesced into one run "
            "(the task was busy or the daemon was behind)"
        )
        return Plan(occurrences[-1], after_now, [("skipped", skipped[0], message)])
    span = f"between {_stamp(occurrences[0])} and {_stamp(occurrences[-1])}"
    reason = "(the daemon was not running, or the machine was asleep)"
    if missed == "skip":
        message = f"missed {_count(occurrences, truncated)} run(s) {span} {reason}; policy: skip"
        return Plan(None, after_now, [("missed", occurrences[0], message)])
    if missed == "once" or truncated:
        records = []
        if len(occurrences) > 1:
            message = (
                f"missed {_count(occurrences[:-1], truncated)} run(s) {span} {reason}; "
                "policy: once, running the latest now"
            )
            records.append(("missed", occurrences[0], message))
        return Plan(occurrences[-1] if not truncated else now, after_now, records)
    # missed == "all": replay oldest first, at most max_catchup of them.
    records = []
    if len(occurrences) > max_catchup:
        dropped = occurrences[: len(occurrences) - max_catchup]
        message = (
            f"missed {len(dropped)} run(s) between {_stamp(dropped[0])} and {_stamp(dropped[-1])} {reason}; "
            f"policy: all, but replaying at most {max_catchup}"
        )
        records.append(("missed", dropped[0], message))
        occurrences = occurrences[len(dropped) :]
    return Plan(occurrences[0], schedule.next_after(occurrences[0], anchor), records)
