"""A run's output: the log file (made at the first byte, capped) and the tails kept for the store."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import BinaryIO

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
    """The run's log file, made when the first output arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._disabled = False

    def disable(self) -> None:
        self._disabled = True

    @property
    def created(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        if not data or self._disabled:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: `tail -f` on a running task's log shows output as it comes.
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (closed in close)
        self._file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
