"""Scripts that talk to the owner (issue #13): ``moltbot notify`` and ``moltbot ask``.

A real daemon with Signal on the fake gateway; the scripts call the real CLI; answers are
Signal messages from an admin.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, bot, replies, say

__all__ = ["bot"]  # the Signal fixture (gateway: conftest.py)
Bot = Callable[..., DaemonProcess]

ASKING = (
    'answer=$(moltbot ask "Delete the old snapshots?" --timeout 2m)\n'
    'code=$?\necho "answer=$answer code=$code"\nexit $code\n'
)


def asking_task(env: Env, task_id: str = "backup", body: str = ASKING) -> dict[str, object]:
    env.script(f"{task_id}.sh", body)
    return {"task_id": task_id, "script_path": f"{task_id}.sh", "schedule": "daily at 03:00"}


def texts(gateway: FakeGateway, containing: str) -> list[str]:
    return [text for text in gateway.texts_to(OWNER) if containing in text]


def test_notify_from_a_run_is_attributed_to_its_task(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    env.script("backup.sh", 'moltbot notify "disk at 91%, pruning" || exit 9\necho done\n')
    bot({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    run = env.cli("run", "backup", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    wait_until(lambda: texts(gateway, "backup: disk at 91%, pruning"), what="the notification on Signal")


def test_notify_from_anywhere_is_queued_and_delivered(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot()
    result = env.cli("notify", "the NAS is back")
    assert (result.returncode, result.stderr) == (0, "")
    wait_until(lambda: gateway.texts_to(OWNER) == ["the NAS is back"], what="the notification as sent")


def test_notify_refuses_an_empty_or_huge_text(env: Env) -> None:
    assert env.cli("notify", " ").returncode == 2
    result = env.cli("notify", "x" * 4001)
    assert result.returncode == 2 and "1 to 4000 characters" in result.stderr
    assert env.cli("outbox", "--json", check=True).stdout.strip() == "[]"


def start_run(env: Env, task: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        env.cli_argv("run", task, "--json"), env=env.environ, stdout=subprocess.PIPE, text=True
    )


def asking(env: Env, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(env.cli_argv("ask", *argv), env=env.environ, stdout=subprocess.PIPE, text=True)


def test_ask_in_a_run_waits_for_yes_and_status_shows_it(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(asking_task(env))
    run = start_run(env, "backup")
    (question,) = wait_until(lambda: texts(gateway, "Delete the old snapshots?"), what="the question")
    assert question.startswith("❓ backup: Delete the old snapshots? yes / no (until ")
    status = env.cli("status", check=True).stdout
    assert "#1 backup: running, waiting for an answer since " in status
    (task,) = env.cli_json("status")["tasks"]
    assert task["waiting_since"] is not None
    (listed,) = env.cli_json("status")["questions"]
    assert (listed["origin"], listed["task_id"], listed["choices"]) == ("ask", "backup", ["yes", "no"])
    say(gateway, "yes")
    out, _ = run.communicate(timeout=30)
    assert run.returncode == 0 and "answer=yes code=0" in out
    assert "✓ #1: yes" in replies(gateway, 2)
    assert "waiting for an answer" not in env.cli("status", check=True).stdout


def test_ask_exits_1_on_another_answer_and_its_choices_are_its_own(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    bot()
    ask = subprocess.Popen(
        env.cli_argv("ask", "Which snapshot set?", "--choices", "Keep,delete,later"),
        env=env.environ, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until(lambda: texts(gateway, "❓ Which snapshot set? keep / delete / later"), what="the question")
    say(gateway, "maybe")  # not a choice: not an answer (it gets the help)
    say(gateway, "Later")
    out, _ = ask.communicate(timeout=30)
    assert (ask.returncode, out) == (1, "later\n")


def test_ask_without_an_answer_exits_4_and_a_late_answer_finds_it_closed(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    bot()
    result = env.cli("ask", "Reboot now?", "--timeout", "1s")
    assert result.returncode == 4 and "no answer within 1s" in result.stderr
    say(gateway, "yes 1")
    assert any("no open question #1" in text for text in replies(gateway, 2))


def test_several_open_questions_are_numbered_and_answered_by_number(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    bot()
    first = subprocess.Popen(
        env.cli_argv("ask", "First?"), env=env.environ, stdout=subprocess.PIPE, text=True
    )
    wait_until(lambda: texts(gateway, "First?"), what="the first question")
    second = subprocess.Popen(
        env.cli_argv("ask", "Second?"), env=env.environ, stdout=subprocess.PIPE, text=True
    )
    (numbered,) = wait_until(lambda: texts(gateway, "Second?"), what="the second question")
    assert numbered.startswith("#2 ❓ Second? answer yes 2 / no 2")
    say(gateway, "yes 2")
    assert second.communicate(timeout=30)[0] == "yes\n" and second.returncode == 0
    say(gateway, "no")  # the oldest open one
    assert first.communicate(timeout=30)[0] == "no\n" and first.returncode == 1


def test_ask_usage_errors_exit_2(env: Env) -> None:
    assert env.cli("ask", "x?", "--timeout", "soon").returncode == 2
    assert env.cli("ask", "x?", "--choices", "yes").returncode == 2
    assert env.cli("ask", "x?", "--choices", "yes,2").returncode == 2


def test_the_bundled_example_asks_before_deleting(
    env: Env, gateway: FakeGateway, bot: Bot, tmp_path: Path
) -> None:
    snapshots = tmp_path / "snapshots"
    (snapshots / "2026-01-01").mkdir(parents=True)
    os.utime(snapshots / "2026-01-01", (0, 0))  # older than 30 days
    example = Path(__file__).parent.parent / "tasks" / "prune-snapshots.sh"
    env.script("prune-snapshots.sh", example.read_text())
    bot({"task_id": "prune", "script_path": "prune-snapshots.sh", "schedule": "daily at 05:00",
         "env": {"SNAPSHOT_DIR": str(snapshots)}})  # fmt: skip
    run = start_run(env, "prune")
    wait_until(
        lambda: texts(gateway, "❓ prune: Delete 1 snapshot(s) older than 30 days"), what="the question"
    )
    say(gateway, "yes")
    out, _ = run.communicate(timeout=30)
    assert run.returncode == 0, out
    assert list(snapshots.iterdir()) == []
    wait_until(lambda: texts(gateway, "prune: deleted 1 old snapshot(s)"), what="the notification")
