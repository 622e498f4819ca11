"""The daemon: sleep until the earliest due task, run it in a worker, repeat.

The main thread owns scheduling. It sleeps in ``select`` on a self-pipe until
the earliest ``next_run`` (one indexed query) or until something wakes it: a
worker finishing, SIGUSR1 from the CLI after it changed something, SIGHUP
(reload) or SIGTERM/SIGINT (shut down). Signal handlers only set flags; the
wake-up itself comes through ``signal.set_wakeup_fd``, so no signal is lost
between checking the flags and going to sleep. Runs happen in a thread pool;
each worker supervises one process group (see runner.py).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import select
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import FrameType

import schedule as housekeeping_schedule
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from moltbot import store
from moltbot.config import ConfigError, TaskSpec
from moltbot.runner import ProcessRun, RunResult, minimal_environment, processes_of_run, signal_processes
from moltbot.scheduler import Core, Plan, plan_due

__all__ = ["AlreadyRunning", "Daemon", "DaemonLock"]

log = logging.getLogger(__name__)
RETRYABLE = ("failed", "timeout")


class AlreadyRunning(RuntimeError):
    pass


class DaemonLock:
    """One daemon per MOLTBOT_HOME: an flock held for the daemon's lifetime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode().strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"another moltbot daemon (pid {holder}) is already running for {self.path.parent.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


