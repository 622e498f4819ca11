"""Supervised threads: a failing pass is logged and retried after a backoff that grows only while
passes keep failing in a row (a thread is never slowed down for good by old, unrelated errors)."""

from __future__ import annotations

import logging
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


class Told:
    """A ThreadWatch that keeps what it is told, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[object, ...]] = []

    def thread_running(self, name: str, failures: int) -> None:
        self.said.append(("running", name, failures))

    def thread_failed(self, name: str, error: str, failures: int) -> None:
        self.said.append(("failed", name, error, failures))


def test_the_watch_hears_each_change_with_the_error_and_the_log_has_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = ["fail", "fail", "ok", "ok"]
    done = threading.Event()
    glitches = iter(range(1, 10))

    def one_pass() -> None:
        if not script:
            done.set()
            thread.stopping.wait()
            return
        if script.pop(0) == "fail":
            raise RuntimeError(f"glitch {next(glitches)}")

    told = Told()
    thread = Supervised("test", one_pass, told)
    with caplog.at_level(logging.ERROR, logger="moltbot.threads"):
        thread.start()
        try:
            assert done.wait(10)
        finally:
            thread.stop()
    assert told.said == [
        ("running", "test", 0),
        ("failed", "test", "RuntimeError: glitch 1", 1),
        ("running", "test", 1),  # started again, the failures in a row not over yet
        ("failed", "test", "RuntimeError: glitch 2", 2),
        ("running", "test", 2),
        ("running", "test", 0),  # a good pass: the row is over; the next good one changes nothing
    ]
    tracebacks = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert [str(error) for error in tracebacks] == ["glitch 1", "glitch 2"]
