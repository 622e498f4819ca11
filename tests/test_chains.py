"""Chains end to end: a real daemon, real scripts, real SQLite; `after` and `after_failure` runs."""

from __future__ import annotations

import pytest

from moltbot import store
from moltbot.records import Run
from tests.conftest import Env, wait_until

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)


def runs(task_id: str, status: str | None = None) -> list[Run]:
    """The task's runs, oldest first (only those with ``status``, if given)."""
    found = reversed(store.recent_runs(task_id, 1_000_000))
    return [run for run in found if status is None or run.status == status]


def chained_tasks(env: Env, backup: str, **backup_fields: object) -> None:
    env.script("backup.sh", backup)
    env.script("upload.sh", "echo uploaded\n")
    env.script("alarm.sh", "echo alarmed\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "backup.sh", **backup_fields},
        {"task_id": "upload", "script_path": "upload.sh", "after": ["backup"]},
        {"task_id": "alarm", "script_path": "alarm.sh", "after_failure": ["backup"]},
    )


def test_a_scheduled_success_runs_the_chained_task_once_with_its_trigger(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    chained_tasks(env, "echo backed up\n", schedule="in 1s")
    daemon = start_daemon()
    env.db()
    wait_until(lambda: runs("upload", "success"), what="upload to run after backup")
    assert daemon.stop() == 0
    (backup,) = runs("backup")
    (upload,) = runs("upload")
    assert (backup.status, backup.trigger) == ("success", "schedule")
    assert (upload.trigger, upload.scheduled_for, upload.requested_by) == ("after:backup", None, None)
    assert upload.queued_at == backup.finished_at  # queued in the commit that recorded backup's end
    assert runs("alarm") == []


def test_after_failure_runs_once_after_the_final_attempt(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    chained_tasks(env, "echo failing >&2; exit 1\n", schedule="in 1s", retries=2, retry_backoff_seconds=0)
    daemon = start_daemon()
    env.db()
    wait_until(lambda: runs("alarm", "success"), what="alarm to run after backup's last attempt")
    assert daemon.stop() == 0
    assert [(run.attempt, run.status) for run in runs("backup")] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    (alarm,) = runs("alarm")
    assert alarm.trigger == "after_failure:backup"
    assert alarm.queued_at == runs("backup")[-1].finished_at
    assert runs("upload") == []


def test_a_success_on_a_retry_counts_as_a_success(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    marker = env.home.root / "tried"
    chained_tasks(
        env,
        f"[ -e {marker} ] && exit 0; touch {marker}; exit 1\n",
        schedule="in 1s",
        retries=3,
        retry_backoff_seconds=0,
    )
    daemon = start_daemon()
    env.db()
    wait_until(lambda: runs("upload", "success"), what="upload to run after backup's retry")
    assert daemon.stop() == 0
    assert [run.status for run in runs("backup")] == ["failed", "success"]
    assert [run.trigger for run in runs("upload")] == ["after:backup"]
    assert runs("alarm") == []


def test_a_manual_run_without_a_daemon_queues_the_chain_for_the_daemon(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    chained_tasks(env, "echo backed up\n", schedule="daily at 03:00")
    assert env.cli("run", "backup").returncode == 0
    env.db()
    (upload,) = runs("upload")
    assert (upload.status, upload.trigger) == ("queued", "after:backup")
    daemon = start_daemon()
    wait_until(lambda: runs("upload", "success"), what="the daemon to start the queued upload")
    assert daemon.stop() == 0
    assert [run.id for run in runs("upload")] == [upload.id]


def test_a_paused_chained_task_records_its_chained_run_as_skipped(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    chained_tasks(env, "echo backed up\n", schedule="daily at 03:00")
    daemon = start_daemon()
    env.cli("pause", "upload", check=True)
    result = env.cli_json("run", "backup")
    assert result["success"] is True
    env.db()
    wait_until(lambda: runs("upload"), what="upload's chained run to be recorded")
    (upload,) = runs("upload")
    assert (upload.status, upload.trigger) == ("skipped", "after:backup")
    assert "paused" in (upload.message or "")
    env.cli("resume", "upload", check=True)
    env.cli_json("run", "backup")
    wait_until(lambda: runs("upload", "success"), what="upload to run after backup once resumed")
    assert daemon.stop() == 0


def test_a_chained_run_queued_before_a_pause_is_skipped_when_it_would_start(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    chained_tasks(env, "echo backed up\n", schedule="daily at 03:00")
    assert env.cli("run", "backup").returncode == 0  # no daemon: upload waits, queued
    env.cli("pause", "upload", check=True)  # the owner pauses it before the daemon is back
    daemon = start_daemon()
    env.db()
    wait_until(lambda: runs("upload", "skipped"), what="the queued upload to be recorded as skipped")
    assert daemon.stop() == 0
    (upload,) = runs("upload")
    assert "paused" in (upload.message or "") and upload.started_at is None


def test_next_tasks_and_status_show_the_chain_in_the_cli_and_json(env: Env) -> None:
    chained_tasks(env, "echo backed up\n", schedule="daily at 03:00")
    env.write_tasks(
        *env.tasks,
        {"task_id": "report", "script_path": "upload.sh", "schedule": "every 1h",
         "after": ["upload"], "after_failure": ["backup"]},
    )  # fmt: skip
    assert env.cli("next", "upload", check=True).stdout == "upload: after backup\n"
    assert env.cli("next", "alarm", check=True).stdout == "alarm: after backup fails\n"
    assert env.cli("next", "report", check=True).stdout.endswith(
        "(UTC)\nreport also runs after upload, or after backup fails\n"
    )
    listing = {item["task_id"]: item for item in env.cli_json("tasks")}
    assert (listing["upload"]["after"], listing["upload"]["after_failure"]) == (["backup"], [])
    assert (listing["report"]["after"], listing["report"]["after_failure"]) == (["upload"], ["backup"])
    assert listing["backup"]["after"] == [] and listing["upload"]["schedule"] == ""
    lines = env.cli("tasks", check=True).stdout.splitlines()
    assert any(line.startswith("upload: upload - after backup (UTC)") for line in lines), lines
    assert any("report - every 1h, or after upload, or after backup fails" in line for line in lines), lines
    status = {item["id"]: item for item in env.cli_json("status")["tasks"]}
    assert (status["alarm"]["after"], status["alarm"]["after_failure"]) == ([], ["backup"])
    assert status["alarm"]["next_run"] is None
    table = env.cli("status", check=True).stdout.splitlines()
    (alarm,) = [line for line in table if line.startswith("alarm ")]
    assert "after backup fails" in alarm, table


def test_signal_next_status_and_tasks_say_after_backup(env: Env, gateway, start_daemon) -> None:  # type: ignore[no-untyped-def]
    from tests.test_signal import signal_toml
    from tests.test_status_truth import ask

    chained_tasks(env, "echo backed up\n", schedule="daily at 03:00")
    env.write_tasks(*env.tasks, settings=signal_toml(gateway))
    start_daemon()
    wait_until(gateway.connected, what="the daemon's websocket")
    assert ask(gateway, "next:upload") == "upload: after backup"
    assert ask(gateway, "next:alarm") == "alarm: after backup fails"
    status = ask(gateway, "status").splitlines()
    assert any(line.endswith("upload · after backup") for line in status), status
    tasks = ask(gateway, "tasks").splitlines()
    assert any(line.endswith("upload: after backup") for line in tasks), tasks
