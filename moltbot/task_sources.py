"""The task definitions the daemon schedules, by source: tasks.json, and the Discord Tasks Channel.

tasks.json is read at start and on reload (SIGHUP, ``moltbot reload``: ``reloads.py``); a channel
sync, on a thread of its own, offers its source's tasks, which the daemon's loop
applies on its next pass. Each source replaces only its own tasks, in the daemon
and in the store, so one never removes the other's.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from moltbot.config.spec import TaskSpec, task_source
from moltbot.core.api import Core

if TYPE_CHECKING:
    from moltbot.store import SyncResult

__all__ = ["TaskSources"]

log = logging.getLogger(__name__)


class TaskSources:
    def __init__(self, core: Core, specs: list[TaskSpec]) -> None:
        self.core = core
        self.specs = {spec.task_id: spec for spec in specs}  # what the daemon schedules, by task id
        self._offered: dict[str, list[TaskSpec]] = {}  # specs from other sources, applied by the loop
        self._lock = threading.Lock()

    def apply_config(self, specs: list[TaskSpec]) -> SyncResult:
        """tasks.json read again (``reloads.py`` read and checked it): the daemon's and the store's."""
        self.set("config", specs)
        result = self.core.sync(specs)
        log.info(
            "config reloaded: %d tasks (added %s; changed %s; removed %s)",
            len(specs),
            ", ".join(result.added) or "none",
            ", ".join(result.changed) or "none",
            ", ".join(result.removed) or "none",
        )
        return result

    def offer(self, source: str, specs: list[TaskSpec]) -> None:
        """From another thread (a channel sync): applied by ``apply_offers`` on the loop."""
        with self._lock:
            self._offered[source] = specs

    @property
    def offers_waiting(self) -> bool:
        return bool(self._offered)

    def apply_offers(self) -> None:
        with self._lock:
            offered, self._offered = self._offered, {}
        for source, specs in offered.items():
            self.set(source, specs)
            result = self.core.sync(specs, source=source)
            changes = {"added": result.added, "changed": result.changed, "removed": result.removed}
            if any(changes.values()):
                log.info(
                    "%s tasks synced: %s", source, "; ".join(f"{k} {v}" for k, v in changes.items() if v)
                )

    def set(self, source: str, specs: list[TaskSpec]) -> None:
        """Replace the specs of one source (tasks.json, the Discord channel); keep the others'."""
        kept = {task_id: spec for task_id, spec in self.specs.items() if task_source(task_id) != source}
        self.specs = kept | {spec.task_id: spec for spec in specs}
