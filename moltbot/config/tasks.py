"""tasks.json: the original scheduler's format plus optional fields, validated into ``TaskSpec``s.

The fields every task has are checked here; each kind checks its own
(``moltbot/kinds/``). Every problem names the file, the line and the field,
and all of them are reported at once.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from moltbot.config.chains import CHAIN_FIELDS, check_chains, read_chain
from moltbot.config.errors import ConfigError, ConfigProblem, unknown_name
from moltbot.config.reader import TaskReader
from moltbot.config.spec import DISCORD_PREFIX, TASK_ID_PATTERN, TaskSpec
from moltbot.config.urls import http_url_problem
from moltbot.kinds import CONFIG_KINDS, KINDS

__all__ = ["load_tasks", "problem_at"]

_COMMON_FIELDS = (
    "task_id",
    "name",
    "kind",
    "interval_minutes",
    "enabled",
    "priority",
    "schedule",
    "timezone",
    "timeout_seconds",
    "retries",
    "retry_backoff_seconds",
    "overlap",
    "missed",
    "env",
    "description",
    "notify",
    "approve",
    "approve_timeout",
    "ping_url",
    "alert_after",
    "alert_repeat",
    "expect_success_within",
    "after",
    "after_failure",
)
_FIELDS = frozenset(_COMMON_FIELDS).union(*(KINDS[name].fields for name in CONFIG_KINDS))
_CHOICES = {
    "overlap": ("skip", "queue"),
    "missed": ("skip", "once", "all"),
    "notify": ("failure", "always", "never"),
}
_DEFAULT_CHOICE = {"overlap": "skip", "missed": "once", "notify": "failure"}


def load_tasks(
    path: Path, tasks_dir: Path, default_zone: ZoneInfo, task_user: str | None = None
) -> list[TaskSpec]:
    """Read and validate tasks.json; ConfigError lists every problem. ``task_user``: ``[daemon]
    task_user``, when known (a task's ``user`` needs it)."""
    from moltbot.config.syntax import json_syntax_problem
    from moltbot.jsonlines import line_map

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(path, None, None, "file not found")]) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([json_syntax_problem(path, text, exc)]) from exc
    lines = line_map(text)
    tasks = document.get("tasks") if isinstance(document, dict) else None
    if not isinstance(tasks, list):
        raise ConfigError([ConfigProblem(path, 1, "tasks", 'expected {"tasks": [ ... ]}')])
    problems: list[ConfigProblem] = []
    specs: list[TaskSpec] = []
    seen: dict[str, int] = {}
    readers = []
    for index, entry in enumerate(tasks):
        if not isinstance(entry, dict):
            problems.append(
                ConfigProblem(path, lines.get(("tasks", index)), f"tasks[{index}]", "expected an object")
            )
            continue
        reader = TaskReader(path, lines, index, entry, tasks_dir, task_user)
        chains = {field: read_chain(reader, field) for field in CHAIN_FIELDS}
        spec = _read_task(reader, default_zone, chains)
        readers.append((reader, chains))
        task_id = entry.get("task_id")
        if isinstance(task_id, str) and task_id in seen:
            reader.problem("task_id", f"duplicate task_id {task_id!r} (first at tasks[{seen[task_id]}])")
            spec = None
        elif isinstance(task_id, str):
            seen[task_id] = index
        if spec is not None:
            specs.append(spec)
    check_chains(readers)
    for reader, _ in readers:
        problems.extend(reader.problems)
    if problems:
        raise ConfigError(problems)
    return specs


def problem_at(path: Path, task_id: str, field: str, message: str) -> ConfigProblem:
    """A problem with a task found after loading (it needed the store): located in the file again."""
    from moltbot.jsonlines import line_map

    text = path.read_text()
    tasks = json.loads(text).get("tasks", [])
    for index, entry in enumerate(tasks):
        if isinstance(entry, dict) and entry.get("task_id") == task_id:
            lines = line_map(text)
            line = lines.get(("tasks", index, field), lines.get(("tasks", index)))
            return ConfigProblem(path, line, f"tasks[{index}].{field} ({task_id})", message)
    return ConfigProblem(path, None, field, f"{task_id}: {message}")


def _read_task(
    reader: TaskReader, default_zone: ZoneInfo, chains: dict[str, tuple[str, ...]]
) -> TaskSpec | None:
    from moltbot.schedules import Never, Schedule, parse_schedule

    entry = reader.entry
    for name in entry:
        if name not in _FIELDS:
            reader.problem(name, unknown_name(name, _FIELDS))
    task_id = reader.get("task_id", (str,), "", required=True)
    if task_id and not TASK_ID_PATTERN.fullmatch(task_id):
        reader.problem("task_id", "use letters, digits, '.', '_' or '-' (at most 64, no leading punctuation)")
    elif task_id and task_id.startswith(DISCORD_PREFIX):
        reader.problem(
            "task_id", f"ids starting with {DISCORD_PREFIX!r} belong to Discord Tasks-Channel tasks"
        )
    name = reader.get("name", (str,), task_id)
    kind = reader.get("kind", (str,), "script")
    if kind in CONFIG_KINDS:
        KINDS[kind].read(reader)
    else:
        reader.problem("kind", f"expected 'script', 'llm' or 'playbook', got {kind!r}")
    zone = default_zone
    if "timezone" in entry:
        zone_name = reader.get("timezone", (str,), "")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem("timezone", f"unknown IANA zone {zone_name!r} (e.g. 'Europe/Berlin')")
    chained = any(field in entry for field in CHAIN_FIELDS)
    schedule_text = _schedule_text(reader, chained)
    schedule: Schedule | None = None
    if chained and not schedule_text:
        schedule = Never("", zone)  # runs only after the tasks it names
    elif schedule_text:
        try:
            schedule = parse_schedule(schedule_text, zone)
        except ValueError as exc:  # ScheduleError
            reader.problem("schedule" if "schedule" in entry else "interval_minutes", str(exc))
    values = _common_values(reader)
    env = reader.get("env", (dict,), {})
    if not all(isinstance(value, str) for value in env.values()):
        reader.problem("env", "expected an object of string values")
    if reader.problems or schedule is None:
        return None
    return TaskSpec(
        task_id=task_id,
        name=name,
        kind=kind,
        schedule_text=schedule_text,
        schedule=schedule,
        timezone=zone,
        env=tuple(sorted(env.items())),
        raw=dict(entry),
        after=chains["after"],
        after_failure=chains["after_failure"],
        **values,
    )


