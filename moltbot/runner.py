"""Run one task attempt as a subprocess in its own process group.

The process gets an argv list (never a shell string), its own session, a
minimal cron-like environment (``processes.py``), and stdout/stderr pipes
that are copied to the run's log file (capped) while the last lines of each
are kept for the store (``run_output.py``). Output that cannot be saved (a full
disk, a file where the log folder goes) does not end the run: its message says so.
The log file is created at the first byte of output: most scheduled tasks
print nothing, and a directory and a file for each run were the largest cost
left on the daemon's loop.

One thread supervises every run with one epoll (``Supervisor``): pidfds tell
when a main process exits, the pipes carry output, so a run costs no polling
and no thread of its own (a thread per run cost twice the CPU, in GIL
hand-offs; benchmarks/). When the deadline passes or the run is cancelled,
the whole group gets SIGTERM and, after a grace period, SIGKILL. When the
main process exits on its own, whatever it left behind in its group is
terminated the same way: like systemd's control-group kill, a task is over
when its main process is, and no grandchild outlives it.
"""

from __future__ import annotations

import logging
import math
import os
import selectors
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from moltbot.file_modes import task_umask
from moltbot.run_output import LazyLog, Tail
from moltbot.run_result import INTERNAL_ERROR, RunResult
from moltbot.task_users import Identity

if TYPE_CHECKING:
    from moltbot.fencing import ProcessGroups

__all__ = ["INTERNAL_ERROR", "ProcessRun", "RunResult", "Supervisor"]

log = logging.getLogger(__name__)


