"""Planning (pure): what to do with a task whose time has come, given how late it is.

No I/O and no clock of its own: the daemon's loop calls ``plan_due`` inside
the transaction that claims the task, with the instant it considers "now";
the store applies the ``Plan`` it returns in that same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from moltbot.records import Plan

if TYPE_CHECKING:
    from moltbot.config.spec import TaskSpec
    from moltbot.schedules import Schedule
    from moltbot.store import DueTask

__all__ = ["ENUMERATION_LIMIT", "RECORDED_ONE_BY_ONE", "plan_claim", "plan_due"]

# How many missed occurrences are enumerated to report and replay them; past
# this a long outage of a per-second task is reported as "more than".
ENUMERATION_LIMIT = 10_000
# Occurrences not run are recorded one row each up to this many per gap, the
# rest as one row with their count: a week's outage of a per-minute task
# should not bury the history under 10 000 rows.
RECORDED_ONE_BY_ONE = 100

_ASLEEP = "the daemon was not running, or the machine was asleep"


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


def _not_run(
    status: str, occurrences: list[datetime], truncated: bool, why: str
) -> tuple[tuple[str, datetime, str], ...]:
    """One record per occurrence not run, up to RECORDED_ONE_BY_ONE, then one for the rest."""
    records = [(status, instant, f"{status}: {why}") for instant in occurrences[:RECORDED_ONE_BY_ONE]]
    rest = occurrences[RECORDED_ONE_BY_ONE:]
    if rest:
        count = f"more than {len(rest)}" if truncated else str(len(rest))
        message = (
            f"{status}: {count} more occurrence(s) between {_stamp(rest[0])} and {_stamp(rest[-1])}, "
            f"recorded as this one row: {why}"
        )
        records.append((status, rest[0], message))
    return tuple(records)


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
    queued_runs: int = 0,
) -> Plan:
    """Decide a due task's fate at ``now``.

    On time (late by at most ``grace``, counted from ``late_since`` when the
    task was busy until then): run the latest occurrence; those that passed
    meanwhile are coalesced into it and recorded as skipped. Late (downtime,
    suspend): the task's ``missed`` policy says whether to skip them all, run
    the latest once, or replay them all oldest first (at most ``max_catchup``,
    queued to run one after another, whatever ``overlap`` says). Every
    occurrence not run is recorded. A task with ``queued_runs`` (a catch-up
    under way) gets its new occurrence queued behind them, so the replay
    stays in order.
    """
    reference = max(due_at, late_since) if late_since else due_at
    occurrences, truncated = _occurrences(schedule, anchor, due_at, now)
    after_now = schedule.next_after(now, anchor)
    if now - reference <= grace:
        latest = occurrences[-1]
        next_run = schedule.next_after(due_at, anchor) if len(occurrences) == 1 else after_now
        why = f"coalesced into the run of {_stamp(latest)} (the task was busy or the daemon was behind)"
        records = _not_run("skipped", occurrences[:-1], truncated, why)
        if not queued_runs:
            return Plan(latest, next_run, records)
        if queued_runs < max_catchup:
            return Plan(None, next_run, records, (latest,))
        why = f"{queued_runs} runs of this task are already queued (at most max_catchup_runs = {max_catchup})"
        return Plan(None, next_run, records + _not_run("skipped", [latest], False, why))
    if missed == "skip":
        return Plan(None, after_now, _not_run("missed", occurrences, truncated, f"{_ASLEEP}; policy: skip"))
    if missed == "once" or truncated:
        why = f"{_ASLEEP}; policy: {missed}, only the latest occurrence runs"
        records = _not_run("missed", occurrences[:-1], truncated, why)
        return Plan(occurrences[-1] if not truncated else now, after_now, records)
    # missed == "all": replay oldest first, at most max_catchup queued at once.
    room = max(0, max_catchup - queued_runs)
    dropped = occurrences[: max(0, len(occurrences) - room)]
    why = f"{_ASLEEP}; policy: all, but replaying at most max_catchup_runs = {max_catchup}"
    return Plan(None, after_now, _not_run("missed", dropped, False, why), tuple(occurrences[len(dropped) :]))


def plan_claim(
    task: DueTask,
    spec: TaskSpec,
    now: datetime,
    *,
    grace: timedelta,
    max_catchup: int,
    ran_before: bool = False,
) -> Plan:
    """A due task as the daemon's claim finds it (re-read inside the claim's transaction)."""
    if task.current_run_id is not None:
        # overlap = skip: the occurrence passes while the task runs.
        following = spec.schedule.next_after(max(task.next_run, now), task.anchor)
        message = f"skipped: still running (run {task.current_run_id}); overlap policy: skip"
        return Plan(None, following, (("skipped", task.next_run, message),))
    if spec.schedule.one_shot and ran_before:
        message = "skipped: this one-shot already ran (asked for by hand); a one-shot runs once"
        return Plan(None, None, (("skipped", task.next_run, message),))
    return plan_due(
        spec.schedule,
        task.anchor,
        task.next_run,
        now,
        missed=spec.missed,
        grace=grace,
        max_catchup=max_catchup,
        late_since=task.last_finished,
        queued_runs=task.queued_runs,
    )