def _common_values(reader: TaskReader) -> dict[str, Any]:
    values: dict[str, Any] = {
        "enabled": reader.get("enabled", (bool,), True),
        "priority": reader.get("priority", (int,), 5),
        "timeout_seconds": reader.get("timeout_seconds", (int, float), 300.0),
        "retries": reader.get("retries", (int,), 0),
        "retry_backoff_seconds": reader.get("retry_backoff_seconds", (int, float), 30.0),
        "description": reader.get("description", (str,), ""),
        "ping_url": reader.get("ping_url", (str,), ""),
    }
    if "ping_url" in reader.entry and (why := http_url_problem(values["ping_url"])):
        reader.problem("ping_url", why)
    for choice_field, choices in _CHOICES.items():
        value = reader.get(choice_field, (str,), _DEFAULT_CHOICE[choice_field])
        if value not in choices:
            reader.problem(choice_field, f"expected one of {', '.join(choices)}, got {value!r}")
        values[choice_field] = value
    if not 1 <= values["priority"] <= 10:
        reader.problem("priority", f"expected 1 (highest) to 10, got {values['priority']}")
    if values["timeout_seconds"] <= 0:
        reader.problem("timeout_seconds", "must be positive")
    if not 0 <= values["retries"] <= 20:
        reader.problem("retries", "expected 0 to 20")
    if values["retry_backoff_seconds"] < 0:
        reader.problem("retry_backoff_seconds", "must not be negative")
    values.update(_approval(reader))
    if values["approve"] and any(reader.entry.get(name) for name in ("after", "after_failure")):
        # A chained run is queued when its upstream ends, not claimed when due: it would never ask.
        reader.problem("approve", "cannot be combined with after/after_failure: a chained run would not ask")
    values["alert_after"] = reader.get("alert_after", (int,), 1)
    if not 1 <= values["alert_after"] <= 10000:
        reader.problem("alert_after", f"expected 1 to 10000 failed occurrences, got {values['alert_after']}")
    values["alert_repeat_seconds"] = _duration(reader, "alert_repeat", "24h", allow_never=True)
    values["expect_success_seconds"] = _duration(reader, "expect_success_within", None)
    return values


_LONGEST = timedelta(days=3660)  # ten years: larger is a typo, and past datetime's range a crash


def _duration(reader: TaskReader, name: str, default: str | None, allow_never: bool = False) -> float | None:
    """Seconds; None when not given (no default) or ``"never"``."""
    from moltbot.durations import parse_duration

    text = reader.get(name, (str,), default)
    if text is None:
        return None
    try:
        duration = parse_duration(text, at_most=_LONGEST, allow_never=allow_never)
    except ValueError as exc:
        reader.problem(name, str(exc))
        return None
    return None if duration is None else duration.total_seconds()


def _approval(reader: TaskReader) -> dict[str, Any]:
    """``approve: true``: each occurrence waits for an admin's yes, at most ``approve_timeout``."""
    from moltbot.durations import MAX_DURATION, parse_duration

    approve = reader.get("approve", (bool,), False)
    text = reader.get("approve_timeout", (str,), "1h")
    try:
        timeout = parse_duration(text, at_most=MAX_DURATION) or timedelta(hours=1)
    except ValueError as exc:
        reader.problem("approve_timeout", str(exc))
        timeout = timedelta(hours=1)
    if "approve_timeout" in reader.entry and not approve:
        reader.problem("approve_timeout", 'has no effect without "approve": true')
    return {"approve": approve, "approve_timeout": timeout}


def _schedule_text(reader: TaskReader, chained: bool) -> str:
    entry = reader.entry
    if "schedule" in entry and "interval_minutes" in entry:
        reader.problem("schedule", "give either 'schedule' or 'interval_minutes', not both")
        return ""
    if "schedule" in entry:
        return str(reader.get("schedule", (str,), ""))
    minutes = reader.get("interval_minutes", (int, float), None)
    if minutes is None:
        if "interval_minutes" not in entry and not chained:
            reader.problem(
                None, "missing 'schedule' (or 'after', 'after_failure', or the original 'interval_minutes')"
            )
        return ""
    if minutes <= 0:
        reader.problem("interval_minutes", f"must be positive, got {minutes}")
        return ""
    seconds = round(minutes * 60)
    return f"every {int(minutes)}m" if minutes == int(minutes) else f"every {seconds}s"
