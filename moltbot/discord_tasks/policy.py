"""What the Tasks Channel may command: whose messages count, where tasks post, how often, how many.

Whoever can post in the Tasks Channel commands moltbot through it (issue #12).
So a message counts only when the bot itself wrote it (the Unified Discord Tool
writes tasks with the bot's token, and moltbot's reposts are its own) or one of
``[discord] allowed_authors``; any other is ignored, unread, and its author
reported to the admins at most once a day. A task is refused, with its reason,
when it would post anywhere but ``allowed_targets`` (``kinds/discord.py:
destination``, which checks again when it runs), when it recurs more often than
``min_interval_seconds``, or when ``max_tasks`` older ones are scheduled
already (message ids are snowflakes: they grow with time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import pairwise

from moltbot.config.integrations import DiscordSettings
from moltbot.discord_tasks.message import DiscordTask
from moltbot.kinds.discord import ActionError, destination
from moltbot.schedules import Schedule

__all__ = ["STRANGER_REPORT_EVERY", "author_of", "over_the_cap", "refusal", "shortest_gap"]

STRANGER_REPORT_EVERY = timedelta(days=1)
GAPS_CHECKED = 24  # successive occurrences looked at for the shortest gap: a day of `hourly`


def author_of(message: Mapping[str, object]) -> str:
    """The id of a message's author (Discord's, a snowflake); "" when there is none."""
    author = message.get("author")
    author_id = str(author.get("id", "")) if isinstance(author, dict) else ""
    return author_id if author_id.isdigit() else ""


def refusal(task: DiscordTask, settings: DiscordSettings) -> str | None:
    """Why ``task`` may not be scheduled (where it posts, how often it comes), or None."""
    try:
        destination(task.data, settings)
    except ActionError as error:
        return str(error)
    if task.one_time:
        return None
    gap = shortest_gap(task.schedule_in(settings.timezone), task.next_run)
    if gap < timedelta(seconds=settings.min_interval_seconds):
        return (
            f"it would run every {gap.total_seconds():g} s, more often than "
            f"[discord] min_interval_seconds ({settings.min_interval_seconds:g})"
        )
    return None


def shortest_gap(schedule: Schedule, start: datetime) -> timedelta:
    """The shortest time between two of the schedule's occurrences from ``start`` on."""
    times = [start, *schedule.upcoming(start, start, GAPS_CHECKED)]
    return min((later - earlier for earlier, later in pairwise(times)), default=timedelta.max)


def over_the_cap(tasks: Iterable[DiscordTask], cap: int) -> set[str]:
    """The message ids of the active tasks beyond the ``cap`` oldest."""
    active = sorted((task.message_id for task in tasks if task.active), key=int)
    return set(active[cap:])
