"""The daemon's thread that checkpoints SQLite's write-ahead log (the store offers the means).

A checkpoint inside a commit on the daemon's loop thread stalled run starts by
milliseconds (benchmarks/: p99 lateness 6.3 -> 3 ms), so the daemon turns
automatic checkpoints off and this thread copies the WAL back every ``every``
commits. Woken by commits, never by a timer: an idle daemon stays asleep.

Copying alone never kept the WAL file from growing: SQLite starts the WAL over
from its top only when a write begins after a checkpoint copied all of it, and
the commit that wakes this thread is soon followed by the next, during the
copy. The file grew by every commit (issue #11: 275 MB after 6 000 commands).
So once more than ``restart_above`` of the WAL is in use, the copy is followed
by a RESTART checkpoint, which makes the next write start at the top: the file
grows no further. It holds this process's writers while it copies what was
committed during the copy: 0.03 ms when nothing was; else two disk syncs,
~0.5-2 ms here (a slow disk's syncs take longer), once per 4 MB of writes.
Under sustained commits, one every few tenths of a millisecond, no moment
without one comes, so waiting for it would only let the WAL grow. The file is
not made shorter, as freeing its blocks took milliseconds per 10 MB with the
writers held; only a file larger than ``truncate_above`` (a reader in another
process kept the WAL from starting over for long) is cut to nothing. Figures:
benchmarks/bench_wal.py. Supervised (``moltbot/threads.py``): a checkpoint that fails is
logged and shown, and the thread goes on.
"""

from __future__ import annotations

import logging
import threading

from moltbot import store
from moltbot.threads import Supervised, ThreadWatch

__all__ = ["RESTART_ABOVE", "TRUNCATE_ABOVE", "WalCheckpointer"]

log = logging.getLogger(__name__)

MB = 1024 * 1024
# As SQLite's own automatic checkpoints (1 000 pages of 4 KiB), on this thread.
RESTART_ABOVE = 4 * MB
# Reached only when a reader kept the WAL from starting over (a long backup, an open
# sqlite3 shell): then it is worth the milliseconds that freeing the file's blocks takes.
TRUNCATE_ABOVE = 64 * MB


class WalCheckpointer:
    def __init__(
        self,
        every: int = 200,
        restart_above: int | None = None,
        truncate_above: int | None = None,
        watch: ThreadWatch | None = None,
    ) -> None:
        self.every = every
        # The module's values read now, not at import: bench_wal.py measures the old policy with them.
        self.restart_above = RESTART_ABOVE if restart_above is None else restart_above
        self.truncate_above = TRUNCATE_ABOVE if truncate_above is None else truncate_above
        self._commits = 0
        self._due = threading.Event()
        self._refused = False  # someone was in the way of the last restart
        self._reader_warned = False
        self._thread = Supervised("wal-checkpoint", self._one_pass, watch)

    def start(self) -> None:
        if store.is_postgresql():
            return  # the server keeps its own write-ahead log
        store.background_checkpoints(self._count)
        self._thread.start()

    def _count(self) -> None:
        self._commits += 1  # under the store's writer lock: no race
        # A refused restart is tried again at the next commit: the reader in the way is
        # usually gone by then, and only commits make the WAL longer (no timer needed).
        if self._commits >= self.every or self._refused:
            self._commits = 0
            self._due.set()

    def _one_pass(self) -> None:
        self._due.wait()
        self._due.clear()
        self.checkpoint()  # when it fails, the next due one retries

    def checkpoint(self) -> None:
        """Copy the WAL back without holding anyone up; past the limits, start it over."""
        in_use = store.checkpoint_wal()
        size = store.wal_bytes()
        truncate = size > self.truncate_above
        if not truncate and in_use <= self.restart_above:
            return
        if store.restart_wal(truncate):
            if self._reader_warned:
                log.info("WAL started over (%.1f MB in use, file %.1f MB)", in_use / MB, size / MB)
            self._refused = self._reader_warned = False
            return
        # Most readers (or writers elsewhere) in the way are gone by the next commit. One that
        # holds the WAL until the file passes truncate_above is worth a line, once (a single
        # interval of busy commits can take it well past restart_above: 10 MB at 400 runs a second).
        self._refused = True
        if truncate and not self._reader_warned:
            self._reader_warned = True
            log.warning(
                "WAL file is %.1f MB (%.1f MB in use, limit %.1f MB): a reader keeps it from "
                "starting over (a backup? an open sqlite3 shell?); trying again at each commit",
                size / MB,
                in_use / MB,
                self.restart_above / MB,
            )

    def stop(self) -> None:
        """A last checkpoint, then the thread ends (and commits checkpoint themselves again)."""
        self._thread.stopping.set()  # first: the pass the checkpoint ends is the last one
        self._due.set()
        self._thread.stop(30)
        store.background_checkpoints(None)
