"""The core API: the one door through which the CLI, the chat handlers and transports reach the store.

It knows tasks, schedules, runs and the daemon process; it knows nothing of
Signal or Discord, and it hands out plain values (``moltbot.records``), never
database rows. Every change the daemon must react to wakes it (SIGUSR1, or
directly in its own process), so the daemon never polls.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from moltbot import store
from moltbot.clock import Clock, SystemClock
from moltbot.config.home import Home
from moltbot.core import one_shots, registration
from moltbot.core.chat import Chat
from moltbot.core.database_view import DatabaseView
from moltbot.core.lookup import AmbiguousTask, UnknownTask, resolve_task
from moltbot.core.people import People
from moltbot.core.questions import Questions
from moltbot.records import (
    HEALTH,
    RELOAD,
    Event,
    HealthReport,
    Incident,
    ReloadOutcome,
    Run,
    Task,
    TaskState,
    Watcher,
)

# Imported where used: `moltbot status` reads neither moltbot.toml nor tasks.json (nor needs the
# health board's thread machinery).
if TYPE_CHECKING:
    from moltbot.config.settings import Settings
    from moltbot.config.spec import TaskSpec
    from moltbot.core.health import HealthBoard
    from moltbot.run_history import RunHistory
    from moltbot.schedules import Schedule

__all__ = ["AmbiguousTask", "Core", "UnknownTask", "database_locked"]


def database_locked(error: BaseException) -> bool:
    """Whether ``error`` is the database held by another process beyond the busy timeout:
    transient, so the caller tries the same thing again later rather than dropping it."""
    return store.is_locked_error(error)


class Core(DatabaseView):
    """Operations on one MOLTBOT_HOME."""

    def __init__(self, home: Home, clock: Clock | None = None, settings: Settings | None = None) -> None:
        self.home = home
        self.clock: Clock = clock or SystemClock()
        self._settings = settings
        self.chat = Chat(self.clock)
        self.people = People(self.clock, lambda: self.settings)  # paired with `moltbot pair`
        self.questions = Questions(self.clock, self.people.signal_settings, self.local_zone, self.wake_daemon)
        # Set by a daemon in this process: chat handlers wake its loop directly.
        self.wake_in_process: Callable[[], None] | None = None
        self._health: HealthBoard | None = None

    # --- set-up -----------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from moltbot.config.settings import load_settings

            self._settings = load_settings(self.home.settings_toml)
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        """A reload's settings, from now on (the daemon's, after ``reloads.py`` applied them)."""
        self._settings = settings

    @property
    def health(self) -> HealthBoard:
        """This process's health board: its channels and threads report to it (the daemon's)."""
        if self._health is None:
            from moltbot.core.health import HealthBoard

            self._health = HealthBoard(self.clock, self.chat)
        return self._health

    def load_specs(self) -> list[TaskSpec]:
        """Read tasks.json (raises ConfigError naming file, line and field; see registration.py)."""
        settings = self.settings
        return registration.load_specs(self.home, settings.timezone, self.clock.now(), settings.task_user)

    def sync(self, specs: list[TaskSpec], source: str = "config") -> store.SyncResult:
        """Make the store's tasks from ``source`` ("config": tasks.json; "discord") match ``specs``."""
        return registration.sync(self.home, specs, source, self.clock.now())

    def sync_if_changed(self) -> None:
        """For CLI use without a daemon: pick up edits to tasks.json (not while other nodes run: a
        stale copy here would overwrite theirs; a start or `moltbot reload` of this node does it)."""
        if registration.config_changed(self.home) and not self.nodes():
            self.sync(self.load_specs())

    # --- looking things up --------------------------------------------------------------------

    def resolve(self, name: str) -> Task:
        """A task by id or (case-insensitive) name, the owner's first, for every front
        (UnknownTask suggesting the closest, AmbiguousTask naming both; see core/lookup.py)."""
        try:
            return resolve_task(name)
        except AmbiguousTask:
            raise
        except UnknownTask as unknown:
            if self.daemon_pid() is None or not registration.config_changed(self.home):
                raise
            raise UnknownTask(name, unknown.suggestion, unread=True) from None

    def task(self, task_id: str) -> Task | None:
        """A task by its exact id (also one removed from its source), or None."""
        return store.get_task(task_id)

    def tasks(self) -> list[Task]:
        """Every task still defined, highest priority first."""
        return store.list_tasks()

    def task_states(self) -> list[TaskState]:
        """Every task's line in status; a one-shot that has run carries when it ran (``done_at``)."""
        states = store.task_states()
        done = one_shots.done_at(states)
        incidents: dict[str, tuple[Incident, ...]] = {}
        for incident in store.open_incidents():
            incidents[incident.task_id] = (*incidents.get(incident.task_id, ()), incident)
        return [
            state._replace(done_at=done.get(state.task_id), incidents=incidents.get(state.task_id, ()))
            for state in states
        ]

    def done_at(self, task: Task) -> datetime | None:
        """When a one-shot that is done ran; None for any other task."""
        return one_shots.done_at([task]).get(task.task_id)

    def definition(self, task_id: str) -> dict[str, Any]:
        """The task's entry as its source gave it ({} when there is no such task)."""
        task = store.get_task(task_id)
        return task.spec() if task else {}

    def schedule_of(self, task: Task) -> Schedule:
        from moltbot.config.spec import split_schedule_key
        from moltbot.schedules import Never, parse_schedule

        text, zone = split_schedule_key(task.schedule_key)
        return parse_schedule(text, zone) if text else Never(text, zone)  # Never: chained only

    def zone_of(self, task: Task) -> ZoneInfo:
        from moltbot.config.spec import split_schedule_key

        return split_schedule_key(task.schedule_key)[1]

    def local_zone(self) -> ZoneInfo:
        """The zone times are shown to people in: ``[daemon] timezone``, else the host's.

        Raises ConfigError (file, line, field) when it cannot be read."""
        if self._settings is None:
            from moltbot.config.zone import configured_zone

            zone = configured_zone(self.home.settings_toml)
            if zone is not None:
                return zone
        return self.settings.timezone  # loaded already, or the file is wrong: this says where

    def health_report(self) -> HealthReport | None:
        """The running daemon's channels and threads, as it last recorded them (None: no daemon)."""
        recorded = store.get_meta(HEALTH) if self.daemon_pid() is not None else None
        return HealthReport.from_json(recorded) if recorded else None

    def record_reload(self, ok: bool, text: str) -> ReloadOutcome:
        """The daemon says what its reload did, numbered after the last one."""
        last = self.last_reload()
        outcome = ReloadOutcome((last.number if last else 0) + 1, self.clock.now(), ok, text)
        store.set_meta(RELOAD, json.dumps({**outcome._asdict(), "at": outcome.at.isoformat()}))
        return outcome

    def last_reload(self) -> ReloadOutcome | None:
        """The outcome of the daemon's last reload (None: none recorded, or not readable)."""
        recorded = store.get_meta(RELOAD)
        try:
            value = json.loads(recorded) if recorded else None
            if value is None:
                return None
            at = datetime.fromisoformat(value["at"])
            return ReloadOutcome(int(value["number"]), at, bool(value["ok"]), str(value["text"]))
        except (ValueError, KeyError, TypeError):
            return None

    def logs(self, name: str | None = None, limit: int = 20) -> list[Event]:
        task_id = self.resolve(name).task_id if name else None
        return store.recent_events(task_id, limit)

    def next_runs(self, name: str, count: int = 5) -> list[datetime]:
        task = self.resolve(name)
        if self.done_at(task) is not None:
            return []
        schedule = self.schedule_of(task)
        if task.next_run is None:
            if schedule.one_shot or task.paused_by or not task.enabled:
                return []
            return schedule.upcoming(self.clock.now(), task.anchor, count)
        return [task.next_run, *schedule.upcoming(task.next_run, task.anchor, count - 1)]

    def run(self, run_id: int) -> Run | None:
        return store.get_run(run_id)

    def runs(self, name: str, limit: int = 10) -> list[Run]:
        """A task's latest runs, newest first."""
        return store.recent_runs(self.resolve(name).task_id, limit)

    def history(self, name: str, limit: int | None = None) -> RunHistory:
        """A task's last ``limit`` runs (default ``DEFAULT_RUNS``) at a glance (``history``)."""
        from moltbot.run_history import DEFAULT_RUNS, RunHistory

        task_id = self.resolve(name).task_id
        limit = DEFAULT_RUNS if limit is None else limit
        return RunHistory.of(task_id, store.recent_runs(task_id, limit))

    def last_output(self, name: str) -> Run | None:
        """The task's last finished run (its output tails)."""
        return store.last_finished_run(self.resolve(name).task_id)

    # --- changing state ------------------------------------------------------------------------

    def pause(self, name: str, by: str = "user", reason: str | None = None) -> Task:
        task = self.resolve(name)
        if task.paused_by == by:
            return task
        result = store.pause_task(task.task_id, by, self.clock.now(), reason)
        self.wake_daemon()
        return result

    def resume(self, name: str) -> Task:
        """Unpause; the next run comes from the schedule after now (no replay of the pause)."""
        task = self.resolve(name)
        if not task.paused_by:
            return task
        now = self.clock.now()
        next_run = self.schedule_of(task).next_after(now, task.anchor) if task.enabled else None
        result = store.resume_task(task.task_id, next_run, now, "resumed by user")
        self.wake_daemon()
        return result

    def request_run(
        self,
        name: str,
        trigger: str = "manual",
        requested_by: str | None = None,
        watcher: Watcher | None = None,
    ) -> Run:
        """Queue a run for the daemon (recorded before it happens).

        A ``watcher`` (a chat) gets the run's result when it ends: recorded in
        the same transaction as the run, queued for it in the one that ends it.
        A task already running with ``overlap: skip`` gets a run recorded as skipped.
        """
        task = self.resolve(name)
        refusal = None
        if task.current_run_id is not None and task.overlap == "skip":
            refusal = f"already running (run {task.current_run_id}); overlap policy: skip"
        run = store.enqueue_run(
            task.task_id, trigger, requested_by, self.clock.now(), refuse_because=refusal, watcher=watcher
        )
        self.wake_daemon()
        return run

    def request_stop(self, name: str, watcher: Watcher | None = None) -> Run | None:
        """Stop the task's current run; a ``watcher`` gets its result (once) when it ends."""
        task = self.resolve(name)
        run = store.request_stop(task.task_id, self.clock.now(), watcher)
        if run is None:
            return None
        if self.daemon_pid() is None:
            # A foreground `moltbot run` owns it; its runner sees the exit.
            from moltbot.processes import processes_of_run, signal_processes

            signal_processes(processes_of_run(self.home.root, run.id), signal.SIGTERM)
        self.wake_daemon()
        return run

    def wake_daemon(self) -> None:
        """Tell the daemon to look at the store again (after the current transaction commits)."""
        store.after_commit(self._wake_daemon_now)

    def _wake_daemon_now(self) -> None:
        store.wake_nodes()  # PostgreSQL: every node's daemon; whichever is free claims it
        if self.wake_in_process is not None:
            self.wake_in_process()
            return
        pid = self.daemon_pid()
        if pid and pid > 0 and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def wait_for_run(self, run_id: int, poll: float = 0.05) -> Run:
        """Wait for a queued or running run to finish (for the CLI's `run`), or for the daemon to go.

        The CLI is a separate process with no channel from the daemon but the
        database, so it re-reads the row; the daemon itself never polls.
        """
        while True:
            run = store.get_run(run_id)
            if run is None:
                raise LookupError(f"run {run_id} vanished")
            if not run.active or self.daemon_pid() is None:
                return run
            time.sleep(poll)

    # --- what runs report from inside (see moltbot/kinds/base.py: ActionContext) ---------------

    def save_checkpoint(self, task_id: str, data: Any, run_id: int | None) -> None:
        store.save_checkpoint(task_id, json.dumps(data), run_id, self.clock.now())

    def load_checkpoint(self, task_id: str) -> Any:
        raw = store.load_checkpoint(task_id)
        return None if raw is None else json.loads(raw)

    def clear_checkpoint(self, task_id: str) -> bool:
        return store.clear_checkpoint(task_id)

    def set_run_recap(self, run_id: int, recap: str) -> None:
        store.set_run_recap(run_id, recap)

    def post(self, watcher: Watcher, text: str, run_id: int | None = None) -> int:
        return self.chat.post(watcher, text, run_id)

    def alert(self, text: str) -> None:
        self.chat.alert(text)

    # --- what a transport remembers between its passes ---------------------------------------

    def remember(self, key: str, value: str | None) -> None:
        """Keep ``value`` under ``key`` across restarts (None: forget it)."""
        store.set_meta(key, value)

    def recall(self, key: str) -> str | None:
        return store.get_meta(key)
