"""The real retry policies (other tests run with instant ones): bounded, and as documented."""

from __future__ import annotations

import importlib

import pytest

from moltbot import retries


@pytest.fixture
def real() -> object:
    """The policies as moltbot ships them (the autouse fixture replaced them for every test)."""
    return importlib.reload(retries)


def test_quick_retries_are_three_attempts_half_a_second_then_one_apart(real: object) -> None:
    assert retries.QUICK.stop.max_attempt_number == 3  # type: ignore[attr-defined]
    assert [retries.delay(retries.QUICK.wait, attempt) for attempt in (1, 2)] == [0.5, 1.0]


def test_an_undelivered_message_waits_2_s_doubling_up_to_5_min(real: object) -> None:
    delays = [retries.delay(retries.OUTBOX_WAIT, attempt) for attempt in range(1, 11)]
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_reconnecting_waits_with_full_jitter_up_to_a_minute(real: object) -> None:
    for attempt in range(1, 12):
        delay = retries.delay(retries.RECONNECT_WAIT, attempt)
        assert 0 <= delay <= min(60, 2 ** (attempt - 1))


def test_a_task_retries_as_often_as_it_says_with_its_own_backoff_capped_at_6_h(real: object) -> None:
    stop, wait = retries.task_retry_stop(2), retries.task_retry_wait(30)
    assert [retries.gives_up(stop, attempt) for attempt in (1, 2, 3)] == [False, False, True]
    assert [retries.delay(wait, attempt) for attempt in (1, 2, 3)] == [30, 60, 120]
    assert retries.delay(wait, 20) == 6 * 3600


def test_a_failed_thread_starts_over_after_1_s_growing_to_a_minute(real: object) -> None:
    assert [retries.delay(retries.THREAD_RESTART_WAIT, attempt) for attempt in (1, 2, 8)] == [1, 2, 60]


def test_discord_429s_are_retried_five_times(real: object) -> None:
    assert [retries.gives_up(retries.DISCORD_RATE_LIMIT_STOP, attempt) for attempt in (5, 6)] == [False, True]


def test_a_locked_database_is_retried_after_1_s_growing_to_30_s_and_alerted_after_a_minute(
    real: object,
) -> None:
    assert [retries.delay(retries.DATABASE_WAIT, attempt) for attempt in (1, 2, 3, 9)] == [1, 2, 4, 30]
    assert retries.DATABASE_ALERT_AFTER_SECONDS == 60


def test_a_ping_is_tried_three_times_1_s_then_2_s_apart_within_5_s_each(real: object) -> None:
    assert [retries.gives_up(retries.PING_STOP, attempt) for attempt in (1, 2, 3)] == [False, False, True]
    assert [retries.delay(retries.PING_WAIT, attempt) for attempt in (1, 2)] == [1, 2]
    assert retries.PING_TIMEOUT_SECONDS == 5.0
