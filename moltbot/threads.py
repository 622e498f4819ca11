"""Background threads that survive their own bugs: a loop body run again and again, supervised.

An unexpected error is logged with its traceback and the body starts over
after a backoff (``retries.THREAD_RESTART_WAIT``, growing while it keeps
failing), so one bad message or a database hiccup never silently ends a
thread the daemon depends on. ``health`` says how the thread is doing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from moltbot import retries

__all__ = ["Health", "Supervised"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    name: str
    alive: bool
    restarts: int  # times the body failed and started over
    last_error: str | None


class Supervised:
    """Runs ``body()`` on a thread until ``stop()``; ``body`` returns when it is done for now (it is
    called again at once) and raises when something went wrong (called again after a backoff).
    ``body`` should return soon after ``stopping`` is set."""

    def __init__(self, name: str, body: Callable[[], None], stopping: threading.Event | None = None) -> None:
        self.name = name
        self.body = body
        self.stopping = stopping or threading.Event()
        self._restarts = 0
        self._failures_in_a_row = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def health(self) -> Health:
        return Health(self.name, self._thread.is_alive(), self._restarts, self._last_error)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.body()
                self._failures_in_a_row = 0
            except Exception as exc:
                self._restarts += 1
                self._failures_in_a_row += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                wait = retries.delay(retries.THREAD_RESTART_WAIT, self._failures_in_a_row)
                log.exception("%s failed; starting it again in %.0f s", self.name, wait)
                self.stopping.wait(wait)
