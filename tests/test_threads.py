"""Supervised threads: a failing pass is logged and retried after a backoff that grows only while
passes keep failing in a row (a thread is never slowed down for good by old, unrelated errors)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from moltbot import retries
from moltbot.threads import Supervised


def test_the_backoff_grows_while_passes_fail_in_a_row_and_starts_over_after_a_good_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []  # the attempt numbers the backoff was asked for

    def wait(state: Any) -> float:
        asked.append(state.attempt_number)
        return 0.0

    monkeypatch.setattr(retries, "THREAD_RESTART_WAIT", wait)
    script = ["fail", "ok", "fail", "fail", "ok", "fail", "fail", "fail"]
    done = threading.Event()

    def one_pass() -> None:
        if not script:
            done.set()
            thread.stopping.wait()
            return
        if script.pop(0) == "fail":
            raise RuntimeError("a glitch")

    thread = Supervised("test", one_pass)
    thread.start()
    try:
        assert done.wait(10)
    finally:
        thread.stop()
    assert asked == [1, 1, 2, 1, 2, 3]
