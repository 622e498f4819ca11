"""Chains end to end: a real daemon, real scripts, real SQLite; `after` and `after_failure` runs."""

from __future__ import annotations

from moltbot import store
from moltbot.records import Run
from tests.conftest import Env, wait_until


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
