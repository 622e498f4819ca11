"""Dead-man checks: a task with no success for ``expect_success_within`` is overdue, told once, closed once.

A real daemon against the fake gateway; the tasks' windows are seconds long, so
the real clock is the one that passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_incidents import failing_task, settings, status_task
from tests.test_signal import OWNER, OWNER_UUID


def test_a_task_that_never_succeeds_is_overdue_once_until_it_does(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> None:
    gateway.accounts = {OWNER: OWNER_UUID}
    env.script("job.sh", "exit 0\n")
    # A schedule that never fires in time: the daemon has nothing to run, yet the owner hears of it.
    task = {"task_id": "backup", "script_path": "job.sh", "schedule": "every 1d"}
    task["expect_success_within"] = "2s"
    env.write_tasks(task, settings=settings(gateway))
    assert env.cli("check").returncode == 0
    assert json.loads(env.cli("tasks", "--json", check=True).stdout)[0]["expect_success_within"] == "2s"
    assert "expects success within 2s" in env.cli("tasks", check=True).stdout
    start_daemon()

    def texts() -> list[str]:
        return gateway.texts_to_person(OWNER_UUID)

    wait_until(lambda: texts(), what="the overdue alert")
    (alert,) = texts()
    assert alert.startswith("⏰ backup has not succeeded for ")
    assert alert.endswith("(never succeeded). run:backup to try now")
    assert status_task(env, "backup")["overdue"] is True
    assert "overdue" in env.cli("status", check=True).stdout
    env.cli("run", "backup", check=True)  # a success closes it
    wait_until(lambda: len(texts()) == 2, what="the message that it succeeded again")
    assert texts()[1].startswith("✅ backup succeeded again (none for ")
    assert status_task(env, "backup")["overdue"] is False
    # Two seconds later it is overdue again: a new incident, a new alert (not one per check).
    wait_until(lambda: len(texts()) == 3, what="the next incident")
    assert texts()[2].startswith("⏰ backup has not succeeded for ") and "(last success " in texts()[2]


def test_overdue_shows_in_status_without_any_chat_channel(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # Nobody can be told, but status still owes the truth: the task is overdue.
    env.script("job.sh", "exit 0\n")
    task = {
        "task_id": "backup",
        "script_path": "job.sh",
        "schedule": "every 1d",
        "expect_success_within": "1s",
    }
    env.write_tasks(task)
    start_daemon()
    wait_until(lambda: status_task(env, "backup")["overdue"] is True, what="overdue in status")
    assert "overdue" in env.cli("status", check=True).stdout


def test_failing_and_overdue_recover_in_one_message(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> None:
    broken = failing_task(env, gateway, expect_success_within="2s", alert_repeat="never")
    start_daemon()

    def texts() -> list[str]:
        return gateway.texts_to_person(OWNER_UUID)

    wait_until(lambda: any(text.startswith("⏰") for text in texts()), what="the overdue alert")
    assert any(text.startswith("⚠") for text in texts())  # and the failing one
    broken.unlink()
    wait_until(lambda: status_task(env, "flaky")["incidents"] == [], what="both incidents closed")
    wait_until(lambda: any("✅" in text for text in texts()), what="the recovery")
    (recovery,) = [text for text in texts() if "✅" in text]
    assert recovery.count("✅") == 1, recovery
    assert recovery.startswith("✅ flaky recovered after ") and "succeeded" in recovery
