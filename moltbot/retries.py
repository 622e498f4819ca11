"""The one bounded retry policy for calls that surely did not take effect yet.

Three attempts, 0.5 s then 1 s apart (tenacity): enough for a service that
blinked, short enough that a caller with its own, slower retry (the outbox's
backoff) takes over soon. Only the exception types given are retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = ["quick_retries"]

F = TypeVar("F", bound=Callable[..., Any])


def quick_retries(on: type[BaseException]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        wrapped = retry(
            retry=retry_if_exception_type(on),
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.5, max=4),
            reraise=True,
        )(function)
        return cast(F, wrapped)  # tenacity's wrapper keeps the signature

    return decorate
