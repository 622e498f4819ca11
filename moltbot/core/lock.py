"""One daemon per MOLTBOT_HOME: an flock on ``data/daemon.lock``, held for the daemon's lifetime.

The file holds the daemon's pid, so a second daemon and ``moltbot status``
can name the running one; the lock itself (not the pid) decides whether one
runs, so a stale file after a crash means nothing.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

__all__ = ["AlreadyRunning", "DaemonLock", "daemon_pid"]

PROBE_GRACE_SECONDS = 1.0  # far longer than any probe holds it; a second daemon is refused after it


class AlreadyRunning(RuntimeError):
    pass


class DaemonLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # A CLI looking for the daemon (``daemon_pid``) holds a shared lock for microseconds: taken
        # in that instant, the lock is tried again. A daemon holds it for good: after PROBE_GRACE.
        give_up = time.monotonic() + PROBE_GRACE_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < give_up:
                    time.sleep(0.005)
                    continue
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


def daemon_pid(lock_path: Path) -> int | None:
    """The pid of the daemon holding this lock, or None (-1: running, pid unknown)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
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
