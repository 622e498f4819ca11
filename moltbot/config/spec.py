"""A task's validated definition, whatever its source (tasks.json, the Discord Tasks Channel)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from moltbot.schedules import Schedule

__all__ = [
    "DISCORD_PREFIX",
    "TASK_ID_PATTERN",
    "TaskSpec",
    "split_schedule_key",
    "task_source",
    "under_tasks",
]

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DISCORD_PREFIX = "discord-"  # task ids of Discord Tasks-Channel tasks; tasks.json may not use it


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    name: str
    kind: str  # script | llm | playbook | discord: moltbot/kinds/ says what its run is
    schedule_text: str
    schedule: Schedule
    timezone: ZoneInfo
    enabled: bool = True
    priority: int = 5
    timeout_seconds: float = 300.0
    retries: int = 0
    retry_backoff_seconds: float = 30.0
    overlap: str = "skip"
    missed: str = "once"
    env: tuple[tuple[str, str], ...] = ()
    description: str = ""
    notify: str = "failure"
    approve: bool = False  # each occurrence waits for an admin's yes (core/questions.py)
    approve_timeout: timedelta = timedelta(hours=1)
    ping_url: str = ""  # a monitor's ping URL (healthchecks.io's protocol): told when a run starts and ends
    alert_after: int = 1  # consecutive failed occurrences before the first alert
    alert_repeat_seconds: float | None = 86400.0  # a reminder at most this often; None: never
    expect_success_seconds: float | None = None  # no success for this long: overdue (a dead-man check)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the entry as written (kind fields too)
    first_run: datetime | None = None  # set by the source (a Discord task's next_run); else from the schedule
    after: tuple[str, ...] = ()  # run after each success of any of these (config/chains.py)
    after_failure: tuple[str, ...] = ()  # run after each final failure (or timeout) of any of these

    @property
    def schedule_key(self) -> str:
        """What identifies "the same schedule" across reloads (re-anchor when it changes)."""
        return f"{self.schedule_text}@{self.timezone.key}"

    def definition_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)


def task_source(task_id: str) -> str:
    """Where a task is defined: "discord" (the Tasks Channel) or "config" (tasks.json)."""
    return "discord" if task_id.startswith(DISCORD_PREFIX) else "config"


def under_tasks(value: str, tasks_dir: Path) -> Path:
    """A script, playbook or inventory path: absolute, or relative to MOLTBOT_HOME/tasks."""
    path = Path(value)
    return path if path.is_absolute() else tasks_dir / path


def split_schedule_key(key: str) -> tuple[str, ZoneInfo]:
    """The schedule text and zone stored in a task's ``schedule_key``."""
    text, zone = key.rsplit("@", 1)
    return text, ZoneInfo(zone)
