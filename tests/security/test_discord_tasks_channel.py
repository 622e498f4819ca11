"""The Discord Tasks Channel is a control surface: one test per attack on it (issue #12, section 2).

A real daemon and the real CLI; Discord is the fake on 127.0.0.1. What is checked is
what an attacker would reach: posts in other channels, DMs, runs, the outbox, the
owner's alerts, what ``moltbot tasks`` shows and which task ``pause`` takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.commands import handle
from moltbot import store
from moltbot.config.spec import DISCORD_PREFIX
from moltbot.core import Core, Request
from moltbot.discord_tasks.message import parse_message
from moltbot.discord_tasks.tasks import to_spec
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_discord import BOT_ID, HUMAN_ID, TOKEN, FakeDiscord
from tests.test_commands import WATCHER
from tests.test_discord import HEARTBEAT, TARGET, TASKS, contents, soon, task_message
from tests.test_discord_tasks import BERLIN

OWNER = "900000000000000005"  # default_user_id: the admins' DMs on Discord
STRANGER = HUMAN_ID  # the fake's default poster, in no allowed_authors here
VICTIM = "900000000000000777"  # someone a stranger would have moltbot DM
ELSEWHERE = "700000000000000009"  # a channel no task may post to
Start = Callable[..., DaemonProcess]


def start(env: Env, discord: FakeDiscord, start_daemon: Start, extra: str = "", *tasks: Any) -> DaemonProcess:
    env.write_tasks(*tasks, settings=(
        f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
        f'heartbeat_log_channel_id = "{HEARTBEAT}"\ndefault_user_id = "{OWNER}"\npoll_seconds = 0.2\n{extra}'
    ))  # fmt: skip
    return start_daemon(DISCORD_BOT_TOKEN=TOKEN)


def alerts(discord: FakeDiscord) -> list[str]:
    return contents(discord, discord.dms[OWNER]) if OWNER in discord.dms else []


def reads(discord: FakeDiscord) -> int:
    return len([e for e in discord.log if e.method == "GET" and e.path.endswith("/messages")])


def polls(discord: FakeDiscord, more: int) -> None:
    """Wait for ``more`` reads of the channel: whatever a pass would do, it has done by then."""
    done = reads(discord)
    wait_until(lambda: reads(discord) >= done + more, what=f"{more} more reads of the Tasks Channel")


def stranger_task(name: str = "spam") -> str:
    return task_message(name, "in_1_minutes", soon(), True, action_target=ELSEWHERE)


def test_a_strangers_tasks_never_run_and_the_admins_hear_of_them_once(
    env: Env, discord: FakeDiscord, start_daemon: Start
) -> None:
    dm = discord.post(TASKS, task_message("pwn", "in_1_minutes", soon(), True, action_type="user_reminder",
                                          action_target=VICTIM))  # fmt: skip
    discord.post(TASKS, stranger_task())
    discord.post(TASKS, task_message("tea", "in_1_minutes", soon(), True, action_type="self_task",
                                     action_target=None), author_id=BOT_ID)  # fmt: skip
    daemon = start(env, discord, start_daemon)
    wait_until(lambda: contents(discord, HEARTBEAT) == ["tea: time!"], what="the bot's own task to run")
    wait_until(lambda: alerts(discord), what="the admins told of the stranger")
    polls(discord, 5)
    assert VICTIM not in discord.dms and contents(discord, ELSEWHERE) == []
    (alert,) = alerts(discord)  # once, not once per poll
    assert f"ignored 2 message(s) from user {STRANGER}, not in [discord] allowed_authors" in alert
    assert "pwn" not in alert and "spam" not in alert  # nothing of theirs was read
    env.db()
    assert store.get_task(f"discord-{dm['id']}") is None
    assert daemon.stop() == 0
    start(env, discord, start_daemon)  # a restart does not tell it again
    polls(discord, 3)
    assert len(alerts(discord)) == 1


def test_the_same_stranger_is_told_again_only_a_day_later(
    env: Env, discord: FakeDiscord, start_daemon: Start
) -> None:
    discord.post(TASKS, stranger_task())
    env.db()

    def told(hours_ago: float) -> None:
        when = datetime.now(UTC) - timedelta(hours=hours_ago)
        store.set_meta(f"discord_stranger:{STRANGER}", when.isoformat())

    told(23)
    daemon = start(env, discord, start_daemon)
    polls(discord, 3)
    assert alerts(discord) == []
    assert daemon.stop() == 0
    told(25)
    start(env, discord, start_daemon)
    wait_until(lambda: alerts(discord), what="the stranger told again, a day later")


def test_a_task_posts_only_to_allowed_targets_and_is_refused_with_the_reason_else(
    env: Env, discord: FakeDiscord, start_daemon: Start
) -> None:
    def bots(name: str, **fields: object) -> None:
        discord.post(TASKS, task_message(name, "in_1_minutes", soon(), True, **fields), author_id=BOT_ID)

    bots("fine")  # to TARGET
    bots("leak", action_target=ELSEWHERE)
    bots("dm", action_type="user_reminder", action_target=VICTIM)
    bots("owner", action_type="user_reminder", action_target=None)  # default_user_id: not listed below
    bots("worm", action_target=TASKS)  # what the bot posts there would be a task of its own
    start(env, discord, start_daemon, f'allowed_targets = ["{TARGET}", "{HEARTBEAT}"]\n')
    wait_until(lambda: contents(discord, TARGET) == ["fine: time!"], what="the allowed task's post")
    wait_until(lambda: alerts(discord), what="the refusals told")
    polls(discord, 3)
    assert contents(discord, ELSEWHERE) == [] and "worm: time!" not in contents(discord, TASKS)
    assert VICTIM not in discord.dms and alerts(discord)[1:] == []  # the owner's DM: one alert, no task
    (alert,) = alerts(discord)
    for reason in (
        f"channel {ELSEWHERE} is not in [discord] allowed_targets",
        f"user {VICTIM} is not in [discord] allowed_targets",
        f"user {OWNER} is not in [discord] allowed_targets",
        f"channel {TASKS} is the Tasks Channel: tasks may not post there",
    ):
        assert reason in alert


def test_a_flood_of_secondly_tasks_is_refused_capped_and_never_starves_the_owners_task(
    env: Env, discord: FakeDiscord, start_daemon: Start
) -> None:
    env.script("tick.sh", "true\n")
    flood = [
        discord.post(
            TASKS,
            task_message(f"flood {i}", "secondly", soon(1), False, action_type="self_task"),
            author_id=BOT_ID,
        )
        for i in range(40)
    ]
    later = datetime.now(UTC) + timedelta(hours=1)
    hourly = [
        discord.post(
            TASKS,
            task_message(f"hourly {i}", "hourly", later, False, action_type="self_task"),
            author_id=BOT_ID,
        )
        for i in range(3)
    ]
    start(env, discord, start_daemon, "max_tasks = 2\n",
          {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"})  # fmt: skip
    wait_until(lambda: alerts(discord), what="the refusals told")
    env.db()
    ticks = len(store.recent_runs("tick", 1000))
    wait_until(lambda: len(store.recent_runs("tick", 1000)) >= ticks + 4, timeout=10,
               what="the owner's every-second task to keep its pace")  # fmt: skip
    polls(discord, 3)
    ran = [run for m in flood + hourly for run in store.recent_runs(f"discord-{m['id']}", 5)]
    assert ran == [] and contents(discord, HEARTBEAT) == []
    discord_tasks = [t for t in store.list_tasks() if t.task_id.startswith(DISCORD_PREFIX)]
    assert sorted(t.task_id for t in discord_tasks) == [
        f"discord-{m['id']}" for m in hourly[:2]
    ]  # the oldest
    assert {t.priority for t in discord_tasks} == {10}  # after the owner's, when workers are short
    (alert,) = alerts(discord)  # one alert for the whole flood: the outbox does not grow with it
    assert "it would run every 1 s, more often than [discord] min_interval_seconds (60)" in alert
    assert alert.count("\n• ") == 5 and "… and 36 more (in the daemon's log)" in alert  # 40 + 1 over the cap
    assert len(store.pending_outbox()) == 0


def sync_from_discord(core: Core, *messages: tuple[str, dict[str, Any]]) -> None:
    """Discord tasks into the store as the daemon's sync puts them there."""
    specs = []
    for message_id, fields in messages:
        task = parse_message(
            message_id, task_message("x", "hourly", soon(3600), False, **fields), BOT_ID, BERLIN
        )
        assert task is not None
        specs.append(to_spec(task, BERLIN))
    core.sync(specs, source="discord")


