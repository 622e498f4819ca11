"""Alerts as incidents: a task failing every second opens one incident, reminds rarely, closes once.

A real daemon against the fake gateway; what the owner got is counted on the
gateway, what moltbot knows is read through the CLI (``status --json``, ``tasks``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import BOT, FakeGateway
from tests.test_signal import OWNER, OWNER_UUID


def settings(gateway: FakeGateway) -> str:
    return (
        f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\ntimeout_seconds = 2\n'
        f'allowed = [["{OWNER}", "{OWNER_UUID}"]]\n'
    )


def status_task(env: Env, task_id: str) -> dict[str, object]:
    tasks = json.loads(env.cli("status", "--json", check=True).stdout)["tasks"]
    task: dict[str, object] = next(task for task in tasks if task["id"] == task_id)
    return task


def failing_task(env: Env, gateway: FakeGateway, **fields: object) -> Path:
    """``flaky``, due every second, failing (``disk full``, exit 3) while the file returned exists;
    moltbot.toml with the owner on Signal."""
    gateway.accounts = {OWNER: OWNER_UUID}
    broken = env.home.tasks_dir / "broken"
    broken.touch()
    env.script("flaky.sh", f"if [ -e {broken} ]; then echo disk full >&2; exit 3; fi\n")
    env.write_tasks(
        {"task_id": "flaky", "script_path": "flaky.sh", "schedule": "every 1s", **fields},
        settings=settings(gateway),
    )
    return broken


def test_a_task_failing_every_second_is_one_incident(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> None:
    broken = failing_task(env, gateway, alert_after=2, alert_repeat="3s")
    assert env.cli("check").returncode == 0
    listed = json.loads(env.cli("tasks", "--json", check=True).stdout)[0]
    assert (listed["alert_after"], listed["alert_repeat"]) == (2, "3s")
    assert "alerts after 2 failures, reminds every 3s" in env.cli("tasks", check=True).stdout
    daemon = start_daemon()

    def texts() -> list[str]:
        return gateway.texts_to_person(OWNER_UUID)

    wait_until(lambda: texts(), what="the opening alert")
    (opening,) = texts()
    assert opening.startswith("⚠ scheduled run: ❌ flaky failed") and "disk full" in opening
    assert opening.endswith("output:flaky for the output, run:flaky to try again")
    incident = status_task(env, "flaky")["incidents"][0]  # type: ignore[index]
    assert incident["kind"] == "failing" and incident["failures"] >= 2 and incident["alerted"]
    wait_until(lambda: len(texts()) >= 2, what="a reminder")
    reminder = texts()[1]
    assert reminder.startswith("🔁 flaky still failing: ") and " failures since " in reminder
    assert "output:flaky" in reminder

    daemon.stop()  # the incident survives a restart: no second opening alert
    failures_before = status_task(env, "flaky")["error_count"]
    start_daemon()
    wait_until(lambda: status_task(env, "flaky")["error_count"] > failures_before, what="a failure after")  # type: ignore[operator]
    assert not any(text.startswith("⚠") for text in texts()[1:])
    assert "failing (" in env.cli("status", check=True).stdout

    broken.unlink()
    wait_until(lambda: texts()[-1].startswith("✅"), what="the recovery message")
    recovered = texts()[-1]
    failures = status_task(env, "flaky")["error_count"]
    assert recovered.startswith(f"✅ flaky recovered after {failures} failures (")
    assert status_task(env, "flaky")["incidents"] == []
    assert len(texts()) <= 3 + int(str(failures)) // 3  # opening, a reminder per 3 s, recovery


def test_check_names_file_line_and_field_of_each_bad_alert_field(env: Env) -> None:
    env.script("job.sh", "exit 0\n")
    bad = {"task_id": "job", "script_path": "job.sh", "schedule": "every 1h", "alert_after": 0,
           "alert_repeat": "daily", "expect_success_within": "never", "alert_repat": "1h"}  # fmt: skip
    env.write_tasks(bad)
    checked = env.cli("check")
    assert checked.returncode != 0
    for field, message in (
        ("alert_after", "expected 1 to 10000"),
        ("alert_repeat", "'daily' is not a duration: write e.g."),
        ("expect_success_within", "is not a duration"),
        ("alert_repat", "did you mean 'alert_repeat'"),
    ):
        line = next(line for line in checked.stderr.splitlines() if f".{field}" in line)
        assert "tasks.json:" in line and message in line, line


def test_recovery_is_owed_even_when_the_run_that_recovers_cannot_alert(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # The opening alert went out; the success comes from `moltbot run` with no daemon:
    # the recovery is queued then and delivered when the daemon is back.
    broken = failing_task(env, gateway, alert_repeat="never")
    daemon = start_daemon()

    def texts() -> list[str]:
        return gateway.texts_to_person(OWNER_UUID)

    wait_until(lambda: texts(), what="the opening alert")
    daemon.stop()
    broken.unlink()
    env.cli("run", "flaky", check=True)  # in the foreground: nothing can be sent now
    assert status_task(env, "flaky")["incidents"] == []
    start_daemon()
    wait_until(lambda: texts()[-1].startswith("✅"), what="the recovery after the restart")
    assert texts()[-1].startswith("✅ flaky recovered after ")
