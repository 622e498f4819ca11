"""Carrying a run from its first attempt to its recorded end: attempts, retries, its process, alerts.

Processes are watched by a ``runner.Supervisor``; whoever drives it hands the
runs that ended to ``settle`` and calls ``start_due_retries``. The daemon's
loop does both; a foreground ``moltbot run`` uses ``drain``. Retries follow
the task's policy (``retries.task_retry_stop`` / ``task_retry_wait``),
evaluated here instead of blocking a thread: a retry waiting its backoff
costs a timer, not a thread. What a run's process is (its command line and
environment) is its kind's business (``moltbot/kinds/``). With ``[daemon]
task_user``, the owner's code runs as that user (``task_users.py``), and what
it may not write to the database (its checkpoint, a recap) it leaves in its
run's folder, taken at the attempt's end (``run_dirs.py``); its ``notify`` and
``ask`` requests are taken while it runs (``relay.py``).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from moltbot import retries, run_dirs, store
from moltbot.clock import Clock
from moltbot.config.home import Home
from moltbot.config.secrets import secret_files
from moltbot.config.settings import Settings
from moltbot.config.spec import TaskSpec
from moltbot.incidents import AlertPolicy
from moltbot.kinds import kind_of
from moltbot.pings import Pings
from moltbot.privileges import keep_capabilities_to_self
from moltbot.processes import minimal_environment, venv_first
from moltbot.recovery import replan_interrupted, resume_elsewhere
from moltbot.relay import Relay
from moltbot.runner import INTERNAL_ERROR, ProcessRun, RunResult, Supervisor
from moltbot.task_users import Identity, UnknownUser, identity_of, isolation_problems

__all__ = ["Executor"]

log = logging.getLogger(__name__)
RETRYABLE = ("failed", "timeout")
# Killed by this node's fence (cluster.py): it lost the database for half a lease, came back in time.
FENCED = (
    "interrupted: fenced: this node lost the database for half its lease; run again per its missed policy"
)


@dataclass
class _Flight:
    """A task between its first attempt's start and its recorded end."""

    ticket: store.RunTicket  # the current attempt
    spec: TaskSpec
    process: ProcessRun | None = None
    failure: RunResult | None = None  # the attempt that failed, while its retry waits
    retry_at: float | None = None  # monotonic
    given_up: bool = False  # stopped or shutting down while a retry waits
    run_dir: Path | None = None  # the current attempt's, as the task user: taken at its end
    as_user: Identity | None = None


