"""Background threads that survive their own bugs: one pass of work, done again and again, supervised.

A thread's body is one pass (take what is there, do it, wait for more). A pass
that raises is logged with its traceback and the next one starts after a
backoff (``retries.THREAD_RESTART_WAIT``) that grows only while passes keep
failing in a row: one bad message or a database hiccup never silently ends a
thread the daemon depends on, and never slows it down for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from moltbot import retries

__all__ = ["Supervised"]

log = logging.getLogger(__name__)


class Supervised:
    """Runs ``one_pass()`` on a thread, again and again, until ``stop()``. A pass should wait
    (for work, or its next due time) on something ``stopping`` or the caller's wake-up ends."""

    def __init__(self, name: str, one_pass: Callable[[], None]) -> None:
        self.name = name
        self.one_pass = one_pass
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
        while not self.stopping.is_set():
            try:
                self.one_pass()
                failures = 0
            except Exception:
                failures += 1
                wait = retries.delay(retries.THREAD_RESTART_WAIT, failures)
                log.exception("%s failed; going on in %.0f s", self.name, wait)
                self.stopping.wait(wait)
