"""The process groups of this daemon's runs, for fencing (several nodes on PostgreSQL, #15).

Known to any thread (the lease thread kills them when the database is out of reach for too long,
while the loop thread may be stuck in a query) and to the fence keeper process (fence_keeper.py),
which kills them if the daemon dies. Every run has a process group of its own (runner.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

__all__ = ["ProcessGroups"]

log = logging.getLogger(__name__)


class ProcessGroups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._fenced: set[int] = set()  # killed by the fence, not yet settled by the loop
        self.fencing = False  # while set, a group that starts is killed at once (a claim the fence raced)
        self._keeper: subprocess.Popen[bytes] | None = None

    def start_keeper(self) -> None:
        self._keeper = subprocess.Popen(
            [sys.executable, "-m", "moltbot.fence_keeper"],
            # None of the daemon's environment (its secrets): it needs only to find moltbot.
            env={"PATH": os.defpath, **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # not in the daemon's group: what kills that must not kill it
        )

    def _tell(self, line: str) -> None:
        keeper = self._keeper
        if keeper is None or keeper.stdin is None:
            return
        try:
            keeper.stdin.write(line.encode() + b"\n")
            keeper.stdin.flush()
        except (BrokenPipeError, ValueError):
            log.error("the fence keeper is gone: runs would outlive a crash of this daemon")
            self._keeper = None

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
            self._tell(f"+{pgid}")
            late = self.fencing  # claimed or retried as the fence came down: it must not run either
            if late:
                self._fenced.add(pgid)
        if late:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            self._tell(f"-{pgid}")

    def kill_all(self, signum: int = signal.SIGKILL) -> int:
        """Fence: signal every open group (any thread), remembered as fenced, and every group that
        starts until ``fencing`` is cleared; how many there were."""
        with self._lock:
            self.fencing = True
            groups = sorted(self._groups)
            self._fenced.update(groups)
        for pgid in groups:
            try:
                os.killpg(pgid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        return len(groups)

    def was_fenced(self, pgid: int | None) -> bool:
        """Whether the fence killed this run's group (asked once, when its end is recorded)."""
        with self._lock:
            if pgid in self._fenced:
                self._fenced.discard(pgid)
                return True
        return False

    def close(self) -> None:
        """A clean stop: the keeper leaves alone what is left (the daemon has ended its runs)."""
        with self._lock:
            keeper, self._keeper = self._keeper, None
        if keeper is not None and keeper.stdin is not None:
            try:
                keeper.stdin.write(b"=\n")
                keeper.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            keeper.wait(5)
