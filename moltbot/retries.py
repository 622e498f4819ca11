"""Every retry and backoff policy of moltbot, as tenacity values, in one place.

Callers read these through the module at the moment they need them
(``retries.OUTBOX_WAIT``), never bind them at import, so a test replaces a
policy with ``monkeypatch.setattr(retries, "OUTBOX_WAIT", wait_none())`` and
waits out no real backoff window. Retrying one request is bounded in attempts
(``QUICK``, ``DISCORD_RATE_LIMIT_STOP``, a task's ``retries``); the waits of
the loops that outlast an outage (the outbox, reconnecting, a failed thread)
grow to a cap and go on. Only errors that surely took no effect are retried
(the callers decide which).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = [
    "DATABASE_ALERT_AFTER_SECONDS",
    "DATABASE_WAIT",
    "DISCORD_RATE_LIMIT_STOP",
    "OUTBOX_WAIT",
    "PING_STOP",
    "PING_TIMEOUT_SECONDS",
    "PING_WAIT",
    "QUICK",
    "RECONNECT_WAIT",
    "THREAD_RESTART_WAIT",
    "delay",
    "gives_up",
    "quick_retries",
    "task_retry_stop",
    "task_retry_wait",
]

F = TypeVar("F", bound=Callable[..., Any])

# A call to a service that blinked (gateway, Ollama): three attempts, 0.5 s then 1 s apart;
# short, so that the caller's own slower retry (the outbox's) takes over soon.
QUICK = Retrying(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=4), reraise=True)

# Between tries of an outbox message that surely was not delivered: 2 s, 4 s, ... up to 5 min.
OUTBOX_WAIT: wait_base = wait_exponential(multiplier=2, max=300)

# Between reconnections to the Signal gateway: up to 1 s, 2 s, ... 60 s, with full jitter so
# that many restarts at once do not reconnect in lockstep.
RECONNECT_WAIT: wait_base = wait_random_exponential(multiplier=1, max=60)

# Before a background thread that failed unexpectedly starts over: 1 s, 2 s, ... up to 1 min.
THREAD_RESTART_WAIT: wait_base = wait_exponential(multiplier=1, max=60)

# Between passes of the daemon's loop while another process holds the database beyond
# SQLite's busy timeout: 1 s, 2 s, ... up to 30 s (the loop stays responsive to signals).
DATABASE_WAIT: wait_base = wait_exponential(multiplier=1, max=30)
# An outage of the database longer than this is told to the admins (once, when it is over).
DATABASE_ALERT_AFTER_SECONDS = 60.0

# A ping to an outside monitor (moltbot/pings.py): the whole request, connect to answer, within
# PING_TIMEOUT_SECONDS; three attempts, 1 s then 2 s apart, and only when the ping surely did not
# reach the monitor, or repeating it is harmless (a second success ping, a second heartbeat).
PING_TIMEOUT_SECONDS = 5.0
PING_STOP: stop_base = stop_after_attempt(3)
PING_WAIT: wait_base = wait_exponential(multiplier=1, max=4)

# Discord answers 429 with how long to wait (honoured as given); after this many, give up.
DISCORD_RATE_LIMIT_STOP: stop_base = stop_after_attempt(6)


def task_retry_stop(retries: int) -> stop_base:
    """A task's ``retries``: extra attempts after the first."""
    return stop_after_attempt(retries + 1)


def task_retry_wait(backoff_seconds: float) -> wait_base:
    """A task's ``retry_backoff_seconds``: 30 s, 60 s, 120 s, ... capped at 6 h."""
    return wait_exponential(multiplier=backoff_seconds, max=6 * 3600)


def _state(attempt: int) -> RetryCallState:
    """Tenacity's view of "attempt number ``attempt`` just failed"."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # no Retrying drives it
    state.attempt_number = attempt
    return state


def delay(wait: wait_base, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 = the first)."""
    return float(wait(_state(attempt)))


def gives_up(stop: stop_base, attempt: int) -> bool:
    """Is attempt number ``attempt`` the last one ``stop`` allows?"""
    return bool(stop(_state(attempt)))


def quick_retries(on: type[BaseException]) -> Callable[[F], F]:
    """Decorate a call: retried per ``QUICK`` (read at each call) when it raises ``on``."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return QUICK.copy(retry=retry_if_exception_type(on))(function, *args, **kwargs)

        return cast(F, wrapper)

    return decorate
