"""A task as a Discord Tasks-Channel message: read it, check it, write it back.

The format is the Unified Discord Tool's (NOTES.md §1.2, §1.5): a header of
``├─`` lines and a fenced ``json`` block; a plain fence or bare JSON also
counts. What the original got wrong is closed here: a malformed task gets a
reason instead of silently vanishing, an unknown schedule is rejected rather
than run daily, a ``next_run`` without an offset is wall time in the
configured zone (Europe/Berlin) resolved across DST deliberately, and a
message that would not fit Discord's 2000 characters is refused, never cut
into invalid JSON. The JSON is bounded before it is parsed (size, then depth),
only the format's own keys are kept (anything else is dropped, never stored
nor shown), and a value echoed in a reason is quoted (``moltbot.text.quoted``):
whoever wrote the message, its words never pass for moltbot's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from moltbot import bounded_json
from moltbot.schedules import Once, Schedule, ScheduleError, parse_schedule, resolve_wall_time
from moltbot.text import quoted

__all__ = ["DiscordTask", "InvalidTask", "parse_message", "render_message"]

MAX_CONTENT = 2000  # Discord's limit for a message's content
MAX_JSON_BYTES = 4 * MAX_CONTENT  # 2000 characters of UTF-8, at most 4 bytes each
MAX_JSON_DEPTH = 4  # a task is one flat object; anything deeper is no task
# The format's keys (NOTES.md §1.2): every other key is dropped when the message is read.
KNOWN_KEYS = frozenset(
    {
        "task_name", "description", "schedule", "time", "specific_date", "day_of_month", "month",
        "day_of_week", "action_type", "action_target", "action_template", "one_time", "created_at",
        "first_run", "next_run", "active",
    }
)  # fmt: skip
ACTION_TYPES = ("channel_post", "user_reminder", "self_task")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ONE_TIME_PREFIXES = ("in_", "tomorrow_", "today_at_")
_FENCED_JSON = re.compile(r"```json\s*\n?(.*?)```", re.DOTALL)
_ANY_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_TIME = re.compile(r"([01]?\d|2[0-3]):[0-5]\d")


class InvalidTask(ValueError):
    """A message that looks like a task but is not a valid one; ``reasons`` say why."""

    def __init__(self, message_id: str, reasons: list[str]) -> None:
        self.message_id, self.reasons = message_id, reasons
        super().__init__(f"Discord task message {message_id}: " + "; ".join(reasons))


@dataclass(frozen=True)
class DiscordTask:
    message_id: str
    author_id: str | None
    task_name: str
    schedule: str
    next_run: datetime  # aware, UTC
    action_type: str
    action_target: str | None
    action_template: str
    one_time: bool
    active: bool = True
    description: str = ""
    time: str | None = None
    specific_date: str | None = None
    day_of_week: str | None = None
    day_of_month: int | None = None
    month: int | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # as read, the format's keys only

    def schedule_in(self, zone: ZoneInfo) -> Schedule:
        """The moltbot schedule: a one-shot at ``next_run``, or the recurrence with all its day fields."""
        if self.one_time:
            return Once(f"at {self.next_run.isoformat()}", zone, instant=self.next_run)
        return parse_schedule(
            self.schedule,
            zone,
            time_of_day=self.time,
            day_of_week=self.day_of_week[:3] if self.day_of_week else None,
            day_of_month=self.day_of_month,
            month=self.month,
        )


def extract_json(content: str) -> str:
    """The JSON part of a message: a ```json fence, else any fence, else the whole text."""
    for pattern in (_FENCED_JSON, _ANY_FENCE):
        if match := pattern.search(content):
            return match[1]
    return content


def parse_message(message_id: str, content: str, author_id: str | None, zone: ZoneInfo) -> DiscordTask | None:
    """The task in a message; None for chatter (no task at all); InvalidTask for a broken one."""
    try:
        data = bounded_json.loads(extract_json(content), MAX_JSON_BYTES, MAX_JSON_DEPTH)
    except bounded_json.UnsafeJson as error:
        raise InvalidTask(message_id, [f"the JSON block is refused unparsed: {error}"]) from None
    except ValueError:
        if "```" in content or content.lstrip().startswith("{"):
            raise InvalidTask(message_id, ["the JSON block does not parse"]) from None
        return None  # chatter in the channel
    if not isinstance(data, dict):
        if "```" in content:
            raise InvalidTask(message_id, ["the JSON block is not an object"])
        return None
    data = {key: value for key, value in data.items() if key in KNOWN_KEYS}
    reasons: list[str] = []
    name = _text(data, "task_name", reasons, required=True)
    schedule = _text(data, "schedule", reasons, required=True)
    action_type = _text(data, "action_type", reasons, required=True)
    if action_type and action_type not in ACTION_TYPES:
        reasons.append(f"action_type {quoted(action_type)} is not one of {', '.join(ACTION_TYPES)}")
    clock = _text(data, "time", reasons)
    if clock and not _TIME.fullmatch(clock):
        reasons.append(f"time {quoted(clock)} is not HH:MM")
    weekday = _text(data, "day_of_week", reasons)
    if weekday and weekday.lower() not in WEEKDAYS:
        reasons.append(f"day_of_week {quoted(weekday)} is not a weekday (monday ... sunday)")
    day_of_month = _number(data, "day_of_month", 1, 31, reasons)
    month = _number(data, "month", 1, 12, reasons)
    next_run = _instant(data.get("next_run"), zone, reasons)
    one_time = data.get("one_time")
    if one_time is None and schedule:
        one_time = schedule.startswith(ONE_TIME_PREFIXES) or schedule == "on_date"
    if not isinstance(one_time, bool):
        reasons.append(f"one_time must be true or false, got {_shown(one_time)}")
    active = data.get("active", True)
    if not isinstance(active, bool):
        reasons.append(f"active must be true or false, got {_shown(active)}")
    if reasons:
        raise InvalidTask(message_id, reasons)
    assert name and schedule and action_type and next_run is not None and isinstance(one_time, bool)
    task = DiscordTask(
        message_id=message_id,
        author_id=author_id,
        task_name=name,
        schedule=schedule,
        next_run=next_run,
        action_type=action_type,
        action_target=_text(data, "action_target", []) or None,
        action_template=_text(data, "action_template", []) or "",
        one_time=one_time,
        active=bool(active),
        description=_text(data, "description", []) or "",
        time=clock or None,
        specific_date=_text(data, "specific_date", []) or None,
        day_of_week=weekday.lower() if weekday else None,
        day_of_month=day_of_month,
        month=month,
        data=data,
    )
    if not one_time:
        try:
            task.schedule_in(zone)
        except ScheduleError:  # unknown values are refused, never run "daily"
            # Not the grammar's message: it repeats the value unquoted.
            raise InvalidTask(
                message_id, [f"schedule {quoted(schedule)} is not a schedule of the Discord tool"]
            ) from None
    return task


def render_message(task: DiscordTask, next_run: datetime, zone: ZoneInfo) -> str:
    """The message for ``task`` with a new ``next_run`` (header and JSON agree); ValueError when too long."""
    data = {key: value for key, value in task.data.items() if key != "message_id"}
    data["next_run"] = next_run.astimezone(UTC).isoformat().replace("+00:00", "Z")
    local = next_run.astimezone(zone)
    target = task.action_target or {"user_reminder": "💬 User's DMs (default)"}.get(
        task.action_type, "🧠 Heartbeat Log (default)"
    )
    schedule = task.schedule + (f" at {task.time}" if task.time else "")
    header = [
        f"📋 **Task: {task.task_name}**",
        *([f"├─ Description: {task.description}"] if task.description else []),
        f"├─ Schedule: {schedule} (next run: {local:%Y-%m-%d %H:%M} {local.tzname()})",
        f"├─ One-time: {'Yes' if task.one_time else 'No'}",
        f"└─ Action: {task.action_type} → {target}",
    ]
    content = "\n".join(header) + "\n\n```json\n" + json.dumps(data, indent=2, ensure_ascii=False) + "\n```"
    if len(content) > MAX_CONTENT:
        raise ValueError(
            f"task {quoted(task.task_name)} would need {len(content)} characters; "
            f"Discord allows {MAX_CONTENT}"
        )
    return content


def _text(data: dict[str, Any], key: str, reasons: list[str], required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            reasons.append(f"{key} is missing")
        return None
    if not isinstance(value, str):
        reasons.append(f"{key} must be a string, got {_shown(value)}")
        return None
    return value.strip()


def _number(data: dict[str, Any], key: str, low: int, high: int, reasons: list[str]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        reasons.append(f"{key} must be {low}-{high}, got {_shown(value)}")
        return None
    return value


def _instant(value: Any, zone: ZoneInfo, reasons: list[str]) -> datetime | None:
    """``next_run``: with an offset (or Z) an instant; without, wall time in ``zone`` (NOTES §1.4)."""
    if not isinstance(value, str) or not value.strip():
        reasons.append("next_run is missing")
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if _OFFSET.search(text) else text)
    except ValueError:
        reasons.append(f"next_run {quoted(value)} is not an ISO-8601 time")
        return None
    if parsed.tzinfo is None:
        return resolve_wall_time(parsed, zone)
    return parsed.astimezone(UTC)


def _shown(value: Any) -> str:
    """A value from the message, in a reason: quoted, as its JSON."""
    return quoted(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