def test_a_discord_task_cannot_take_a_config_tasks_name_or_id_and_an_ambiguous_name_is_refused(
    env: Env,
) -> None:
    env.script("x.sh", "true\n")
    env.write_tasks(
        {
            "task_id": "nightly",
            "name": "backup",
            "script_path": "x.sh",
            "schedule": "daily at 03:00",
            "priority": 10,
        },
        {"task_id": "job", "script_path": "x.sh", "schedule": "daily at 04:00", "priority": 10},
    )  # the Discord tasks' priority: precedence does not hang on the order tasks are listed in
    core = Core(env.home)
    core.open()
    core.sync(core.load_specs())
    sync_from_discord(core, ("1001", {"task_name": "backup"}), ("1002", {"task_name": "Job"}),
                      ("1003", {"task_name": "water"}), ("1004", {"task_name": "Water"}))  # fmt: skip
    for typed, taken in (("backup", "nightly"), ("BACKUP", "nightly"), ("Job", "job"), ("JOB", "job"),
                         ("discord-1002", "discord-1002")):  # fmt: skip
        result = env.cli("pause", typed)
        assert result.stdout.startswith(f"Task {taken} paused"), (typed, result.stdout, result.stderr)
        env.cli("resume", taken, check=True)
    result = env.cli("pause", "water")
    assert result.returncode == 2
    assert "'water' names 2 tasks: discord-1003, discord-1004; use the id" in result.stderr
    assert not any(t.paused_by for t in core.tasks())
    # Chat resolves through the same core: the same answers.
    reply = handle(core, Request("pause:water", "admin", "owner", WATCHER))
    assert "'water' names 2 tasks: discord-1003, discord-1004; use the id" in reply.text
    handle(core, Request("pause:Backup", "admin", "owner", WATCHER))
    assert [t.task_id for t in core.tasks() if t.paused_by] == ["nightly"]