class Waker:
    """A self-pipe: ``wake()`` from any thread or signal ends ``wait()`` early."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    @property
    def signal_fd(self) -> int:
        return self._writer.fileno()

    def wake(self) -> None:
        try:
            self._writer.send(b"\0")
        except BlockingIOError:
            pass  # already full of wake-ups

    def wait(self, timeout: float | None) -> None:
        ready, _, _ = select.select([self._reader], [], [], timeout)
        if ready:
            try:
                while self._reader.recv(4096):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class Executor:
    """Runs attempts of tasks with bounded retries and records them.

    Shared by the daemon's worker threads and a foreground ``moltbot run``.
    It tracks the process of each task in flight so stop requests and
    shutdown can cancel it.
    """

    def __init__(self, core: Core, stopping: threading.Event) -> None:
        self.core = core
        self.clock = core.clock
        self.settings = core.settings
        self.stopping = stopping
        self._in_flight: dict[str, ProcessRun | None] = {}
        self._backoffs: dict[str, threading.Event] = {}  # set: give up the pending retry
        self._lock = threading.Lock()

    def reserve(self, task_id: str) -> None:
        """Count the task as busy before its process exists (keeps a launched one)."""
        with self._lock:
            self._in_flight.setdefault(task_id, None)

    def busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def cancel(self, task_id: str, reason: str) -> None:
        """End the task's current attempt, and any retry it is waiting to make."""
        with self._lock:
            process = self._in_flight.get(task_id)
            backoff = self._backoffs.get(task_id)
        if backoff is not None:
            backoff.set()
        if process is not None:
            process.cancel(reason)

    def cancel_all(self, reason: str) -> None:
        with self._lock:
            task_ids = list(self._in_flight)
        for task_id in task_ids:
            self.cancel(task_id, reason)

    def launch(self, run: store.RunTicket, spec: TaskSpec) -> ProcessRun | None:
        """Spawn the first attempt now, in the calling thread; ``execute`` supervises it.

        None when shutting down (``execute`` then records the run as interrupted).
        """
        self.reserve(spec.task_id)
        if self.stopping.is_set():
            return None
        process = self._prepare(run, spec)
        process.start()
        return process

    def execute(self, run: store.RunTicket, spec: TaskSpec, launched: ProcessRun | None = None) -> int:
        """Carry ``run`` (already recorded as running) to its end; return the last attempt's id."""
        self.reserve(spec.task_id)
        try:
            return self._run_with_retries(run, spec, launched)
        except Exception:
            # Recording itself failed (the database?): the worker, the daemon
            # and the other tasks carry on; start-up recovery settles the row.
            log.exception("could not record the end of %s (run %d)", spec.task_id, run.id)
            return run.id
        finally:
            with self._lock:
                self._in_flight.pop(spec.task_id, None)
                self._backoffs.pop(spec.task_id, None)

    def _run_with_retries(self, first: store.RunTicket, spec: TaskSpec, launched: ProcessRun | None) -> int:
        current = first
        result: RunResult | None = None
        given_up = threading.Event()  # a stop request or shutdown during the backoff
        with self._lock:
            self._backoffs[spec.task_id] = given_up
        if self.stopping.is_set():
            given_up.set()

        def wait_for_retry(seconds: float) -> None:
            given_up.wait(seconds)

        def should_retry(outcome: RunResult) -> bool:
            if outcome.status not in RETRYABLE or self.stopping.is_set():
                return False
            latest = store.get_run(current.id)
            return latest is not None and not latest.stop_requested

        retrying = Retrying(
            stop=stop_after_attempt(spec.retries + 1),
            wait=wait_exponential(multiplier=spec.retry_backoff_seconds, max=6 * 3600),
            retry=retry_if_result(should_retry),
            sleep=wait_for_retry,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        assert result is not None
                        if given_up.is_set() or self.stopping.is_set():
                            break  # stopped or shutting down during the backoff: the failure stands
                        store.finish_run(current, result, release_task=False)
                        log.info(
                            "%s failed (%s); retry %d of %d",
                            spec.task_id,
                            result.message,
                            attempt.retry_state.attempt_number - 1,
                            spec.retries,
                        )
                        current = store.begin_retry(current, self.clock.now())
                    result = self._attempt(
                        current, spec, launched if attempt.retry_state.attempt_number == 1 else None
                    )
                if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
                    attempt.retry_state.set_result(result)
        except Exception:
            # One task's failure must never stop the daemon or other tasks. It
            # is recorded against the attempt in progress, not the first one.
            log.exception("internal error while running %s (run %d)", spec.task_id, current.id)
            now = self.clock.now()
            message = "internal error in moltbot (see its log)"
            result = RunResult("failed", None, current.started_at or now, now, message, "", "", None)
        assert result is not None
        pause_by = "shutdown" if result.status == "interrupted" and self.stopping.is_set() else None
        store.finish_run(current, result, release_task=True, pause_by=pause_by)
        level = logging.INFO if result.status == "success" else logging.WARNING
        log.log(level, "%s run %d: %s", spec.task_id, current.id, result.message)
        return current.id

    def _attempt(self, run: store.RunTicket, spec: TaskSpec, process: ProcessRun | None) -> RunResult:
        if process is None:
            if self.stopping.is_set():
                now = self.clock.now()
                message = "interrupted: the daemon shut down before it started"
                return RunResult("interrupted", None, now, now, message, "", "", self._log_path(run, spec))
            process = self._prepare(run, spec)
            process.start()
        return process.supervise()

    def _log_path(self, run: store.RunTicket, spec: TaskSpec) -> Path:
        return self.core.home.logs_dir / spec.task_id / f"{run.id}.log"

    def _prepare(self, run: store.RunTicket, spec: TaskSpec) -> ProcessRun:
        home = self.core.home
        checkpoint = store.load_checkpoint(spec.task_id)
        env = minimal_environment(
            {
                "MOLTBOT_TASK_ID": spec.task_id,
                "MOLTBOT_RUN_ID": str(run.id),
                "MOLTBOT_HOME": str(home.root),
                "MOLTBOT_CHECKPOINT": checkpoint or "",
                **dict(spec.env),
            }
        )
        # The venv's bin first: task scripts can call `moltbot checkpoint ...`
        # and `#!/usr/bin/env python3` finds the interpreter with moltbot.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        process = ProcessRun(
            [str(spec.resolved_script(home.tasks_dir)), *spec.args],
            cwd=home.tasks_dir,
            env=env,
            log_path=self._log_path(run, spec),
            timeout=spec.timeout_seconds,
            kill_grace=self.settings.kill_grace_seconds,
            output_cap=self.settings.output_cap_bytes,
            now=self.clock.now,
        )
        with self._lock:
            self._in_flight[spec.task_id] = process
        return process


