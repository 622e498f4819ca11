"""A run's output: the log file (made at the first byte, capped) and the tails kept for the store."""

from __future__ import annotations

import errno
from collections import deque
from pathlib import Path
from typing import BinaryIO

from moltbot.config.home import layout_error

__all__ = ["LazyLog", "Tail"]

TAIL_BYTES = 4000


class Tail:
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


class LazyLog:
    """The run's log file, made when the first output arrives.

    Saving the output never ends the run: when the file cannot be made or written (a file where
    its folder goes, no permission, a full disk), the rest of the output is not saved, and
    ``lost`` says why for the run's message. The tails are kept in memory either way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created = False  # the file was made (it may hold part of the output)
        self.lost: str | None = None  # why output was not saved
        self._file: BinaryIO | None = None
        self._disabled = False

    def disable(self) -> None:
        self._disabled = True

    def write(self, data: bytes) -> None:
        if not data or self._disabled or self.lost is not None:
            return
        try:
            if self._file is None:
                self._file = self._open()
            view = memoryview(data)
            while view:  # an unbuffered write may be short (a disk filling up): then the rest, or ENOSPC
                written = self._file.write(view)
                if not written:  # never for a file; but a loop here would hang every run
                    raise OSError(errno.EIO, "the log file took no data")
                view = view[written:]
        except OSError as exc:
            self.lost = self.lost or f"{exc.filename or self.path}: {exc.strerror or exc}"
            self.close()

    def _open(self) -> BinaryIO:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.lost = layout_error(self.path.parent, exc).problem  # names what is in the way
            raise
        # Unbuffered: `tail -f` on a running task's log shows output as it comes.
        file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (closed in close)
        self.created = True
        return file

    def close(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as exc:  # some file systems report a failed write only here
            self.lost = self.lost or f"{self.path}: {exc.strerror or exc}"
