"""Registering tasks: tasks.json read against the history, and the store's tasks made to match.

The core's set-up half (``Core.load_specs``, ``Core.sync``): what a task
definition means for its schedule in the store. A one-shot is at most once:
one whose time is already past is refused when it never ran and was not
registered before (then it is a missed occurrence, for its ``missed`` policy),
and one that ran is done whatever later edits do to its instant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from moltbot import store

if TYPE_CHECKING:
    from moltbot.config.home import Home
    from moltbot.config.spec import TaskSpec

__all__ = ["TASKS_HASH", "config_changed", "definitions_differ", "definitions_hash", "load_specs", "sync"]

_DAWN = datetime.min.replace(tzinfo=UTC)  # "after" for a one-shot's only instant


def load_specs(
    home: Home, default_zone: ZoneInfo, now: datetime, task_user: str | None = None
) -> list[TaskSpec]:
    """Read tasks.json (raises ConfigError naming file, line and field); with the store open,
    a one-shot already past that never ran is a problem too."""
    from moltbot.config.errors import ConfigError
    from moltbot.config.tasks import load_tasks, problem_at

    specs = load_tasks(home.tasks_json, home.tasks_dir, default_zone, task_user)
    stale = [spec for spec in specs if store.is_open() and _one_shot_already_past(spec, now)]
    if stale:
        message = (
            "{!r} is already past and {!r} has never run: give it a time to come (or `in 1 minute`), "
            "or use `moltbot run` to run it now"
        )
        raise ConfigError(
            [
                problem_at(
                    home.tasks_json,
                    spec.task_id,
                    "schedule",
                    message.format(spec.schedule_text, spec.task_id),
                )
                for spec in stale
            ]
        )
    return specs


def _one_shot_already_past(spec: TaskSpec, now: datetime) -> bool:
    if not spec.schedule.one_shot or spec.first_run is not None:
        return False
    fire = spec.schedule.next_after(_DAWN, now)
    if fire is not None and fire > now:
        return False
    known = store.get_task(spec.task_id)
    if known is not None and not known.removed and known.schedule_key == spec.schedule_key:
        return False
    return not store.has_started_a_run(spec.task_id)


def sync(home: Home, specs: list[TaskSpec], source: str, now: datetime) -> store.SyncResult:
    """Make the store's tasks from ``source`` match ``specs``."""
    from moltbot.config.spec import task_source

    by_id = {spec.task_id: spec for spec in specs}
    definitions = [
        store.TaskDefinition(
            spec.task_id,
            spec.name,
            spec.definition_json(),
            spec.schedule_key,
            spec.priority,
            spec.enabled,
            spec.overlap,
            spec.first_run,
        )
        for spec in specs
    ]

    def first_run(task_id: str, anchor: datetime) -> datetime | None:
        spec = by_id[task_id]
        if spec.first_run is not None:  # given by its source (a Discord task's next_run)
            return spec.first_run
        if spec.schedule.one_shot:
            # A one-shot that ran is done, whatever later edits (a new timezone) do to its instant.
            return None if store.has_started_a_run(task_id) else spec.schedule.next_after(_DAWN, anchor)
        return spec.schedule.next_after(anchor, anchor)

    in_scope: Callable[[str], bool] = lambda task_id: task_source(task_id) == source  # noqa: E731
    result = store.sync_tasks(definitions, now, first_run, in_scope)
    if source == "config":
        store.set_meta(_config_key(home), _fingerprint(home))
        if store.is_postgresql():  # what every node's tasks.json must say (cluster.py compares)
            store.set_meta(TASKS_HASH, f"{definitions_hash(specs)} {_node(home)}")
    return result


TASKS_HASH = "tasks_hash"  # "<hash> <node>": the tasks.json definitions the last sync wrote, and whose


def definitions_hash(specs: list[TaskSpec]) -> str:
    """The tasks.json definitions (not a Discord channel's), as one short hash: equal on every node
    that has the same tasks.json."""
    from moltbot.config.spec import task_source

    mine = [spec for spec in specs if task_source(spec.task_id) == "config"]
    pairs = sorted((spec.task_id, spec.definition_json()) for spec in mine)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def definitions_differ(specs: list[TaskSpec]) -> str | None:
    """PostgreSQL: the node whose tasks.json the database has, when this one's differs (None: they
    agree, or one box on SQLite)."""
    recorded = (store.get_meta(TASKS_HASH) or "").split()
    if not store.is_postgresql() or len(recorded) != 2 or recorded[0] == definitions_hash(specs):
        return None
    return recorded[1]


def _node(home: Home) -> str:
    from moltbot.config.database import node_name

    return store.current_node() or node_name(home)


def _config_key(home: Home) -> str:
    """Each node has a tasks.json of its own (PostgreSQL): each remembers what it synced."""
    return f"config_hash:{_node(home)}" if store.is_postgresql() else "config_hash"


def config_changed(home: Home) -> bool:
    """Whether tasks.json changed since the last sync from it."""
    return store.get_meta(_config_key(home)) != _fingerprint(home)


def _fingerprint(home: Home) -> str:
    try:
        stat = home.tasks_json.stat()
    except FileNotFoundError:
        return ""
    return f"{stat.st_mtime_ns}:{stat.st_size}"