class Checkpointer:
    """Checkpoints the SQLite WAL on its own thread, every ``every`` commits.

    Woken by commits, never by a timer: an idle daemon stays asleep.
    """

    def __init__(self, every: int = 200) -> None:
        self.every = every
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)

    def start(self) -> None:
        store.background_checkpoints(self._count)
        self._thread.start()

    def _count(self) -> None:
        self._commits += 1  # under the store's writer lock: no race
        if self._commits >= self.every:
            self._commits = 0
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            try:
                store.checkpoint()
            except Exception:
                log.exception("WAL checkpoint failed; the next one will retry")
            if self._stopping:
                return

    def stop(self) -> None:
        """A last checkpoint, then the thread ends."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._due.set()
        self._thread.join(30)


class Daemon:
    def __init__(self, core: Core, specs: list[TaskSpec]) -> None:
        self.core = core
        self.clock = core.clock
        self.settings = core.settings
        self.specs = {spec.task_id: spec for spec in specs}
        self.waker = Waker()
        self.stopping = threading.Event()
        self._stop_signal: int | None = None
        self._reload_requested = False
        # Queued runs and stop requests come from outside (SIGUSR1 from the
        # CLI, recovery at start) or wait behind a busy task; only then is
        # the loop's pass worth the queries.
        self._requests_pending = True
        self._queued_waiting = False
        self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="run")
        self.executor = Executor(core, self.stopping)
        self._checkpointer = Checkpointer()
        self.housekeeping = housekeeping_schedule.Scheduler()

    # --- lifecycle ---------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self.waker.signal_fd, warn_on_full_buffer=False)
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

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code."""
        self.install_signal_handlers()
        self._checkpointer.start()
        self.startup()
        log.info(
            "moltbot daemon started (pid %d, %d tasks, %d workers)",
            os.getpid(),
            len(self.specs),
            self.settings.workers,
        )
        while not self.stopping.is_set():
            self.waker.wait(self.step())
        self.shutdown()
        return 0

    def startup(self) -> None:
        """Recover from a crash and from the last shutdown, before scheduling anything."""
        now = self.clock.now()
        for run in store.recover_abandoned_runs(now):
            spec = self.specs.get(run.task_id)
            orphans = processes_of_run(self.core.home.root, run.id)
            signal_processes(orphans, signal.SIGKILL)
            log.warning(
                "run %d of %s was left running by a crashed daemon: interrupted, %d processes killed",
                run.id,
                run.task_id,
                len(orphans),
            )
            if spec and not spec.schedule.one_shot and spec.missed != "skip":
                store.enqueue_run(run.task_id, "recovery", None, now)
        for task in store.tasks_paused_by("shutdown"):
            store.resume_task(task.task_id, task.next_run, now, "resumed after the daemon restarted")
            last = store.last_finished_run(task.task_id)
            if last is not None and last.status == "interrupted" and task.task_id in self.specs:
                store.enqueue_run(task.task_id, "resume", None, now)
        self.housekeeping.every(1).hours.do(self.prune)
        self.prune()

    def shutdown(self) -> None:
        signame = signal.Signals(self._stop_signal).name if self._stop_signal else "request"
        log.info("shutting down (%s): stopping runs, their tasks resume on the next start", signame)
        self.executor.cancel_all("the daemon is shutting down")
        self._pool.shutdown(wait=True)
        self._checkpointer.stop()
        self.waker.close()
        log.info("moltbot daemon stopped")

    # --- one pass of the scheduling loop -------------------------------------------

    def step(self) -> float | None:
        """Do everything that is due now; return how long to sleep (None: until woken)."""
        if self._stop_signal is not None:
            self.stopping.set()
            return 0
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        self.housekeeping.run_pending()
        if self._requests_pending:
            self._requests_pending = False
            self._apply_stop_requests()
            self._start_queued()
        self._dispatch_due()
        return self._seconds_to_sleep()

    def reload(self) -> None:
        try:
            specs = self.core.load_specs()
        except ConfigError as error:
            log.error("config reload failed; keeping the last good config:\n%s", error)
            return
        self.specs = {spec.task_id: spec for spec in specs}
        result = self.core.sync(specs)
        log.info(
            "config reloaded: %d tasks (added %s, changed %s, removed %s)",
            len(specs),
            result.added or "none",
            result.changed or "none",
            result.removed or "none",
        )

    def _busy(self) -> int:
        return self.executor.busy()

    def _apply_stop_requests(self) -> None:
        for run in store.runs_with_stop_requested():
            self.executor.cancel(run.task_id, "stopped on request")

    def _submit(self, run: store.RunTicket, spec: TaskSpec) -> None:
        # Spawned here, on the loop thread that woke at the due instant; a
        # hand-off to a worker first cost milliseconds of GIL wait (benchmarks/).
        try:
            launched = self.executor.launch(run, spec)
        except Exception:
            log.exception("could not launch %s (run %d); the worker will record it", spec.task_id, run.id)
            launched = None
        self._pool.submit(self._work, run, spec, launched)

    def _work(self, run: store.RunTicket, spec: TaskSpec, launched: ProcessRun | None) -> None:
        try:
            self.executor.execute(run, spec, launched)
        finally:
            if self._queued_waiting:
                self._requests_pending = True
            self.waker.wake()

    def _start_queued(self) -> None:
        now = self.clock.now()
        free = self.settings.workers - self._busy()
        for queued in store.queued_runs(max(free, 0)):
            spec = self.specs.get(queued.task_id)
            if spec is None:
                store.skip_queued(queued.id, now, "the task is not in the current config")
                continue
            ticket, _ = store.start_queued(queued.id, now)
            if ticket is not None:
                self._submit(ticket, spec)
        # Runs still queued (behind a busy task, or no free worker) are
        # looked at again when a worker finishes.
        self._queued_waiting = store.has_queued_runs()

    def _dispatch_due(self) -> None:
        now = self.clock.now()
        free = self.settings.workers - self._busy()
        for task in store.due_tasks(now, limit=max(free, 0) + self._busy()):
            spec = self.specs.get(task.task_id)
            if spec is None:
                store.set_next_run(task.task_id, None)  # the store and config disagree; never spin on it
                continue
            running = task.current_run_id is not None
            if not running and free <= 0:
                continue
            run = store.apply_plan(task.task_id, now, functools.partial(self._plan, spec=spec))
            if run is not None:
                self._submit(run, spec)
                free -= 1

    def _plan(self, task: store.DueTask, spec: TaskSpec) -> store.Decision:
        assert task.next_run is not None
        now = self.clock.now()
        if task.current_run_id is not None:
            # overlap = skip: the occurrence passes while the task runs.
            following = spec.schedule.next_after(max(task.next_run, now), task.anchor)
            message = f"skipped: still running (run {task.current_run_id}); overlap policy: skip"
            return None, following, [("skipped", task.next_run, message)]
        plan: Plan = plan_due(
            spec.schedule,
            task.anchor,
            task.next_run,
            now,
            missed=spec.missed,
            grace=timedelta(seconds=self.settings.missed_grace_seconds),
            max_catchup=self.settings.max_catchup_runs,
            late_since=task.last_finished,
        )
        return plan.run_for, plan.next_run, plan.records

    def _seconds_to_sleep(self) -> float | None:
        candidates = []
        if self._busy() < self.settings.workers:
            earliest = store.earliest_next_run()
            if earliest is not None:
                candidates.append(max(0.0, (earliest - self.clock.now()).total_seconds()))
        idle = self.housekeeping.idle_seconds
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
