"""The dead-man check: a task with ``expect_success_within`` and no success for that long is overdue.

Whatever the reason (failing, paused and forgotten, disabled, the daemon down,
a schedule that never fires), the admins hear it once per incident
(``store.open_overdue``) and once more when a run succeeds again
(``store/incidents.py``). The daemon's loop calls ``check`` on every pass; it
looks at the store only when its clock says a deadline may have come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, tzinfo

from moltbot import incidents, store
from moltbot.clock import Clock
from moltbot.config.spec import TaskSpec

__all__ = ["DeadMan"]

log = logging.getLogger(__name__)

LONGEST_SLEEP = timedelta(minutes=1)  # a success or a reload moves deadlines: look at least this often


class DeadMan:
    def __init__(self, clock: Clock, zone: tzinfo, can_alert: Callable[[], bool]) -> None:
        self.clock, self.zone, self.can_alert = clock, zone, can_alert
        self._next: datetime | None = None  # None: at the next pass
        self.seconds_left: float | None = None  # until the next look (None: no task watched)

    def check(self, specs: Iterable[TaskSpec]) -> None:
        """Open (and tell) what is overdue now; ``seconds_left`` until the next look."""
        self.seconds_left = self._check(specs)

    def _check(self, specs: Iterable[TaskSpec]) -> float | None:
        watched = {spec.task_id: spec.expect_success_seconds for spec in specs if spec.expect_success_seconds}
        now = self.clock.now()
        if not watched:
            self._next = None
            return None
        if self._next is not None and now < self._next:
            return (self._next - now).total_seconds()
        successes = store.last_successes()
        anchors = {task.task_id: task.anchor for task in store.list_tasks()}
        upcoming = now + LONGEST_SLEEP
        for task_id, seconds in watched.items():
            since = successes.get(task_id) or anchors.get(task_id)
            if since is None:
                continue
            deadline = since + timedelta(seconds=seconds)
            if deadline > now:
                upcoming = min(upcoming, deadline)
                continue
            upcoming = min(upcoming, now + timedelta(seconds=seconds))  # a success may start it again
            last = successes.get(task_id)
            text = incidents.overdue_text(task_id, last, since, now, self.zone)
            if store.open_overdue(task_id, since, text, now, tell=self.can_alert()):
                log.warning("%s: no success since %s: overdue", task_id, since.isoformat())
        self._next = upcoming
        return (upcoming - now).total_seconds()
