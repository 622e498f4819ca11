"""Background threads that survive their own bugs: one pass of work, done again and again, supervised.

A thread's body is one pass (take what is there, do it, wait for more). A pass
that raises is logged with its traceback and the next one starts after a
backoff (``retries.THREAD_RESTART_WAIT``) that grows only while passes keep
failing in a row: one bad message or a database hiccup never silently ends a
thread the daemon depends on, and never slows it down for good. Each change
(running, restarting after an error, running again) is told to a
``ThreadWatch`` (the daemon's health board), so a thread in trouble shows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from moltbot import retries

__all__ = ["Supervised", "ThreadWatch", "describe"]

log = logging.getLogger(__name__)


class ThreadWatch(Protocol):
    """Told how a supervised thread is; called on the thread itself, so it must not block."""

    def thread_running(self, name: str, failures: int) -> None:
        """Started, or started again after ``failures`` failed passes in a row (0: a good pass)."""
        ...

    def thread_failed(self, name: str, error: str, failures: int) -> None:
        """A pass raised ``error``; the thread waits out its backoff before the next one."""
        ...


def describe(exc: BaseException) -> str:
    """An error in one line, short enough for a status line."""
    return f"{type(exc).__name__}: {exc}"[:300]


class Supervised:
    """Runs ``one_pass()`` on a thread, again and again, until ``stop()``. A pass should wait
    (for work, or its next due time) on something ``stopping`` or the caller's wake-up ends."""

    def __init__(self, name: str, one_pass: Callable[[], None], watch: ThreadWatch | None = None) -> None:
        self.name = name
        self.one_pass = one_pass
        self.watch = watch
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0  # in a row
        self._tell_running(failures)
        while not self.stopping.is_set():
            try:
                self.one_pass()
            except Exception as exc:
                failures += 1
                wait = retries.delay(retries.THREAD_RESTART_WAIT, failures)
                log.exception("%s failed; going on in %.0f s", self.name, wait)
                if self.watch is not None:
                    self.watch.thread_failed(self.name, describe(exc), failures)
                self.stopping.wait(wait)
                self._tell_running(failures)
            else:
                if failures:
                    failures = 0
                    self._tell_running(failures)

    def _tell_running(self, failures: int) -> None:
        if self.watch is not None and not self.stopping.is_set():
            self.watch.thread_running(self.name, failures)
