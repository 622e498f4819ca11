"""Discord tasks as tasks of the core: the spec of a task read from the channel.

A task read from the channel becomes a ``TaskSpec`` with id ``discord-<message id>``
of kind ``discord`` (``moltbot/kinds/discord.py``: its run is
``python -m moltbot discord-action <id>``): it gets the runner's
timeouts, logs, retries, run records, alerts and every command (status, run:,
pause:) like any other task. Its schedule is stored in a canonical form
``parse_schedule`` reads back (a cron expression, an interval, or a one-shot
instant), so ``next`` and ``resume`` work on it too; its first run is the
message's ``next_run`` and intervals count from there (no drift). It has the
lowest priority, and only the format's keys (``message.KNOWN_KEYS``) are in
its definition.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from moltbot.config.spec import DISCORD_PREFIX, TaskSpec
from moltbot.discord_tasks.message import DiscordTask
from moltbot.schedules import Cron, Every, Once, Schedule, parse_schedule

__all__ = ["canonical_schedule", "task_id_of", "to_spec"]

ACTION_TIMEOUT = 180.0  # an agent's answer plus the post
# The lowest priority: when more is due than there are workers, the owner's own tasks start first.
PRIORITY = 10


def task_id_of(message_id: str) -> str:
    return f"{DISCORD_PREFIX}{message_id}"


def canonical_schedule(schedule: Schedule) -> str:
    """A text ``parse_schedule`` turns back into the same schedule."""
    if isinstance(schedule, Cron):
        return schedule.expression
    if isinstance(schedule, Once):
        assert schedule.instant is not None
        return f"at {schedule.instant.isoformat()}"
    if isinstance(schedule, Every):
        seconds = int(schedule.step.total_seconds())
        if schedule.calendar:
            days = seconds // 86400
            at = f" at {schedule.at:%H:%M}" if schedule.at else ""
            return f"every {days} days{at}" if days % 7 else f"every {days // 7}w{at}"
        return f"every {seconds}s"
    raise ValueError(f"no canonical form for {schedule!r}")


def to_spec(task: DiscordTask, zone: ZoneInfo) -> TaskSpec:
    schedule = task.schedule_in(zone)
    text = canonical_schedule(schedule)
    task_id = task_id_of(task.message_id)
    return TaskSpec(
        task_id=task_id,
        name=task.task_name,
        kind="discord",
        schedule_text=text,
        schedule=parse_schedule(text, zone),
        timezone=zone,
        enabled=task.active,
        priority=PRIORITY,
        timeout_seconds=ACTION_TIMEOUT,
        description=task.description,
        # After the message's keys, so none of them can pass for moltbot's own (a "kind" least of all).
        raw={
            **task.data,
            "kind": "discord",
            "message_id": task.message_id,
            "author_id": task.author_id,
            "source": "discord",
        },
        first_run=task.next_run,
    )
