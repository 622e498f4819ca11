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
by a RESTART checkpoint with this process's writers held, which makes the next
write start at the top: the file grows no further. Done when nothing was
committed since the copy began, it holds them for microseconds; it is not made
shorter, as freeing the file's blocks took milliseconds per 10 MB. Only a file
larger than ``truncate_above`` (a reader in another process kept the WAL from
starting over for long) is cut to nothing. Figures: benchmarks/bench_wal.py.
"""

from __future__ import annotations

import logging
import threading

from moltbot import store

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
        self, every: int = 200, restart_above: int | None = None, truncate_above: int | None = None
    ) -> None:
        self.every = every
        # The module's values read now, not at import: bench_wal.py measures the old policy with them.
        self.restart_above = RESTART_ABOVE if restart_above is None else restart_above
        self.truncate_above = TRUNCATE_ABOVE if truncate_above is None else truncate_above
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._again = False  # the last restart due was not done: try at the next commit
        self._reader_warned = False
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        store.background_checkpoints(self._count)
        self._thread.start()

    def _count(self) -> None:
        self._commits += 1  # under the store's writer lock: no race
        # A restart due and not done is tried again at the next commit: only commits
        # make the WAL longer (no timer needed).
        if self._commits >= self.every or self._again:
            self._commits = 0
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            try:
                self.checkpoint()
            except Exception:
                log.exception("WAL checkpoint failed; the next one will retry")
            if self._stopping:
                return

    def checkpoint(self) -> None:
        """Copy the WAL back without holding anyone up; past the limits, start it over."""
        committed = store.commits()
        wal = store.checkpoint_wal()
        size = store.wal_bytes()
        truncate = size > self.truncate_above
        if not truncate and wal.in_use <= self.restart_above:
            return
        # A restart that finds frames left to copy syncs the database while this process's
        # writers wait (milliseconds on a slow disk, where the scheduling loop never waited
        # for a disk before): only once the WAL is past twice the limit. Until then it is
        # done only when the copy took everything and nothing was committed since it began.
        urgent = truncate or wal.in_use > 2 * self.restart_above
        if urgent or wal.copied:
            done = store.restart_wal(truncate, unless_committed_since=None if urgent else committed)
        else:
            done = False  # a reader was in the way of the copy
        if done:
            if self._reader_warned:
                log.info("WAL started over (%.1f MB in use, file %.1f MB)", wal.in_use / MB, size / MB)
            self._again = self._reader_warned = False
            return
        # Tried again at the next commit: a reader in the way is usually gone by then, and a
        # quiet moment comes between bursts. A reader that stays until the file passes
        # truncate_above is worth a line, once (a single interval of busy commits can take
        # the WAL well past restart_above: 10 MB with 400 runs a second).
        self._again = True
        if truncate and not self._reader_warned:
            self._reader_warned = True
            log.warning(
                "WAL file is %.1f MB (%.1f MB in use, limit %.1f MB): a reader keeps it from "
                "starting over (a backup? an open sqlite3 shell?); trying again at each commit",
                size / MB,
                wal.in_use / MB,
                self.restart_above / MB,
            )

    def stop(self) -> None:
        """A last checkpoint, then the thread ends (and commits checkpoint themselves again)."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._due.set()
        self._thread.join(30)
        store.background_checkpoints(None)