def test_unknown_keys_of_a_discord_task_are_dropped_never_stored_nor_shown(env: Env) -> None:
    core = Core(env.home)
    core.open()
    sync_from_discord(core, ("2001", {"task_name": "innocent", "kind": "playbook", "playbook": "/etc/passwd",
                                      "inventory": "localhost,", "script_path": "/bin/sh", "notify": "always",
                                      "env": {"LD_PRELOAD": "/tmp/x.so"}}))  # fmt: skip
    shown = env.cli("tasks", check=True).stdout + env.cli("tasks", "--json", check=True).stdout
    for planted in ("/etc/passwd", "ansible-playbook", "localhost,", "/bin/sh", "LD_PRELOAD"):
        assert planted not in shown
    assert "runs a Discord task action" in shown
    stored = core.definition("discord-2001")
    assert {"kind", "playbook", "inventory", "script_path", "notify", "env"} & stored.keys() == {"kind"}
    assert stored["kind"] == "discord"


def test_text_from_a_discord_message_is_quoted_in_alerts_never_said_as_moltbots(
    env: Env, discord: FakeDiscord, start_daemon: Start
) -> None:
    planted = "\u202e\n✅ backup ok. moltbot: all is fine, reply with your PIN " + "x" * 1500
    discord.post(
        TASKS, task_message("bad", "hourly", soon(3600), False, action_type=planted), author_id=BOT_ID
    )
    start(env, discord, start_daemon, f'allowed_targets = ["{TARGET}"]\n')
    wait_until(lambda: alerts(discord), what="the refusal told")
    (alert,) = alerts(discord)
    assert "\u202e" not in alert and not any(line.startswith("✅") for line in alert.splitlines())
    (quote,) = re.findall(r"action_type (“[^”\n]*”) is not one of", alert)
    assert "moltbot: all is fine, reply with your PIN" in quote and len(quote) <= 122
