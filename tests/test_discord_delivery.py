"""The core's outbox worker with Discord's channel, in-process against the fake Discord (real HTTP).

What each of Discord's answers means for a message: sent, tried again, or given up (and then,
for missing access, the task that sent it paused and the admins told).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.config.integrations import DiscordSettings
from moltbot.core import Core, Watcher
from moltbot.core.outbox import OutboxWorker
from moltbot.discord_tasks.client import DiscordClient
from moltbot.discord_tasks.delivery import DiscordChannel
from tests.conftest import Env
from tests.fake_discord import TOKEN, FakeDiscord

TASKS = "700000000000000001"
TARGET = "700000000000000002"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def core(env: Env) -> Core:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    opened = Core(env.home, FakeClock(NOW))
    opened.open()
    opened.sync(opened.load_specs())
    return opened


@pytest.fixture
def worker(core: Core, discord: FakeDiscord) -> Iterator[OutboxWorker]:
    client = DiscordClient(TOKEN, discord.api, timeout=5)
    yield OutboxWorker(
        DiscordChannel(core, client, DiscordSettings(api_base=discord.api, tasks_channel_id=TASKS)),
        core.clock,
        core.health,
    )
    client.close()


def posts_to(discord: FakeDiscord, channel: str) -> int:
    return len([entry for entry in discord.log if entry.method == "POST" and channel in entry.path])


def test_a_refused_post_is_given_up_once_and_pauses_the_task_that_sent_it(
    core: Core, discord: FakeDiscord, worker: OutboxWorker
) -> None:
    discord.forbidden_channels.add(TARGET)
    run = core.request_run("job")
    core.post(Watcher("discord", TARGET), "water the plants", run_id=run.id)
    worker.deliver_due()
    worker.deliver_due()
    (message,) = [m for m in store.pending_outbox() if m.channel == "discord"]
    assert message.status == "failed" and "50013" in (message.last_error or "")
    assert posts_to(discord, TARGET) == 1  # refused: never asked again
    assert core.resolve("job").paused_by == "discord"
    (alert,) = [m for m in store.pending_outbox() if m.channel == store.ALERTS]
    assert alert.text is not None and alert.text.startswith("⏸ job paused: Discord refused its message")


def test_a_refusal_for_a_task_no_longer_defined_still_tells_the_admins(
    core: Core, discord: FakeDiscord, worker: OutboxWorker
) -> None:
    discord.forbidden_channels.add(TARGET)
    run = core.request_run("job")
    core.sync([])  # the task is removed from tasks.json meanwhile
    core.post(Watcher("discord", TARGET), "water the plants", run_id=run.id)
    worker.deliver_due()  # no exception: the worker goes on
    assert [m.status for m in store.pending_outbox() if m.channel == "discord"] == ["failed"]
    assert [m.channel for m in store.pending_outbox() if m.status == "pending"] == [store.ALERTS]


def test_an_invalid_message_is_given_up_not_retried_forever(
    core: Core, discord: FakeDiscord, worker: OutboxWorker
) -> None:
    core.post(Watcher("discord", TARGET), "")  # Discord answers 400 (50035) to an empty message
    worker.deliver_due()
    (message,) = store.pending_outbox()
    assert message.status == "failed" and "50035" in (message.last_error or "")
    assert posts_to(discord, TARGET) == 1
    assert core.resolve("job").paused_by is None  # nothing to pause for a bad message


def test_a_server_error_is_tried_again(core: Core, discord: FakeDiscord, worker: OutboxWorker) -> None:
    bucket = discord.bucket(f"POST /channels/{TARGET}/messages")
    bucket.storm, bucket.storm_retry_after = 10, 0.01  # 429s beyond the client's patience
    core.post(Watcher("discord", TARGET), "hello")
    worker.deliver_due()
    (message,) = store.pending_outbox()
    assert message.status == "pending" and message.attempts == 1  # postponed, not given up
