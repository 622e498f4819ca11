"""Run one task attempt as a subprocess in its own process group.

The process gets an argv list (never a shell string), its own session, a
minimal cron-like environment, and stdout/stderr pipes that are copied to the
run's log file (capped) while the last lines of each are kept for the store.
The log file is created at the first byte of output, by the supervising
thread: most scheduled tasks print nothing, and creating a directory and a
file for each run was the largest cost left on the daemon's loop thread.

One thread per run waits on a pidfd, the pipes and a cancel eventfd with a
selector, so a run costs no polling. When the deadline passes or the run is
cancelled, the whole group gets SIGTERM and, after a grace period, SIGKILL.
When the main process exits on its own, whatever it left behind in its group
is terminated the same way: like systemd's control-group kill, a task is over
when its main process is, and no grandchild outlives it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

__all__ = ["ProcessRun", "RunResult", "minimal_environment", "processes_of_run", "signal_processes"]

TAIL_BYTES = 4000
_PASSED_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class RunResult:
    status: str  # success | failed | timeout | interrupted
    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    message: str
    stdout_tail: str
    stderr_tail: str
    log_path: Path | None  # None: the run printed nothing, so no file was made


def minimal_environment(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A cron-like environment: a few basics from ``base``, then ``extra``.

    The daemon's own environment may hold secrets (gateway tokens); tasks see
    only what their definition gives them.
    """
    source = os.environ if base is None else base
    env = {name: source[name] for name in _PASSED_THROUGH if name in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env


class _Tail:
    """The last ``limit`` bytes of a stream, cut at a line boundary when possible."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.limit = limit

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.size - len(self.chunks[0]) >= self.limit:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        data = b"".join(self.chunks)
        if len(data) > self.limit:
            data = data[-self.limit :]
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                data = data[newline + 1 :]
        return data.decode("utf-8", errors="replace")


class ProcessRun:
    """One attempt. ``run()`` blocks until the process group is gone."""

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
    ) -> None:
        self.argv, self.cwd, self.env = list(argv), cwd, dict(env)
        self.log_path, self.timeout, self.kill_grace = log_path, timeout, kill_grace
        self.output_cap, self.now = output_cap, now
        self.pid: int | None = None
        self._cancel_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._cancel_reason: str | None = None
        self._closed = False
        self._guard = threading.Lock()  # the fd number must not be written after close
        self._process: subprocess.Popen[bytes] | None = None
        self._spawn_error: str | None = None
        self._pidfd = -1
        self.started_at: datetime

    def cancel(self, reason: str) -> None:
        """Ask the run to end (thread-safe): SIGTERM, then SIGKILL after the grace period."""
        with self._guard:
            if self._closed or self._cancel_reason is not None:
                return
            self._cancel_reason = reason
            os.eventfd_write(self._cancel_fd, 1)

    def run(self, on_start: Callable[[int], None] | None = None) -> RunResult:
        """Start and supervise in the calling thread."""
        self.start()
        if on_start and self.pid is not None:
            on_start(self.pid)
        return self.supervise()

    def start(self) -> None:
        """Spawn the process now (the daemon does this on its loop thread, on time).

        A failure to spawn is not raised: ``supervise`` reports it as a failed run.
        """
        self.started_at = self.now()
        try:
            self._process = self._spawn()
        except OSError as exc:
            self._spawn_error = f"could not start {self.argv[0]}: {exc.strerror or exc}"
        else:
            self.pid = self._process.pid
            self._pidfd = os.pidfd_open(self._process.pid)

    def supervise(self) -> RunResult:
        """Wait for the started process, copying its output; return how it ended."""
        try:
            if self._process is None:
                message = self._spawn_error or "not started"
                return RunResult("failed", None, self.started_at, self.now(), message, "", message, None)
            log = _LazyLog(self.log_path)
            try:
                return self._supervise(self._process, self._pidfd, log, self.started_at)
            finally:
                log.close()
                os.close(self._pidfd)
        finally:
            with self._guard:
                self._closed = True
                os.close(self._cancel_fd)

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own session and process group: killpg reaches everything
            close_fds=True,
        )

    def _supervise(
        self, process: subprocess.Popen[bytes], pidfd: int, log: _LazyLog, started_at: datetime
    ) -> RunResult:
        assert process.stdout is not None and process.stderr is not None
        stdout_tail, stderr_tail = _Tail(), _Tail()
        tails = {process.stdout.fileno(): stdout_tail, process.stderr.fileno(): stderr_tail}
        selector = selectors.DefaultSelector()
        for stream in (process.stdout, process.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream.fileno(), selectors.EVENT_READ, "pipe")
        selector.register(pidfd, selectors.EVENT_READ, "exit")
        selector.register(self._cancel_fd, selectors.EVENT_READ, "cancel")
        written = dropped = 0
        deadline = time.monotonic() + self.timeout
        kill_at: float | None = None  # when SIGTERM was sent, SIGKILL follows at this time
        ended_by: str | None = None  # "timeout" | "cancel"
        exited = False
        open_pipes = 2
        try:
            while open_pipes or not exited:
                now = time.monotonic()
                if kill_at is not None and now >= kill_at:
                    _signal_group(process.pid, signal.SIGKILL)
                    kill_at = None
                    deadline = float("inf")
                elif kill_at is None and now >= deadline and ended_by is None:
                    ended_by = "timeout"
                    kill_at = self._terminate(process.pid)
                wake = min(deadline, kill_at if kill_at is not None else float("inf"))
                timeout = None if wake == float("inf") else max(0.0, wake - now)
                for key, _ in selector.select(timeout):
                    if key.data == "pipe":
                        chunk = os.read(key.fd, 65536)
                        if not chunk:
                            selector.unregister(key.fd)
                            open_pipes -= 1
                            continue
                        tails[key.fd].add(chunk)
                        room = max(0, self.output_cap - written)
                        log.write(chunk[:room])
                        written += min(room, len(chunk))
                        dropped += len(chunk) - min(room, len(chunk))
                    elif key.data == "exit":
                        selector.unregister(pidfd)
                        exited = True
                        # The group may still hold children that keep the
                        # pipes open; the main process is a zombie until we
                        # reap it, so its pgid cannot be reused meanwhile.
                        if kill_at is None and ended_by is None:
                            kill_at = self._terminate(process.pid)
                    elif key.data == "cancel":
                        selector.unregister(self._cancel_fd)
                        if ended_by is None and not exited:
                            ended_by = "cancel"
                            kill_at = self._terminate(process.pid)
        finally:
            selector.close()
            process.stdout.close()
            process.stderr.close()
        # Still a zombie here (not reaped), so the pgid cannot have been reused.
        _signal_group(process.pid, signal.SIGKILL)  # nothing of it may remain
        returncode = process.wait()
        if dropped:
            log.write(f"\n[moltbot] output truncated: {dropped} bytes over the cap were dropped\n".encode())
        finished_at = self.now()
        status, message = self._verdict(returncode, ended_by, finished_at - started_at)
        return RunResult(
            status,
            returncode,
            started_at,
            finished_at,
            message,
            stdout_tail.text(),
            stderr_tail.text(),
            self.log_path if log.created else None,
        )

    def _terminate(self, pid: int) -> float:
        _signal_group(pid, signal.SIGTERM)
        return time.monotonic() + self.kill_grace

    def _verdict(self, returncode: int, ended_by: str | None, elapsed: timedelta) -> tuple[str, str]:
        seconds = elapsed.total_seconds()
        if ended_by == "timeout":
            return "timeout", f"timed out after {self.timeout:g}s (took {seconds:.1f}s to stop)"
        if ended_by == "cancel":
            return "interrupted", f"interrupted: {self._cancel_reason} after {seconds:.1f}s"
        if returncode == 0:
            return "success", f"succeeded in {seconds:.1f}s"
        if returncode < 0:
            name = signal.Signals(-returncode).name
            return "failed", f"killed by signal {name} after {seconds:.1f}s"
        return "failed", f"exit code {returncode} after {seconds:.1f}s"


class _LazyLog:
    """The run's log file, made when the first output arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    @property
    def created(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: `tail -f` on a running task's log shows output as it comes.
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (closed in close)
        self._file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def processes_of_run(home: Path, run_id: int) -> list[int]:
    """Every process still running for ``run_id`` of the moltbot at ``home``.

    Found by the environment the runner gave the run (children inherit it),
    so this needs nothing written at start-up and also finds processes that
    left the run's process group. Used after a crash and for foreground runs.
    """
    markers = (f"MOLTBOT_RUN_ID={run_id}\0".encode(), f"MOLTBOT_HOME={home}\0".encode())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                content = environ.read()
        except OSError:
            continue  # gone, or not ours to read
        if all(b"\0" + marker in b"\0" + content for marker in markers):
            found.append(int(entry.name))
    return found


def signal_processes(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
