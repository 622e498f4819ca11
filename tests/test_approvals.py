"""Approvals from the phone (issue #13): an ``approve: true`` task's due occurrence waits for a yes.

A real daemon with Signal on the fake gateway; the answers are Signal messages from an admin;
what happened is read back from the store the daemon wrote.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moltbot import store
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway, text_frame
from tests.test_signal import OWNER, OWNER_UUID, bot, now_ms, replies, say

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)

__all__ = ["bot"]  # the Signal fixture (gateway: conftest.py)
Bot = Callable[..., DaemonProcess]
QUESTION = "🔐 patch-all is due (one-shot). Run it? yes / no"  # "in 1s" was about its registration


def patch_all(env: Env, **fields: object) -> dict[str, object]:
    env.script("patch-all.sh", "echo patched\n")
    return {
        "task_id": "patch-all",
        "script_path": "patch-all.sh",
        "schedule": "in 1s",
        "approve": True,
        **fields,
    }


def asked(gateway: FakeGateway) -> list[str]:
    return [text for text in gateway.texts_to(OWNER) if text.startswith("🔐")]


def test_a_due_occurrence_waits_for_yes_across_a_restart_and_runs_once(
    env: Env, gateway: FakeGateway, bot: Bot, start_daemon: Callable[..., DaemonProcess]
) -> None:
    daemon = bot(patch_all(env))
    assert wait_until(lambda: asked(gateway), what="the question") == [QUESTION]
    status = env.cli("status", check=True).stdout
    assert "#1 patch-all: waiting for approval since " in status
    (listed,) = env.cli_json("status")["questions"]
    assert (listed["origin"], listed["task_id"]) == ("approval", "patch-all")
    env.db()
    assert store.recent_runs("patch-all", 10) == []  # asked, not started
    assert daemon.stop() == 0
    start_daemon()
    wait_until(lambda: gateway.push(text_frame(OWNER_UUID, "yes", now_ms(), OWNER)), what="the yes delivered")
    wait_until(
        lambda: any("▶ patch-all started" in text for text in gateway.texts_to(OWNER)), what="the start"
    )
    wait_until(lambda: [r.status for r in store.recent_runs("patch-all", 10)] == ["success"], what="one run")
    (run,) = store.recent_runs("patch-all", 10)
    assert (run.trigger, run.attempt, run.scheduled_for is not None) == ("approved", 1, True)
    assert asked(gateway) == [QUESTION]  # the restart did not ask again
    say(gateway, "yes")  # a second yes finds nothing waiting
    assert [r.id for r in store.recent_runs("patch-all", 10)] == [run.id]


def test_no_records_the_occurrence_skipped_declined_by_whom(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(patch_all(env))
    wait_until(lambda: asked(gateway), what="the question")
    say(gateway, "No")
    env.db()
    (run,) = wait_until(lambda: store.recent_runs("patch-all", 10), what="the occurrence recorded")
    assert (run.status, run.message) == ("skipped", f"declined by {OWNER}")
    assert any(
        text.startswith("⏭ patch-all (due ") and "declined by you" in text for text in replies(gateway, 2)
    )


def test_no_answer_within_the_timeout_skips_it_and_says_what_to_do(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    bot(patch_all(env, approve_timeout="1s"))
    wait_until(lambda: asked(gateway), what="the question")
    (alert,) = wait_until(
        lambda: [text for text in gateway.texts_to(OWNER) if text.startswith("⏭")], what="the skip alert"
    )
    assert alert.endswith("skipped: no answer within 1s. Send run:patch-all to run it now.")
    env.db()
    (run,) = store.recent_runs("patch-all", 10)
    assert (run.status, run.message) == ("skipped", "no answer within 1s")
    say(gateway, "yes")  # too late: nothing runs
    replies(gateway, len(gateway.texts_to(OWNER)) + 1)
    assert [r.status for r in store.recent_runs("patch-all", 10)] == ["skipped"]


def test_run_from_an_admin_is_the_approval(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(patch_all(env))
    wait_until(lambda: asked(gateway), what="the question")
    say(gateway, "run patch-all")
    env.db()
    wait_until(lambda: [r.status for r in store.recent_runs("patch-all", 10)] == ["success"], what="the run")
    (run,) = store.recent_runs("patch-all", 10)
    assert run.trigger == "approved" and run.scheduled_for is not None
    assert "waiting for approval" not in env.cli("status", check=True).stdout
    answered = len(gateway.texts_to(OWNER))
    say(gateway, "yes")  # as a second admin would, after the first one's run:
    late = replies(gateway, answered + 1)[answered:]
    assert any(text.startswith("no question waits for your yes: answered already") for text in late), late


def test_moltbot_run_on_the_host_is_the_approval_too(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(patch_all(env))
    wait_until(lambda: asked(gateway), what="the question")
    result = env.cli_json("run", "patch-all")
    assert result["success"] is True
    env.db()
    (run,) = store.recent_runs("patch-all", 10)  # the occurrence, once: not a second, manual run
    assert (run.trigger, run.requested_by.startswith("cli:")) == ("approved", True)  # type: ignore[union-attr]
    assert env.cli_json("status")["questions"] == []


def test_a_yes_after_the_task_was_paused_does_not_run_it(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(patch_all(env))
    wait_until(lambda: asked(gateway), what="the question")
    env.cli("pause", "patch-all", check=True)
    say(gateway, "yes")
    env.db()
    (run,) = wait_until(lambda: store.recent_runs("patch-all", 10), what="the occurrence recorded")
    assert run.status == "skipped" and "paused" in (run.message or "")
    assert any(text.startswith("⏭ patch-all") and "resume:patch-all" in text for text in replies(gateway, 2))


def test_check_reports_approval_fields_with_file_line_and_field(env: Env) -> None:
    env.script("patch-all.sh", "echo patched\n")
    env.write_tasks(
        {"task_id": "a", "script_path": "patch-all.sh", "schedule": "daily at 04:00", "approve": "yes"},
        {"task_id": "b", "script_path": "patch-all.sh", "schedule": "daily at 04:00", "approve": True,
         "approve_timeout": "soon"},
        {"task_id": "c", "script_path": "patch-all.sh", "schedule": "daily at 04:00",
         "approve_timeout": "2h"},
        {"task_id": "d", "script_path": "patch-all.sh", "schedule": "daily at 04:00", "aprove": True},
    )  # fmt: skip
    result = env.cli("check")
    assert result.returncode == 3
    lines = result.stderr
    assert f"{env.home.tasks_json}:" in lines
    assert "tasks[0].approve (a): " in lines
    assert "tasks[1].approve_timeout (b): 'soon' is not a duration" in lines
    assert 'tasks[2].approve_timeout (c): has no effect without "approve": true' in lines
    assert "did you mean 'approve'?" in lines


def test_tasks_shows_that_a_task_asks_first(env: Env) -> None:
    env.write_tasks(patch_all(env, schedule="weekly on sun at 04:00", approve_timeout="30m"))
    (task,) = env.cli_json("tasks")
    assert (task["approve"], task["approve_timeout"]) == (True, "30m")
    assert "asks an admin first (waits 30m)" in env.cli("tasks", check=True).stdout
    assert "1 tasks OK" in env.cli("check", check=True).stdout


def test_a_failed_approved_occurrence_is_a_failure_of_the_schedule(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    # Review of #13: the approver was recorded as the run's requester, so its failure opened no
    # incident and told no other admin, as if someone had merely run it by hand.
    env.script("patch-all.sh", "exit 3\n")
    bot({"task_id": "patch-all", "script_path": "patch-all.sh", "schedule": "in 1s", "approve": True})
    wait_until(lambda: asked(gateway), what="the question")
    say(gateway, "yes")
    env.db()
    wait_until(lambda: [r.status for r in store.recent_runs("patch-all", 10)] == ["failed"], what="the run")
    (task,) = wait_until(lambda: env.cli_json("status")["tasks"], what="status")
    assert [incident["kind"] for incident in task["incidents"]] == ["failing"], task