class ProcessRun:
    """One attempt: a process group, its output and its deadlines.

    Driven by a ``Supervisor`` (many runs on one thread) or by ``run()``
    (this run alone, blocking).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        timeout: float,
        kill_grace: float = 10.0,
        output_cap: int = 1024 * 1024,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        label: str = "",
        as_user: Identity | None = None,
    ) -> None:
        self.argv, self.cwd, self.env, self.as_user = list(argv), cwd, dict(env), as_user  # None: as us
        self.label = label or self.argv[0]  # for the daemon's log
        self.log_path, self.timeout, self.kill_grace = log_path, timeout, kill_grace
        self.output_cap, self.now = output_cap, now
        self.pid: int | None = None
        self.result: RunResult | None = None  # set once the group is gone and reaped
        self.started_at: datetime
        self._process: subprocess.Popen[bytes] | None = None
        self._spawn_error: str | None = None
        self._pidfd = -1
        self._tails = (Tail(), Tail())  # stdout, stderr
        self._pipes: dict[int, Tail] = {}  # the pipes still open
        self._log = LazyLog(log_path)
        self._written = self._dropped = 0
        self._deadline = float("inf")  # monotonic: the timeout
        self._kill_at: float | None = None  # SIGTERM was sent; SIGKILL follows at this time
        self._ended_by: str | None = None  # "timeout" | "cancel" | "error" (moltbot's own)
        self._exited = False
        self._cancel_reason: str | None = None
        self._on_cancel: Callable[[ProcessRun], None] | None = None

    def run(self) -> RunResult:
        """Start and supervise in the calling thread."""
        with Supervisor() as supervisor:
            self.start()
            supervisor.watch(self)
            while self.result is None:
                supervisor.wait(None)
        return self.result

    def start(self) -> None:
        """Spawn the process now (the daemon does this on its loop thread, on time).

        A failure to spawn is not raised: the run ends at once as a failed run.
        """
        self.started_at = self.now()
        try:
            self._process = self._spawn()
        except OSError as exc:
            who = f" as {self.as_user.name}" if self.as_user else ""
            self._spawn_error = f"could not start {self.argv[0]}{who}: {exc.strerror or exc}"
            now = self.now()
            self.result = RunResult("failed", None, self.started_at, now, self._spawn_error, "", "", None)
            return
        self.pid = self._process.pid
        self._pidfd = os.pidfd_open(self._process.pid)
        assert self._process.stdout is not None and self._process.stderr is not None
        for stream, tail in zip((self._process.stdout, self._process.stderr), self._tails, strict=True):
            os.set_blocking(stream.fileno(), False)
            self._pipes[stream.fileno()] = tail
        self._deadline = time.monotonic() + self.timeout

    def cancel(self, reason: str) -> None:
        """Ask the run to end (any thread): SIGTERM, then SIGKILL after the grace period."""
        if self._cancel_reason is not None or self.result is not None:
            return
        self._cancel_reason = reason
        if self._on_cancel is not None:
            self._on_cancel(self)

    def _spawn(self) -> subprocess.Popen[bytes]:
        who = self.as_user  # switched by CPython between fork and exec, in C (thread-safe; task_users.py)
        return subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own session and process group: killpg reaches everything
            close_fds=True,
            umask=task_umask(),  # moltbot's umask is private; the task's files are its owner's
            user=who.uid if who else None,
            group=who.gid if who else None,
            extra_groups=list(who.groups) if who else None,
        )

    # --- driven by the supervisor ------------------------------------------------------

    @property
    def wake_at(self) -> float:
        """The next monotonic instant this run needs attention without an event."""
        if self._kill_at is not None:
            return self._kill_at
        return self._deadline if self._ended_by is None else float("inf")

    def _read(self, fd: int) -> bool:
        """Copy what the pipe holds; False at end of file."""
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self._pipes[fd].add(chunk)
        room = max(0, self.output_cap - self._written)
        self._log.write(chunk[:room])
        self._written += min(room, len(chunk))
        self._dropped += len(chunk) - min(room, len(chunk))
        return True

    def _main_exited(self) -> None:
        self._exited = True
        # The group may still hold children that keep the pipes open; the main
        # process is a zombie until reaped, so its pgid cannot be reused meanwhile.
        if self._kill_at is None and self._ended_by is None:
            self._terminate()

    def _break(self) -> None:
        """moltbot itself failed handling this run (a bug: a log that cannot be written is not
        one, see ``LazyLog``): end it, and keep watching only for the main process to go."""
        self._log.disable()
        self._pipes.clear()
        if self._ended_by is None and not self._exited:
            self._terminate()
        self._ended_by = "error"

    def _apply_cancel(self) -> None:
        if self._ended_by is None and not self._exited and self.result is None:
            self._ended_by = "cancel"
            self._terminate()

    def _expire(self, now: float) -> None:
        assert self._process is not None
        if self._kill_at is not None and now >= self._kill_at:
            _signal_group(self._process.pid, signal.SIGKILL)
            self._kill_at = None
            self._deadline = float("inf")
        elif self._kill_at is None and now >= self._deadline and self._ended_by is None:
            self._ended_by = "timeout"
            self._terminate()

    def _terminate(self) -> None:
        assert self._process is not None
        _signal_group(self._process.pid, signal.SIGTERM)
        self._kill_at = time.monotonic() + self.kill_grace

    @property
    def _over(self) -> bool:
        return self._exited and not self._pipes

    def _finish(self) -> RunResult:
        process = self._process
        assert process is not None and process.stdout is not None and process.stderr is not None
        stdout_tail, stderr_tail = self._tails
        process.stdout.close()
        process.stderr.close()
        os.close(self._pidfd)
        # Still a zombie here (not reaped), so the pgid cannot have been reused.
        _signal_group(process.pid, signal.SIGKILL)  # nothing of it may remain
        returncode = process.wait()
        if self._dropped:
            notice = f"\n[moltbot] output truncated: {self._dropped} bytes over the cap were dropped\n"
            self._log.write(notice.encode())
        self._log.close()
        finished_at = self.now()
        status, message = self._verdict(returncode, finished_at - self.started_at)
        if self._log.lost is not None:
            # The run went on regardless: its status is its own; where its output went is said here.
            log.warning("%s: output not saved: %s", self.label, self._log.lost)
            message += f"; output not saved: {self._log.lost}"
        self.result = RunResult(
            status,
            returncode,
            self.started_at,
            finished_at,
            message,
            stdout_tail.text(),
            stderr_tail.text(),
            self.log_path if self._log.created else None,
        )
        return self.result

    def _verdict(self, returncode: int, elapsed: timedelta) -> tuple[str, str]:
        seconds = elapsed.total_seconds()
        if self._ended_by == "error":
            return "failed", INTERNAL_ERROR
        if self._ended_by == "timeout":
            return "timeout", f"timed out after {self.timeout:g}s (took {seconds:.1f}s to stop)"
        if self._ended_by == "cancel":
            return "interrupted", f"interrupted: {self._cancel_reason} after {seconds:.1f}s"
        if returncode == 0:
            return "success", f"succeeded in {seconds:.1f}s"
        if returncode < 0:
            name = signal.Signals(-returncode).name
            return "failed", f"killed by signal {name} after {seconds:.1f}s"
        return "failed", f"exit code {returncode} after {seconds:.1f}s"


class Supervisor:
    """Supervises any number of runs from one thread with one epoll.

    ``wait`` sleeps until a process exits, a pipe has output, a deadline
    passes, a run is cancelled or ``wake`` is called (from any thread, or a
    signal through ``signal_fd``), and returns the runs that ended.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._runs: set[ProcessRun] = set()
        self._cancelled: deque[ProcessRun] = deque()  # appended from any thread
        self._ended: list[ProcessRun] = []
        self.woken = False  # the last ``wait`` was ended by ``wake`` or a signal
        self.groups: ProcessGroups | None = None  # told of each run's process group (fencing.py)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def signal_fd(self) -> int:
        """For ``signal.set_wakeup_fd``: a signal ends ``wait`` early."""
        return self._wake_writer.fileno()

    def wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except BlockingIOError:
            pass  # already full of wake-ups

    def watch(self, run: ProcessRun) -> None:
        """Supervise a started run until ``wait`` returns it."""
        if run.result is not None:  # it never started
            self._ended.append(run)
            return
        run._on_cancel = self._cancel
        self._runs.add(run)
        if self.groups is not None and run.pid:
            self.groups.add(run.pid)  # its own group (start_new_session): the group id is its pid
        for fd in run._pipes:
            self._selector.register(fd, selectors.EVENT_READ, (run, fd))
        self._selector.register(run._pidfd, selectors.EVENT_READ, (run, -1))
        if run._cancel_reason is not None:
            self._cancel(run)

    def _cancel(self, run: ProcessRun) -> None:
        self._cancelled.append(run)
        self.wake()

    def wait(self, timeout: float | None) -> list[ProcessRun]:
        """Handle what happens within ``timeout`` seconds (None: until something does)."""
        self.woken = False
        if not self._ended:
            now = time.monotonic()
            wake_at = min((run.wake_at for run in self._runs), default=float("inf"))
            if wake_at != float("inf"):
                until_deadline = max(0.0, wake_at - now)
                timeout = until_deadline if timeout is None else min(timeout, until_deadline)
            for key, _ in self._select(timeout):
                if key.data is None:
                    self._drain_wakeups()
                    self.woken = True
                    continue
                run, fd = key.data
                try:
                    if fd == -1:
                        self._selector.unregister(run._pidfd)
                        run._main_exited()
                    elif not run._read(fd):
                        self._selector.unregister(fd)
                        del run._pipes[fd]
                except Exception:
                    # One run's trouble must not reach the others or the loop.
                    log.exception("internal error while running %s", run.label)
                    for pipe in run._pipes:
                        self._selector.unregister(pipe)
                    run._break()
        while self._cancelled:
            run = self._cancelled.popleft()
            if run in self._runs:
                run._apply_cancel()
        now = time.monotonic()
        for run in [run for run in self._runs if run.wake_at <= now]:
            run._expire(now)
        for run in [run for run in self._runs if run._over]:
            self._runs.discard(run)
            if self.groups is not None and run.pid:
                self.groups.discard(run.pid)
            try:
                run._finish()
            except Exception:
                log.exception("internal error while finishing %s", run.label)
                run._ended_by = "error"
                now_utc = run.now()
                run.result = RunResult("failed", None, run.started_at, now_utc, INTERNAL_ERROR, "", "", None)
            self._ended.append(run)
        ended, self._ended = self._ended, []
        return ended

    def _select(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """``select`` to the microsecond: epoll counts whole milliseconds and
        rounds up, which made runs start up to 1 ms late (benchmarks/)."""
        if timeout is None or timeout <= 0:
            return self._selector.select(timeout)
        coarse = math.floor(timeout * 1000) / 1000
        deadline = time.monotonic() + timeout
        events = self._selector.select(coarse) if coarse else []
        if not events:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)  # under a millisecond; nanosleep is precise
            events = self._selector.select(0)
        return events

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
