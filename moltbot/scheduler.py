"""The core API: what the CLI, the daemon and the chat handlers call.

It knows tasks, schedules, runs and the daemon process; it knows nothing of
Signal or Discord. Every state change goes through the store, and every
change the daemon must react to wakes it (SIGUSR1), so the daemon never
polls.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from moltbot import store
from moltbot.clock import Clock, SystemClock
from moltbot.config import (
    Home,
    Settings,
    TaskSpec,
    load_settings,
    load_tasks,
    split_schedule_key,
    task_source,
)

if TYPE_CHECKING:
    from moltbot.schedules import Schedule

__all__ = ["Core", "Plan", "UnknownTask", "Watcher", "plan_due"]

# How many missed occurrences are enumerated to report and replay them; past
# this a long outage of a per-second task is reported as "more than".
ENUMERATION_LIMIT = 10_000


class Watcher(NamedTuple):
    """A chat that asked for something: where its answers go."""

    channel: str
    address: str
    reply_to: int | None = None  # the request's id on that channel (Signal: its timestamp), to quote
    reply_author: str | None = None


class UnknownTask(LookupError):
    """No task by that name; ``suggestion`` is the closest one, if any."""

    def __init__(self, name: str, suggestion: str | None) -> None:
        self.name, self.suggestion = name, suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown task {name!r}{hint}")


# --- planning (pure) ----------------------------------------------------------------


@dataclass
class Plan:
    """What to do with a due task: run it (for which occurrence), what to record, next_run."""

    run_for: datetime | None
    next_run: datetime | None
    records: list[tuple[str, datetime, str]] = field(default_factory=list)  # (status, scheduled_for, message)


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


def _count(items: list[datetime], truncated: bool) -> str:
    return f"more than {len(items)}" if truncated else str(len(items))


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
) -> Plan:
    """Decide a due task's fate at ``now``.

    On time (late by at most ``grace``, counted from ``late_since`` when the
    task was busy until then): run it; occurrences that passed meanwhile are
    coalesced and recorded as skipped. Late (downtime, suspend): the task's
    ``missed`` policy says whether to skip them all, run once, or replay them
    all (at most ``max_catchup``). Every occurrence not run is recorded.
    """
    reference = max(due_at, late_since) if late_since else due_at
    occurrences, truncated = _occurrences(schedule, anchor, due_at, now)
    after_now = schedule.next_after(now, anchor)
    if now - reference <= grace:
        if len(occurrences) == 1:
            return Plan(due_at, schedule.next_after(due_at, anchor))
        skipped = occurrences[:-1]
        message = (
            f"{_count(skipped, truncated)} occurrence(s) from {_stamp(skipped[0])} coalesced into one run "
            "(the task was busy or the daemon was behind)"
        )
        return Plan(occurrences[-1], after_now, [("skipped", skipped[0], message)])
    span = f"between {_stamp(occurrences[0])} and {_stamp(occurrences[-1])}"
    reason = "(the daemon was not running, or the machine was asleep)"
    if missed == "skip":
        message = f"missed {_count(occurrences, truncated)} run(s) {span} {reason}; policy: skip"
        return Plan(None, after_now, [("missed", occurrences[0], message)])
    if missed == "once" or truncated:
        records = []
        if len(occurrences) > 1:
            message = (
                f"missed {_count(occurrences[:-1], truncated)} run(s) {span} {reason}; "
                "policy: once, running the latest now"
            )
            records.append(("missed", occurrences[0], message))
        return Plan(occurrences[-1] if not truncated else now, after_now, records)
    # missed == "all": replay oldest first, at most max_catchup of them.
    records = []
    if len(occurrences) > max_catchup:
        dropped = occurrences[: len(occurrences) - max_catchup]
        message = (
            f"missed {len(dropped)} run(s) between {_stamp(dropped[0])} and {_stamp(dropped[-1])} {reason}; "
            f"policy: all, but replaying at most {max_catchup}"
        )
        records.append(("missed", dropped[0], message))
        occurrences = occurrences[len(dropped) :]
    return Plan(occurrences[0], schedule.next_after(occurrences[0], anchor), records)


# --- the daemon process ---------------------------------------------------------------


def daemon_pid(home: Home) -> int | None:
    """The pid of the daemon holding this home's lock, or None."""
    try:
        fd = os.open(home.lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.pread(fd, 32, 0).decode().strip()
            return int(content) if content.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# --- the core API ------------------------------------------------------------------------


class Core:
    """Operations on one MOLTBOT_HOME, shared by the CLI, the daemon and handlers."""

    def __init__(self, home: Home, clock: Clock | None = None, settings: Settings | None = None) -> None:
        self.home = home
        self.clock = clock or SystemClock()
        self._settings = settings
        # Set by a daemon in this process: chat handlers wake its loop directly.
        self.wake_in_process: Callable[[], None] | None = None

    # set-up

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.home.settings_toml)
        return self._settings

    def open(self) -> None:
        self.home.ensure()
        store.open_db(self.home.db_path)

    def load_specs(self) -> list[TaskSpec]:
        """Read tasks.json (raises ConfigError naming file, line and field)."""
        return load_tasks(self.home.tasks_json, self.home.tasks_dir, self.settings.timezone)

    def sync(self, specs: list[TaskSpec], source: str = "config") -> store.SyncResult:
        """Make the store's tasks from ``source`` ("config": tasks.json; "discord") match ``specs``."""
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
                return spec.schedule.next_after(datetime.min.replace(tzinfo=anchor.tzinfo), anchor)
            return spec.schedule.next_after(anchor, anchor)

        result = store.sync_tasks(
            definitions, self.clock.now(), first_run, lambda task_id: task_source(task_id) == source
        )
        if source == "config":
            store.set_meta("config_hash", self.config_fingerprint())
        return result

    def config_fingerprint(self) -> str:
        try:
            stat = self.home.tasks_json.stat()
        except FileNotFoundError:
            return ""
        return f"{stat.st_mtime_ns}:{stat.st_size}"

    def sync_if_changed(self) -> None:
        """For CLI use without a daemon: pick up edits to tasks.json."""
        if store.get_meta("config_hash") != self.config_fingerprint():
            self.sync(self.load_specs())

    # looking things up

    def resolve(self, name: str) -> store.Task:
        """A task by id or (case-insensitive) name; UnknownTask suggests the closest."""
        import difflib

        task = store.get_task(name)
        if task is not None and not task.removed:
            return task
        tasks = store.list_tasks()
        lowered = name.lower()
        for candidate in tasks:
            if lowered in (candidate.task_id.lower(), candidate.name.lower()):
                return candidate
        names = [t.task_id for t in tasks] + [t.name for t in tasks]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(lowered, [n.lower() for n in names], n=1, cutoff=0.5)
        suggestion = None
        if close:
            match = next(
                t for t in tasks if close[0] in (t.task_id, t.name, t.task_id.lower(), t.name.lower())
            )
            suggestion = match.task_id
        raise UnknownTask(name, suggestion)

    def schedule_of(self, task: store.Task) -> Schedule:
        from moltbot.schedules import parse_schedule

        return parse_schedule(*split_schedule_key(task.schedule_key))

    def zone_of(self, task: store.Task) -> ZoneInfo:
        return split_schedule_key(task.schedule_key)[1]

    # reading state

    def daemon_pid(self) -> int | None:
        return daemon_pid(self.home)

    def status(self) -> dict[str, Any]:
        """The original status shape, plus fields the original lacked."""
        tasks = store.task_states()
        running = [task.task_id for task in tasks if task.current_run_id is not None]
        pid = self.daemon_pid()
        return {
            "running": pid is not None,
            "current_task": running[0] if running else None,
            "task_count": len(tasks),
            "daemon_pid": pid,
            "running_tasks": running,
            "tasks": [
                {
                    "id": task.task_id,
                    "name": task.name,
                    "status": task.status,
                    "last_run": task.last_run.isoformat() if task.last_run else None,
                    "next_run": task.next_run.isoformat() if task.next_run else None,
                    "run_count": task.run_count,
                    "error_count": task.error_count,
                    "last_result": task.last_status,
                    "last_error": task.last_error,
                    "paused_by": task.paused_by,
                    "priority": task.priority,
                    "enabled": task.enabled,
                }
                for task in tasks
            ],
        }

    def logs(self, name: str | None = None, limit: int = 20) -> list[store.Event]:
        task_id = self.resolve(name).task_id if name else None
        return store.recent_events(task_id, limit)

    def next_runs(self, name: str, count: int = 5) -> list[datetime]:
        task = self.resolve(name)
        schedule = self.schedule_of(task)
        now = self.clock.now()
        if task.next_run is None:
            return (
                []
                if schedule.one_shot or task.paused_by or not task.enabled
                else schedule.upcoming(now, task.anchor, count)
            )
        return [task.next_run, *schedule.upcoming(task.next_run, task.anchor, count - 1)]

    # changing state

    def pause(self, name: str, by: str = "user") -> store.Task:
        task = self.resolve(name)
        if task.paused_by == by:
            return task
        result = store.pause_task(task.task_id, by, self.clock.now())
        self.wake_daemon()
        return result

    def resume(self, name: str) -> store.Task:
        """Unpause; the next run comes from the schedule after now (no replay of the pause)."""
        task = self.resolve(name)
        if not task.paused_by:
            return task
        now = self.clock.now()
        schedule = self.schedule_of(task)
        next_run = schedule.next_after(now, task.anchor) if task.enabled else None
        result = store.resume_task(task.task_id, next_run, now, "resumed by user")
        self.wake_daemon()
        return result

    def request_run(
        self,
        name: str,
        trigger: str = "manual",
        requested_by: str | None = None,
        watcher: Watcher | None = None,
    ) -> store.Run:
        """Queue a run for the daemon (recorded before it happens).

        A ``watcher`` (a chat) gets the run's result when it ends: recorded in
        the same transaction as the run, queued for it in the one that ends it.
        """
        from moltbot.store import messages

        task = self.resolve(name)
        now = self.clock.now()
        with store.write_transaction():
            run = store.enqueue_run(task.task_id, trigger, requested_by, now)
            if task.current_run_id is not None and task.overlap == "skip":
                # Recorded, then refused: the requester gets an answer, the log a trace.
                message = f"already running (run {task.current_run_id}); overlap policy: skip"
                return store.skip_queued(run.id, now, message)
            if watcher is not None:
                messages.watch_run(run.id, *watcher)
        self.wake_daemon()
        return run

    def last_output(self, name: str) -> store.Run | None:
        """The task's last finished run (its output tails)."""
        return store.last_finished_run(self.resolve(name).task_id)

    def run(self, run_id: int) -> store.Run | None:
        return store.get_run(run_id)

    def definition(self, task_id: str) -> dict[str, Any]:
        """The task's entry as loaded from its config."""
        task = store.get_task(task_id)
        return task.spec() if task else {}

    def task_states(self) -> list[store.TaskState]:
        return store.task_states()

    def post(self, watcher: Watcher, text: str) -> int:
        """Queue a message to a chat (written before it is sent); its id."""
        from moltbot.store import messages

        channel, address, reply_to, reply_author = watcher
        return messages.enqueue_message(
            channel, address, text, self.clock.now(), reply_to=reply_to, reply_author=reply_author
        )

    def request_stop(self, name: str) -> store.Run | None:
        task = self.resolve(name)
        run = store.request_stop(task.task_id, self.clock.now())
        if run is None:
            return None
        if self.daemon_pid() is None:
            # A foreground `moltbot run` owns it; its runner sees the exit.
            from moltbot.runner import processes_of_run, signal_processes

            signal_processes(processes_of_run(self.home.root, run.id), signal.SIGTERM)
        self.wake_daemon()
        return run

    def wake_daemon(self) -> None:
        """Tell the daemon to look at the store again (after the current transaction commits)."""
        store.after_commit(self._wake_daemon_now)

    def _wake_daemon_now(self) -> None:
        if self.wake_in_process is not None:
            self.wake_in_process()
            return
        pid = self.daemon_pid()
        if pid and pid > 0 and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def wait_for_run(self, run_id: int, poll: float = 0.05) -> store.Run:
        """Wait for a queued or running run to finish (for the CLI's `run`).

        The CLI is a separate process with no channel from the daemon but the
        database, so it re-reads the row; the daemon itself never polls.
        """
        while True:
            run = store.get_run(run_id)
            if run is None:
                raise LookupError(f"run {run_id} vanished")
            if run.status not in store.ACTIVE_RUN_STATES:
                return run
            if self.daemon_pid() is None:
                return run
            time.sleep(poll)

    def run_result(self, run: store.Run) -> dict[str, Any]:
        """The original `run` JSON shape, for a finished run (playbook runs add their ``hosts``)."""
        result = {
            "task_id": run.task_id,
            "run_id": run.id,
            "success": run.status == "success",
            "status": run.status,
            "exit_code": run.exit_code,
            "duration": run.duration or 0.0,
            "message": run.message,
            "stdout": run.stdout_tail or "",
            "stderr": run.stderr_tail or "",
        }
        if run.recap:
            result["hosts"] = json.loads(run.recap)["hosts"]
        return result

    # checkpoints

    def save_checkpoint(self, task_id: str, data: Any, run_id: int | None) -> None:
        store.save_checkpoint(task_id, json.dumps(data), run_id, self.clock.now())

    def load_checkpoint(self, task_id: str) -> Any:
        raw = store.load_checkpoint(task_id)
        return None if raw is None else json.loads(raw)

    def clear_checkpoint(self, task_id: str) -> bool:
        return store.clear_checkpoint(task_id)
