"""The daemon's thread that checkpoints SQLite's write-ahead log (the store offers the means).

A checkpoint inside a commit on the daemon's loop thread stalled run starts by
milliseconds (benchmarks/: p99 lateness 6.3 -> 3 ms), so the daemon turns
automatic checkpoints off and this thread copies the WAL back every ``every``
commits. Woken by commits, never by a timer: an idle daemon stays asleep.
Supervised (``moltbot/threads.py``): a checkpoint that fails is logged and
shown, and the thread goes on.
"""

from __future__ import annotations

import threading

from moltbot import store
from moltbot.threads import Supervised, ThreadWatch

__all__ = ["WalCheckpointer"]


class WalCheckpointer:
    def __init__(self, every: int = 200, watch: ThreadWatch | None = None) -> None:
        self.every = every
        self._commits = 0
        self._due = threading.Event()
        self._thread = Supervised("wal-checkpoint", self._one_pass, watch)

    def start(self) -> None:
        store.background_checkpoints(self._count)
        self._thread.start()

    def _count(self) -> None:
        self._commits += 1  # under the store's writer lock: no race
        if self._commits >= self.every:
            self._commits = 0
            self._due.set()

    def _one_pass(self) -> None:
        self._due.wait()
        self._due.clear()
        store.checkpoint_wal()  # when it fails, the next due one retries

    def stop(self) -> None:
        """A last checkpoint, then the thread ends."""
        self._thread.stopping.set()  # first: the pass the checkpoint ends is the last one
        self._due.set()
        self._thread.stop(30)
