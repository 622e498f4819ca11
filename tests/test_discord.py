"""Discord Tasks-Channel tasks end to end: a real daemon, the fake Discord on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from moltbot import store
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_discord import BOT_ID, HUMAN_ID, TOKEN, FakeDiscord

TASKS = "700000000000000001"
TARGET = "700000000000000002"
HEARTBEAT = "700000000000000003"
# The person who posts most tasks here, and where they post: allowed (tests/security/ tries the rest).
TRUSTED = f'allowed_authors = ["{HUMAN_ID}"]\nallowed_targets = ["{TARGET}", "{HEARTBEAT}", "{HUMAN_ID}"]\n'


def task_message(name: str, schedule: str, next_run: datetime, one_time: bool, **fields: object) -> str:
    data = {
        "task_name": name,
        "description": "",
        "schedule": schedule,
        "action_type": "channel_post",
        "action_target": TARGET,
        "action_template": f"{name}: time!",
        "one_time": one_time,
        "next_run": next_run.isoformat().replace("+00:00", "Z"),
        "active": True,
        **fields,
    }
    header = f"📋 **Task: {name}**\n└─ Action: channel_post → {TARGET}"
    return f"{header}\n\n```json\n{json.dumps(data, indent=2)}\n```"


@pytest.fixture
def bot(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> Callable[..., DaemonProcess]:
    def start() -> DaemonProcess:
        env.write_tasks(settings=(
            f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
            f'heartbeat_log_channel_id = "{HEARTBEAT}"\npoll_seconds = 0.3\n{TRUSTED}'
        ))  # fmt: skip
        return start_daemon(DISCORD_BOT_TOKEN=TOKEN)

    return start


def soon(seconds: float = 1.5) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def contents(discord: FakeDiscord, channel: str) -> list[str]:
    return [m["content"] for m in discord.channels.get(channel, [])]


def test_a_one_time_task_posts_its_template_once_and_its_message_is_deleted(
    env: Env, discord: FakeDiscord, bot
) -> None:  # type: ignore[no-untyped-def]
    message = discord.post(TASKS, task_message("tea", "in_1_minutes", soon(), one_time=True))
    discord.post(TASKS, "chatter: not a task")
    daemon = bot()
    wait_until(lambda: contents(discord, TARGET) == ["tea: time!"], what="the reminder posted")
    wait_until(
        lambda: message["id"] not in [m["id"] for m in discord.channels[TASKS]], what="the task deleted"
    )
    assert contents(discord, TASKS) == ["chatter: not a task"]
    env.db()
    (run,) = store.recent_runs(f"discord-{message['id']}", 5)
    assert run.status == "success"
    assert discord.channels[TARGET][0]["author"]["id"] == BOT_ID
    assert daemon.process.poll() is None


def test_a_recurring_task_is_reposted_with_its_next_run_when_it_may_not_be_edited(
    env: Env, discord: FakeDiscord, bot
) -> None:  # type: ignore[no-untyped-def]
    first = soon()
    message = discord.post(
        TASKS, task_message("stretch", "daily", first, one_time=False)
    )  # a human's message
    bot()
    wait_until(lambda: contents(discord, TARGET) == ["stretch: time!"], what="the first occurrence")
    wait_until(lambda: message["id"] not in [m["id"] for m in discord.channels[TASKS]], timeout=20,
               what="the human's message replaced")  # fmt: skip
    (repost,) = discord.channels[TASKS]
    assert repost["author"]["id"] == BOT_ID
    data = json.loads(repost["content"].split("```json\n")[1].split("```")[0])
    following = datetime.fromisoformat(data["next_run"].replace("Z", "+00:00"))
    assert following == first.replace(second=0, microsecond=0) + timedelta(days=1) or following > first
    env.db()
    wait_until(lambda: store.get_task(f"discord-{repost['id']}") is not None, what="the repost registered")
    assert store.get_task(f"discord-{repost['id']}").next_run == following
    assert contents(discord, TARGET) == ["stretch: time!"]  # the occurrence ran once


def test_a_broken_task_is_reported_once_and_never_crashes_the_sync(
    env: Env, discord: FakeDiscord, bot
) -> None:  # type: ignore[no-untyped-def]
    discord.post(TASKS, '```json\n{"task_name": "x", "schedule": "fortnightly"}\n```')
    discord.post(TASKS, task_message("ok", "in_1_minutes", soon(), one_time=True))
    daemon = bot()
    wait_until(lambda: contents(discord, TARGET) == ["ok: time!"], what="the good task ran anyway")
    assert daemon.output().count("action_type is missing") == 1  # not every poll


def test_a_task_the_bot_wrote_is_edited_in_place_and_a_restart_does_not_run_it_twice(
    env: Env, discord: FakeDiscord, bot
) -> None:  # type: ignore[no-untyped-def]
    first = soon()
    message = discord.post(
        TASKS, task_message("water", "every_2_hours", first, one_time=False), author_id=BOT_ID
    )
    discord.fail_edits = True  # the message stays stale: it still says the occurrence that ran
    daemon = bot()
    wait_until(lambda: contents(discord, TARGET) == ["water: time!"], what="the first occurrence")
    env.db()
    following = first + timedelta(hours=2)
    wait_until(lambda: store.get_task(f"discord-{message['id']}").next_run == following, what="the claim")
    daemon.stop()
    before = len(discord.log)
    bot()  # reads the stale message again: the occurrence that ran is not run again
    reads = lambda: [e for e in discord.log[before:] if e.method == "GET"]  # noqa: E731
    wait_until(lambda: len(reads()) >= 2, what="the restarted daemon to read the channel twice")
    assert contents(discord, TARGET) == ["water: time!"]
    discord.fail_edits = False
    stamp = following.isoformat().replace("+00:00", "Z")
    wait_until(lambda: stamp in discord.channels[TASKS][0]["content"], what="the message edited in place")
    assert [m["id"] for m in discord.channels[TASKS]] == [message["id"]]  # edited, not reposted
    assert "(next run: " in discord.channels[TASKS][0]["content"]  # the header follows the JSON
    assert store.get_task(f"discord-{message['id']}").next_run == following
    assert contents(discord, TARGET) == ["water: time!"]  # once


def test_with_a_letta_agent_its_answer_is_posted_one_request_at_a_time(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    from tests.fake_agents import FakeLetta

    letta = FakeLetta(password="letta-key", answer=lambda text: "🌱 " + text.splitlines()[2]).start()
    try:
        discord.post(TASKS, task_message("plants", "in_1_minutes", soon(), one_time=True,
                                         action_type="self_task", action_target=None))  # fmt: skip
        env.write_tasks(settings=(
            f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
            f'heartbeat_log_channel_id = "{HEARTBEAT}"\npoll_seconds = 0.3\n{TRUSTED}\n'
            f'[letta]\nbase_url = "{letta.url}"\n'
        ))  # fmt: skip
        start_daemon(DISCORD_BOT_TOKEN=TOKEN, LETTA_API_KEY="letta-key", LETTA_AGENT_ID=letta.agent_id)
        wait_until(lambda: contents(discord, HEARTBEAT) == ["🌱 Task: plants"], what="the agent's answer")
        (request,) = letta.requests
        assert request["messages"][0]["content"].startswith("[⏰ SCHEDULED TASK TRIGGERED]\n\nTask: plants")
    finally:
        letta.stop()


def test_a_refused_post_pauses_its_task_with_the_reason(env: Env, discord: FakeDiscord, bot) -> None:  # type: ignore[no-untyped-def]
    discord.forbidden_channels.add(TARGET)
    message = discord.post(TASKS, task_message("nag", "every_1_minutes", soon(), one_time=False))
    bot()
    env.db()
    task_id = f"discord-{message['id']}"

    def paused() -> bool:
        task = store.get_task(task_id)
        return task is not None and task.paused_by == "discord"

    wait_until(paused, what="the task paused")
    events = store.recent_events(task_id, 10)
    assert any("Discord refused its message" in e.message and "50013" in e.message for e in events)
    assert [p for p in discord.log if p.method == "POST" and TARGET in p.path] and contents(
        discord, TARGET
    ) == []


def test_a_429_storm_is_honoured_by_the_daemon(env: Env, discord: FakeDiscord, bot) -> None:  # type: ignore[no-untyped-def]
    read = discord.bucket(f"GET /channels/{TASKS}/messages")
    read.storm, read.storm_retry_after = 4, 0.3
    post = discord.bucket(f"POST /channels/{TARGET}/messages")
    post.storm, post.storm_retry_after, post.storm_global = 3, 0.4, True
    discord.post(TASKS, task_message("storm", "in_1_minutes", soon(2.5), one_time=True))
    bot()
    wait_until(lambda: contents(discord, TARGET) == ["storm: time!"], what="the post after the storm")
    assert discord.early_requests == []  # not one request before a 429 allowed it
    assert len([e for e in discord.log if e.method == "POST" and TARGET in e.path]) == 4


def test_a_reminder_reaches_the_users_dm_from_deep_in_a_busy_channel_and_inactive_tasks_wait(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    user = "900000000000000002"
    discord.bucket(f"GET /channels/{TASKS}/messages").limit = 50
    discord.post(TASKS, task_message("call mum", "in_1_minutes", soon(2), one_time=True,
                                     action_type="user_reminder", action_target=None))  # fmt: skip
    discord.post(TASKS, task_message("dormant", "in_1_minutes", soon(2), one_time=True, active=False))
    for index in range(150):  # the tasks are far beyond the newest 100 messages
        discord.post(TASKS, f"chatter {index}")
    env.write_tasks(settings=(
        f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
        f'heartbeat_log_channel_id = "{HEARTBEAT}"\ndefault_user_id = "{user}"\npoll_seconds = 0.3\n{TRUSTED}'
    ))  # fmt: skip
    start_daemon(DISCORD_BOT_TOKEN=TOKEN)
    wait_until(lambda: user in discord.dms, what="a DM opened for the user")
    wait_until(
        lambda: contents(discord, discord.dms[user]) == ["call mum: time!"], what="the reminder in the DM"
    )
    assert contents(discord, TARGET) == []  # the inactive task did not run
    assert any("dormant" in text for text in contents(discord, TASKS))  # and its message stays


def test_a_refused_token_stops_discord_work_with_one_log_line_and_an_alert(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    discord.post(TASKS, task_message("x", "in_1_minutes", soon(), one_time=True))
    env.write_tasks(settings=(
        f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\npoll_seconds = 0.2\n'
        'default_user_id = "900000000000000002"\n'  # Discord would take alerts, if it took anything
    ))  # fmt: skip
    daemon = start_daemon(DISCORD_BOT_TOKEN="revoked-token")
    env.db()
    # No chat channel can take the alert (Signal is not configured, Discord refuses us): the log has it.
    wait_until(lambda: "alert (no chat channel can deliver it): ⚠ Discord refused the bot token"
               in daemon.output(), what="the admin alert, in the log")  # fmt: skip
    assert store.pending_outbox() == []  # and it does not wait forever
    requests = len(discord.log)
    wait_until(lambda: daemon.output().count("Discord work stops") == 1, what="one clear log line")
    assert len(discord.log) == requests == 1  # nothing more was sent after the 401
    assert daemon.process.poll() is None  # the daemon itself carries on