class Executor:
    def __init__(
        self,
        home: Home,
        clock: Clock,
        settings: Settings,
        stopping: threading.Event,
        supervisor: Supervisor,
        alerts_go_somewhere: Callable[[], bool] = lambda: False,
        pings: Pings | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.home = home
        self.clock = clock
        self.settings = settings
        self.stopping = stopping
        self.supervisor = supervisor
        # Without a chat channel for alerts, a run's end is only logged (and that once).
        self.alerts_go_somewhere = alerts_go_somewhere
        self.pings = pings or Pings()  # a task's ping_url hears of its runs' starts and ends
        self.relay = relay  # what runs as the task user ask and tell the admins (None: refused)
        self._flights: dict[str, _Flight] = {}
        self._by_process: dict[ProcessRun, _Flight] = {}
        # Runs that ended while the database was locked: recorded on a later pass.
        self._unrecorded: list[tuple[_Flight, RunResult]] = []
        # Task users whose reach was checked (task_users.py): at start, or at their first run.
        self.checked_users: set[str] = set()
        if settings.task_user:
            # A `moltbot run` given the daemon's capabilities (to start tasks as the task user) must not
            # hand them on either: emptied here, in the thread that starts the runs.
            keep_capabilities_to_self()

    def busy(self) -> int:
        return len(self._flights) + len(self._unrecorded)

    def record_late_ends(self) -> list[str]:
        """Record the ends the locked database refused (raises while it still does); the tasks released."""
        released = []
        while self._unrecorded:
            flight, result = self._unrecorded[0]
            self._close(flight, result, keep_if_locked=False)
            self._unrecorded.pop(0)
            released.append(flight.spec.task_id)
        return released

    def task_of(self, process: ProcessRun) -> str | None:
        """The task an attempt's process (not settled yet) belongs to."""
        flight = self._by_process.get(process)
        return flight.spec.task_id if flight else None

    def launch(self, run: store.RunTicket, spec: TaskSpec) -> _Flight:
        """Start the first attempt of ``run`` (already recorded as running) now."""
        flight = _Flight(run, spec)
        self._flights[spec.task_id] = flight
        self.pings.run_started(spec.task_id, spec.ping_url, run.id)
        self._start_attempt(flight)
        return flight

    def cancel(self, task_id: str, reason: str) -> None:
        """End the task's current attempt, and any retry it is waiting to make.

        Safe in a signal handler: it writes nothing, the driving loop does.
        """
        flight = self._flights.get(task_id)
        if flight is None:
            return
        if flight.process is not None:
            flight.process.cancel(reason)
        else:
            flight.given_up = True
            self.supervisor.wake()

    def cancel_all(self, reason: str) -> None:
        for task_id in list(self._flights):
            self.cancel(task_id, reason)

    def settle(self, ended: list[ProcessRun]) -> list[str]:
        """Record the attempts that ended (or plan their retries); return the tasks released."""
        released = []
        for process in ended:
            flight = self._by_process.pop(process)
            assert process.result is not None
            result = process.result
            if self.supervisor.groups is not None and self.supervisor.groups.was_fenced(process.pid):
                result = replace(result, status="interrupted", message=FENCED)  # never retried as a failure
            try:
                result = self._stopped_on_request(flight, result)
                if self._retry_planned(flight, result):
                    continue
            except Exception:
                log.exception("could not plan a retry of %s (run %d)", flight.spec.task_id, flight.ticket.id)
            self._close(flight, result)
            released.append(flight.spec.task_id)
        return released

    def start_due_retries(self) -> list[str]:
        """Start retries whose backoff is over; give up those stopped meanwhile. Return the tasks released."""
        now = time.monotonic()
        released = []
        for flight in [flight for flight in self._flights.values() if flight.failure is not None]:
            assert flight.retry_at is not None and flight.failure is not None
            if flight.given_up or self.stopping.is_set():
                self._close(flight, flight.failure)  # the failure stands
                released.append(flight.spec.task_id)
            elif flight.retry_at <= now:
                try:
                    self._relay_done(flight)
                    self._take_leftovers(flight)  # the failed attempt's checkpoint, for the retry
                    retry = store.begin_retry(flight.ticket, flight.failure, self.clock.now())
                except Exception as error:
                    if store.is_locked_error(error):
                        raise  # nothing changed: the loop tries again once the database is free
                    log.exception("could not record the retry of %s", flight.spec.task_id)
                    retry = None  # start-up recovery settles the rows
                if retry is None:  # not started: the failure stands
                    self._flights.pop(flight.spec.task_id, None)
                    released.append(flight.spec.task_id)
                    continue
                flight.ticket = retry
                flight.failure = flight.retry_at = None
                self._start_attempt(flight)
        return released

    def seconds_to_next_retry(self) -> float | None:
        waiting = [flight.retry_at for flight in self._flights.values() if flight.retry_at is not None]
        return max(0.0, min(waiting) - time.monotonic()) if waiting else None

    def drain(self) -> None:
        """Drive the supervisor until every run here is recorded as ended."""
        while self._flights:
            self.start_due_retries()  # first: when stopping, a waiting retry ends at once
            if self._flights:
                self.settle(self.supervisor.wait(self.seconds_to_next_retry()))

    def _start_attempt(self, flight: _Flight) -> None:
        if self.stopping.is_set():
            now = self.clock.now()
            message = "interrupted: the daemon shut down before it started"
            self._close(flight, RunResult("interrupted", None, now, now, message, "", "", None))
            return
        try:
            process = self._prepare(flight)
            process.start()
        except UnknownUser as exc:  # or one that could reach what it must not: the run fails, saying so
            now = self.clock.now()
            self._close(flight, RunResult("failed", None, now, now, str(exc), "", "", None))
            return
        except Exception:
            log.exception("could not launch %s (run %d)", flight.spec.task_id, flight.ticket.id)
            now = self.clock.now()
            self._close(flight, RunResult("failed", None, now, now, INTERNAL_ERROR, "", "", None))
            return
        flight.process = process
        self._by_process[process] = flight
        self.supervisor.watch(process)

    def _stopped_on_request(self, flight: _Flight, result: RunResult) -> RunResult:
        """A failure that a stop request caused is the stop's: ``interrupted``, and never retried.

        Without a daemon, ``moltbot stop`` (another process) signals the run's
        processes itself, so the foreground ``moltbot run`` sees them die of SIGTERM.
        """
        if result.status not in RETRYABLE:
            return result
        latest = store.get_run(flight.ticket.id)
        if latest is None or not latest.stop_requested:
            return result
        seconds = (result.finished_at - result.started_at).total_seconds()
        return replace(
            result, status="interrupted", message=f"interrupted: stopped on request after {seconds:.1f}s"
        )

    def _retry_planned(self, flight: _Flight, result: RunResult) -> bool:
        spec = flight.spec
        if result.status not in RETRYABLE or self.stopping.is_set() or flight.given_up:
            return False
        if retries.gives_up(retries.task_retry_stop(spec.retries), flight.ticket.attempt):
            return False
        delay = retries.delay(retries.task_retry_wait(spec.retry_backoff_seconds), flight.ticket.attempt)
        flight.process, flight.failure = None, result
        flight.retry_at = time.monotonic() + delay
        log.info(
            "%s failed (%s); retry %d of %d in %gs",
            spec.task_id,
            result.message,
            flight.ticket.attempt,
            spec.retries,
            delay,
        )
        return True

    def _close(self, flight: _Flight, result: RunResult, keep_if_locked: bool = True) -> None:
        """The run's end: its last attempt is recorded and the task released."""
        self._flights.pop(flight.spec.task_id, None)
        by_shutdown = result.status == "interrupted" and self.stopping.is_set()
        # Several nodes: the others carry on with it at once (recovery.py); one box: it resumes at the start.
        pause_by = "shutdown" if by_shutdown and not store.is_postgresql() else None
        try:
            self._relay_done(flight)  # before the transaction: the relay's thread writes too
            alert = self._alert_wanted(flight, result)
            with store.write_transaction():  # what the run left, and its end: one commit
                self._take_leftovers(flight)
                recorded = store.finish_run(
                    flight.ticket, result, release_task=True, pause_by=pause_by, alert=alert
                )
                if recorded and result.message == FENCED:  # the node's own: no other node settled it
                    replan_interrupted(flight.ticket, flight.spec, self.clock.now())
                elif recorded and by_shutdown and pause_by is None:
                    resume_elsewhere(flight.ticket, self.clock.now())
        except Exception as error:
            if store.is_locked_error(error):
                if not keep_if_locked:
                    raise
                self._unrecorded.append((flight, result))  # nothing lost: recorded on a later pass
                return
            # Recording itself failed (the database?): the daemon and the other
            # tasks carry on; start-up recovery settles the row.
            log.exception("could not record the end of %s (run %d)", flight.spec.task_id, flight.ticket.id)
            return
        self.pings.run_ended(
            flight.spec.task_id, flight.spec.ping_url, flight.ticket.id, result.status, result.exit_code
        )
        level = logging.INFO if result.status == "success" else logging.WARNING
        log.log(level, "%s run %d: %s", flight.spec.task_id, flight.ticket.id, result.message)

    def _alert_wanted(self, flight: _Flight, result: RunResult) -> AlertPolicy:
        """Scheduled runs alert per the task's ``notify``, as incidents (``store/incidents.py``: a
        requested run's requester hears anyway; one stopped by a shutdown tells no one)."""
        spec = flight.spec
        return AlertPolicy(
            notify=spec.notify,
            alert_after=spec.alert_after,
            alert_repeat_seconds=spec.alert_repeat_seconds,
            # an approved occurrence is the schedule's (its approver is told as its watcher)
            scheduled=flight.ticket.requested_by is None or flight.ticket.scheduled_for is not None,
            can_alert=self.alerts_go_somewhere() and not self.stopping.is_set(),
            zone=self.settings.timezone,
        )

    def _prepare(self, flight: _Flight) -> ProcessRun:
        run, spec = flight.ticket, flight.spec
        kind = kind_of(spec.kind)
        checkpoint = store.load_checkpoint(spec.task_id)
        flight.as_user = who = self._run_as(spec)
        env = minimal_environment(
            {
                **(who.environment() if who else {}),
                "MOLTBOT_TASK_ID": spec.task_id,
                "MOLTBOT_RUN_ID": str(run.id),
                "MOLTBOT_HOME": str(self.home.root),
                "MOLTBOT_CHECKPOINT": checkpoint or "",
                **dict(spec.env),
                **kind.environment(os.environ),
            }
        )
        env["PATH"] = venv_first(env["PATH"])
        if who is None:
            env.update(self._database_reference())  # its `moltbot checkpoint` reaches our database
        if who is not None:
            definition = spec.raw if kind.reads_definition else None
            flight.run_dir = run_dirs.create(self.home.runs_dir, run.id, definition)
            env[run_dirs.RUN_DIR_ENV] = str(flight.run_dir)
            if self.relay is not None:
                self.relay.watch(flight.run_dir, who.uid, spec.task_id, run.id)
        return ProcessRun(
            kind.command(spec, self.home),
            cwd=self.home.tasks_dir,
            env=env,
            log_path=self._log_path(run, spec),
            timeout=spec.timeout_seconds,
            kill_grace=self.settings.kill_grace_seconds,
            output_cap=self.settings.output_cap_bytes,
            now=self.clock.now,
            label=spec.task_id,
            as_user=who,
        )

    @staticmethod
    def _database_reference() -> dict[str, str]:
        """What a run as the daemon's own user is given to reach the daemon's database when it is
        PostgreSQL: the URL without a password, and the password's file when it has one (never a
        value: given only as a variable, the run cannot log in). Nothing on SQLite, where MOLTBOT_HOME
        leads to the file. Runs as the task user get neither."""
        target = store.database_target()
        if isinstance(target, Path):
            return {}
        from moltbot.config.database import DATABASE_URL_VARIABLE, PASSWORD_SECRET, without_password
        from moltbot.config.secrets import secret_reference

        reference = secret_reference(PASSWORD_SECRET, os.environ)
        files = {name: path for name, path in reference.items() if name.endswith("_FILE")}
        return {DATABASE_URL_VARIABLE: without_password(target.url), **files}

    def _run_as(self, spec: TaskSpec) -> Identity | None:
        """Who the run runs as: None (the daemon's user), or the task user or the task's own ``user``."""
        if not self.settings.task_user or not kind_of(spec.kind).as_task_user:
            return None
        who = identity_of(str(spec.raw.get("user") or self.settings.task_user))
        if who.name not in self.checked_users:  # named since the start (a reload): checked once, now
            problems = isolation_problems(self.home, who, secret_files(os.environ))
            if who.uid in (0, os.getuid()) or problems:
                raise UnknownUser(
                    f"not run as {who.name}: " + "; ".join(problems or ["root, or the daemon's user"])
                )
            self.checked_users.add(who.name)
        return who

    def _relay_done(self, flight: _Flight) -> None:
        if self.relay is not None and flight.run_dir is not None:
            self.relay.finish(flight.run_dir)

    def _take_leftovers(self, flight: _Flight) -> None:
        """What the attempt as the task user left in its folder: saved (in the caller's transaction)."""
        if flight.run_dir is None or flight.as_user is None:
            return
        leftovers = run_dirs.collect(flight.run_dir, flight.as_user.uid)
        task_id, run_id = flight.spec.task_id, flight.ticket.id
        if leftovers.checkpoint is not None:
            store.save_checkpoint(task_id, leftovers.checkpoint, run_id, self.clock.now())
        if leftovers.cleared:
            store.clear_checkpoint(task_id)
        if leftovers.recap is not None:
            store.set_run_recap(run_id, leftovers.recap)
        store.after_commit(functools.partial(run_dirs.remove, flight.run_dir))
        flight.run_dir = None

    def _log_path(self, run: store.RunTicket, spec: TaskSpec) -> Path:
        return self.home.logs_dir / spec.task_id / f"{run.id}.log"
