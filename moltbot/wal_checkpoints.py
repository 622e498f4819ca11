"""The daemon's thread that checkpoints SQLite's write-ahead log (the store offers the means).

A checkpoint inside a commit on the daemon's loop thread stalled run starts by
milliseconds (benchmarks/: p99 lateness 6.3 -> 3 ms), so the daemon turns
automatic checkpoints off and this thread copies the WAL back every ``every``
commits. Woken by commits, never by a timer: an idle daemon stays asleep.
"""

from __future__ import annotations

import logging
import threading

from moltbot import store

__all__ = ["WalCheckpointer"]

log = logging.getLogger(__name__)


class WalCheckpointer:
    def __init__(self, every: int = 200) -> None:
        self.every = every
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

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
                store.checkpoint_wal()
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
