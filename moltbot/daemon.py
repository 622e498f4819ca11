"""The daemon: sleep until the earliest due task, start it, repeat.

One thread does it all. It sleeps in the supervisor's epoll (runner.py) until
the earliest ``next_run`` (one indexed query), a retry's backoff or a run's
deadline, or until something wakes it: a run's process exiting or writing
output, SIGUSR1 from the CLI after it changed something, SIGHUP (reload: ``reloads.py``) or
SIGTERM/SIGINT (shut down). Signal handlers only set flags; the wake-up
itself comes through ``signal.set_wakeup_fd``, so no signal is lost between
checking the flags and going to sleep. ``workers`` bounds how many runs are
in flight at once; no thread is spent per run (``executor.py`` carries them).

The chat transports are built by ``moltbot/transports.py`` and started by ``bridges.py``:
the daemon knows nothing of Signal or Discord.
How they and the background threads are (``core/health.py``) is in the
sd_notify ``STATUS=`` line, sent again whenever it changes.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import NamedTuple

import schedule as housekeeping_schedule

from moltbot import approvals, reloads, store
from moltbot.bridges import Bridges, TransportFactory
from moltbot.cluster import CLAIM_AHEAD_ON_POSTGRESQL, EXIT_LEASE_LOST, Membership
from moltbot.config.spec import TaskSpec
from moltbot.core.api import Core
from moltbot.core.database_identity import OpenedDatabase
from moltbot.core.delivery import Delivery
from moltbot.core.overdue import DeadMan
from moltbot.core.planning import plan_claim
from moltbot.database_outage import DatabaseOutage
from moltbot.executor import Executor
from moltbot.heartbeat import Liveness
from moltbot.kinds import kind_of
from moltbot.pings import Pings
from moltbot.records import Plan
from moltbot.recovery import recover
from moltbot.relay import Relay
from moltbot.runner import ProcessRun, Supervisor
from moltbot.systemd import Notifier
from moltbot.task_sources import TaskSources
from moltbot.wal_checkpoints import WalCheckpointer

__all__ = ["CLAIM_AHEAD", "Daemon"]

log = logging.getLogger(__name__)
# A run due within CLAIM_AHEAD is claimed (recorded) that much early, so at
# its due instant only the spawn is left to do. Short on purpose: with 3 ms,
# claims ran while the previous run's process was still starting and slowed
# it down (p99 lateness 3.3 -> 2.8 ms at 1 ms; benchmarks/bench_firing.py).
CLAIM_AHEAD = timedelta(milliseconds=1)


class _Claim(NamedTuple):
    at: datetime
    run: store.RunTicket
    spec: TaskSpec


class Daemon:
    def __init__(self, core: Core, specs: list[TaskSpec], transports: TransportFactory | None = None) -> None:
        self.core = core
        self.clock = core.clock
        self.settings = core.settings
        self.sources = TaskSources(core, specs)  # tasks.json's and the Discord channel's
        self.supervisor = Supervisor()
        self.stopping = threading.Event()
        self._stop_signal: int | None = None
        self._reload_requested = False
        # Queued runs and stop requests come from outside (SIGUSR1 from the
        # CLI, recovery at start) or wait behind a busy task; only then is
        # the loop's pass worth the queries.
        self._requests_pending = True
        self._queued_waiting = False
        self._ended: list[ProcessRun] = []  # runs that ended since the last pass
        self._claimed: list[_Claim] = []  # recorded, to start at their instant
        self.claim_ahead = CLAIM_AHEAD_ON_POSTGRESQL if store.is_postgresql() else CLAIM_AHEAD
        self.health = core.health  # the channels and background threads report to it
        self.delivery = Delivery(core.clock, self.health)  # the outbox, to whichever chat channels there are
        self.pings = Pings(self.health)  # to outside monitors: tasks' ping_url; the heartbeat's own lane
        self.heartbeats = Pings(self.health, thread="heartbeat", latest_only=True)
        self.relay = Relay(core, self.health)  # notify and ask from runs as the task user
        self.executor = Executor(
            core.home, core.clock, self.settings, self.stopping, self.supervisor,
            alerts_go_somewhere=lambda: bool(self.delivery.alert_channels),
            pings=self.pings, relay=self.relay,
        )  # fmt: skip
        self._checkpointer = WalCheckpointer(watch=self.health)
        self.deadman = DeadMan(core.clock, self.settings.timezone, lambda: bool(self.delivery.alert_channels))
        self.housekeeping = housekeeping_schedule.Scheduler()
        self.bridges = Bridges(core, self.delivery, transports, self.offer_specs)  # the chat transports
        self.notifier = Notifier.from_env()  # systemd: READY, WATCHDOG, STOPPING, STATUS
        self.database_outage = DatabaseOutage(self.clock)  # locked by another process: back off, log once
        self.database_file = OpenedDatabase(core.home)  # deleted or replaced under us: stop
        self.liveness = Liveness(self.notifier, self.heartbeats, self.settings)  # WATCHDOG=1, heartbeats
        self.membership = Membership(  # its node, lease and fence; other nodes' lost sessions
            core, self._wake_for_requests, lambda: list(self.specs.values())
        )
        self.membership.attach(self.supervisor)  # PostgreSQL: fences this loop's runs; leads or not
        core.wake_in_process = self._wake_for_requests
        store.on_chained_runs(self._wake_for_requests)  # a run's end queued the runs chained to it

    # --- lifecycle ---------------------------------------------------------------

    @property
    def specs(self) -> dict[str, TaskSpec]:
        return self.sources.specs

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self.supervisor.signal_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        signal.signal(signal.SIGUSR1, self._on_request_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True

    def _on_request_signal(self, signum: int, frame: FrameType | None) -> None:
        self._requests_pending = True  # the wakeup fd ends the sleep

    def _wake_for_requests(self) -> None:
        """A chat command in this process changed something (any thread)."""
        self._requests_pending = True
        self.supervisor.wake()

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code."""
        self.install_signal_handlers()
        self.health.on_change(lambda: self.notifier.status(self._summary()))  # any thread
        alert_after = timedelta(seconds=self.settings.channel_down_alert_seconds)
        self.health.start(alert_after, self.settings.timezone)
        self._checkpointer.start()
        self.startup()
        self.bridges.start(self.settings)
        log.info(
            "moltbot daemon started (pid %d, %d tasks, %d workers)",
            os.getpid(),
            len(self.specs),
            self.settings.workers,
        )
        self.notifier.ready(self._summary())
        self.notifier.status(self._summary())  # a change while READY went out
        exit_code = 0
        while not self.stopping.is_set():
            if self.database_file.replaced():
                exit_code = 1  # systemd restarts the unit (Restart=always): the new start opens the path
                break
            if self.membership.lost.is_set():
                exit_code = EXIT_LEASE_LOST
                break
            try:
                timeout = self.step()
                self.database_outage.over(self.core.alert)
                self.liveness.beat()  # after a pass that went through
            except Exception as error:
                if not store.is_locked_error(error):
                    raise
                timeout = self.database_outage.failed(error)
            self.wait(timeout)
        self.shutdown()
        return exit_code

    def startup(self) -> None:
        """Settle what the last daemon left behind (``recovery.py``), before scheduling anything."""
        self.membership.start()
        recover(self.core.home, self.specs, self.clock.now(), self.settings.task_user)
        self.membership.start_thread()
        self.housekeeping.every(1).hours.do(self.prune)
        self.prune()

    def shutdown(self) -> None:
        signame = signal.Signals(self._stop_signal).name if self._stop_signal else "request"
        log.info("shutting down (%s): stopping runs, their tasks resume on the next start", signame)
        self.notifier.stopping(f"stopping ({signame}): {self._busy()} runs to end")
        self.executor.cancel_all("the daemon is shutting down")
        self._launch(self._claimed)  # recorded as interrupted: they never start
        self._claimed = []
        self.executor.settle(self._ended)
        self._ended = []
        self.executor.drain()
        self.relay.stop()
        self.pings.stop()  # the runs' end pings, within their deadline
        self.heartbeats.stop(timeout=0)  # no heartbeat after this: the monitor is to notice
        self.bridges.stop()
        self.delivery.stop()  # after the runs: their results are queued (and sent, or on the next start)
        self.bridges.close()
        self._checkpointer.stop()
        self.membership.stop()
        self.health.stop()
        self.supervisor.close()
        log.info("moltbot daemon stopped")

    # --- one pass of the scheduling loop -------------------------------------------

    def wait(self, timeout: float | None) -> None:
        """Sleep until a run ends, a signal or a wake-up comes, or ``timeout`` passes.

        Output and the other events of a run that has not ended yet are handled
        without a pass of the loop: a pass costs queries, and a due run that
        comes while one is under way starts late.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if end is None else max(0.0, end - time.monotonic())
            ended = self.supervisor.wait(remaining)
            self._ended.extend(ended)
            if ended or self.supervisor.woken or remaining == 0:
                return
            if end is not None and time.monotonic() >= end:
                return

    def step(self) -> float | None:
        """Do everything that is due now; return how long to sleep (None: until woken)."""
        if self._stop_signal is not None:
            self.stopping.set()
            return 0
        self.liveness.pet_watchdog(self._summary())
        self._released(self.executor.record_late_ends())
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        if self.sources.offers_waiting:
            self.sources.apply_offers()
        self.housekeeping.run_pending()
        self.deadman.check(self.specs.values())
        self._released(self.executor.start_due_retries())
        self._start_claimed()
        if self._busy() < self.settings.workers and self.membership.claiming:
            self._claim_due()  # on time first; the runs that ended can wait
            self._start_claimed()
        if self._ended:
            # The ends of runs and the claims they make room for share one commit
            # (kept until it is made: a locked database leaves them for the next pass).
            ended = self._ended
            posted = any(self._may_have_posted(self.executor.task_of(process)) for process in ended)
            with store.write_transaction():
                self._released(self.executor.settle(ended))
                self._claim_due()
            self._ended = []
            self._start_claimed()
            if posted:
                store.outbox_may_have_changed()  # a run's process wrote to the outbox: wake the senders
        if self._requests_pending:
            self._requests_pending = False
            store.outbox_may_have_changed()  # another process may have queued a message (notify, ask)
            try:
                self._apply_stop_requests()
                self._start_queued()
            except BaseException:
                self._requests_pending = True  # not done: on the next pass
                raise
        return self._seconds_to_sleep()

    def _start_claimed(self) -> None:
        """Start the claimed runs whose instant has come."""
        if not self._claimed:
            return
        now = self.clock.now()
        self._launch([claim for claim in self._claimed if claim.at <= now])
        self._claimed = [claim for claim in self._claimed if claim.at > now]

    def _launch(self, claims: list[_Claim]) -> None:
        for claim in claims:
            self.executor.launch(claim.run, claim.spec)

    def _may_have_posted(self, task_id: str | None) -> bool:
        spec = self.specs.get(task_id) if task_id else None
        return spec is None or kind_of(spec.kind).posts_messages

    def _released(self, task_ids: list[str]) -> None:
        if task_ids and self._queued_waiting:
            self._requests_pending = True  # a run queued behind one of them may start

    def reload(self) -> None:
        """moltbot.toml and tasks.json, read again and applied (or, broken, kept): ``reloads.py``."""
        self.settings = reloads.reload(self.core, self.sources, self.bridges, self.settings)

    def offer_specs(self, source: str, specs: list[TaskSpec]) -> None:
        """From another thread (a channel sync): the loop applies them on its next pass."""
        self.sources.offer(source, specs)
        self.supervisor.wake()

    def _busy(self) -> int:
        return self.executor.busy() + len(self._claimed)

    def _apply_stop_requests(self) -> None:
        for run in store.runs_with_stop_requested():
            claimed = [claim for claim in self._claimed if claim.run.id == run.id]
            if claimed:  # stopped in the instant before it started: start it, to be stopped
                self._claimed.remove(claimed[0])
                self._launch(claimed)
            self.executor.cancel(run.task_id, "stopped on request")

    def _start_queued(self) -> None:
        if not self.membership.claiming:
            return  # another node starts them (the membership wakes this loop when it may again)
        now = self.clock.now()
        free = self.settings.workers - self._busy()
        for queued in store.queued_runs(max(free, 0)):
            spec = self.specs.get(queued.task_id)
            if spec is None:
                store.skip_queued(queued.id, now, "the task is not in the current config")
                continue
            ticket, _ = store.start_queued(queued.id, now)
            if ticket is not None:
                self.executor.launch(ticket, spec)
        # Runs still queued (behind a busy task, or no free worker) are
        # looked at again when a worker finishes.
        self._queued_waiting = store.has_queued_runs()

    def _claim_due(self) -> None:
        """Claim what is due now or within ``claim_ahead`` (recorded before anything starts)."""
        now = self.clock.now()
        free = self.settings.workers - self._busy()
        due = store.due_tasks(now + self.claim_ahead, limit=max(free, 0) + self._busy())
        with store.write_transaction() if len(due) > 1 else nullcontext():
            for task in due:
                spec = self.specs.get(task.task_id)
                if spec is None and not self.membership.clustered:
                    store.set_next_run(task.task_id, None)  # the store and config disagree; never spin on it
                    continue
                if spec is None:
                    continue  # another node's (its Discord channel's): never clear a schedule it keeps
                running = task.current_run_id is not None
                if not running and free <= 0:
                    continue
                plan = functools.partial(self._plan, spec=spec)
                run = store.apply_plan(task.task_id, now, plan, lead=self.claim_ahead)
                if run is not None:
                    self._claimed.append(_Claim(run.started_at or now, run, spec))
                    free -= 1

    def _plan(self, task: store.DueTask, spec: TaskSpec) -> Plan:
        plan = plan_claim(
            task,
            spec,
            max(self.clock.now(), task.next_run),  # a task claimed ahead is planned for its instant
            grace=timedelta(seconds=self.settings.missed_grace_seconds),
            max_catchup=self.settings.max_catchup_runs,
            ran_before=spec.schedule.one_shot and store.has_started_a_run(task.task_id),
        )
        if plan.queue:
            self._requests_pending = True  # the queued runs start on this pass, one after another
        return approvals.hold(self.core, spec, plan)  # approve: true: asked about, not started

    def _summary(self) -> str:
        notes = [note for note in (self.database_outage.summary(), self.health.summary()) if note]
        return f"{len(self.specs)} tasks, {self._busy()} running" + "".join(f"; {note}" for note in notes)

    def _seconds_to_sleep(self) -> float | None:
        candidates = [due for due in (self.liveness.seconds_to_next(),) if due is not None]
        retry = self.executor.seconds_to_next_retry()
        if retry is not None:
            candidates.append(retry)
        now = self.clock.now()
        if self._claimed:
            earliest_claim = min(claim.at for claim in self._claimed)
            candidates.append(max(0.0, (earliest_claim - now).total_seconds()))
        if self._busy() < self.settings.workers and self.membership.claiming:  # else woken when it may
            earliest = store.earliest_next_run()
            if earliest is not None:
                candidates.append(max(0.0, (earliest - self.claim_ahead - now).total_seconds()))
        expiry = self.core.questions.expire()  # questions whose time is up settled; the next one's
        if expiry is not None:
            candidates.append(max(0.0, (expiry - now).total_seconds()))
        idle = self.housekeeping.idle_seconds
        candidates += [] if self.deadman.seconds_left is None else [self.deadman.seconds_left]
        if idle is not None:
            candidates.append(max(0.0, idle))
        return min(candidates) if candidates else None

    # --- housekeeping ------------------------------------------------------------------------

    def prune(self) -> None:
        before = self.clock.now() - timedelta(days=self.settings.log_retention_days)
        deleted, log_files = store.prune(before)
        for name in log_files:
            Path(name).unlink(missing_ok=True)
        if deleted:
            log.info(
                "housekeeping: pruned %d runs older than %d days", deleted, self.settings.log_retention_days
            )
