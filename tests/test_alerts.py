"""Alerts are channel-neutral: whichever chat channel is configured delivers them, none means the log.

A real daemon; the fake Discord and the fake Ollama on 127.0.0.1. Nothing is
checked through moltbot's internals: what reached Discord, what the daemon
logged, and what ``moltbot outbox`` still lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_agents import FakeOllama
from tests.fake_discord import BOT_ID, TOKEN, FakeDiscord
from tests.fake_gateway import BOT, FakeGateway

TASKS = "700000000000000001"
OWNER = "900000000000000002"
BROKEN_TASK = '```json\n{"task_name": "x", "schedule": "fortnightly"}\n```'


def outbox(env: Env) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(env.cli("outbox", "--json", check=True).stdout)
    return listed


def test_with_signal_and_discord_an_alert_reaches_the_admins_on_both(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    gateway = FakeGateway(ping_seconds=1.0).start()
    try:
        env.script("broken.sh", "echo disk full >&2\nexit 3\n")
        env.write_tasks(
            {"task_id": "backup", "script_path": "broken.sh", "schedule": "every 1s"},
            settings=(
                f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["+4915100000001"]\n'
                'admins = ["+4915100000001", "+4915100000002"]\n\n'
                f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
                f'default_user_id = "{OWNER}"\npoll_seconds = 0.3\n'
            ),
        )
        start_daemon(DISCORD_BOT_TOKEN=TOKEN)
        for admin in ("+4915100000001", "+4915100000002"):
            wait_until(lambda admin=admin: gateway.texts_to(admin), what=f"the alert on Signal to {admin}")
        wait_until(lambda: OWNER in discord.dms, what="the alert on Discord")
        wait_until(lambda: discord.channels.get(discord.dms[OWNER]), what="the alert in the owner's DMs")
        for text in [*gateway.texts_to("+4915100000001"), discord.channels[discord.dms[OWNER]][0]["content"]]:
            assert "backup" in text and "disk full" in text
    finally:
        gateway.stop()


def test_with_discord_and_no_signal_alerts_reach_the_owner_on_discord(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    discord.post(TASKS, BROKEN_TASK, author_id=BOT_ID)  # reported to the admins: a task that cannot be read
    env.write_tasks(settings=(
        f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
        f'default_user_id = "{OWNER}"\npoll_seconds = 0.3\n'
    ))  # fmt: skip
    start_daemon(DISCORD_BOT_TOKEN=TOKEN)
    wait_until(lambda: OWNER in discord.dms, what="a DM opened for the owner")

    def dm() -> list[str]:
        return [message["content"] for message in discord.channels.get(discord.dms[OWNER], [])]

    wait_until(lambda: dm(), what="the alert in the owner's DMs")
    (alert,) = dm()
    assert alert.startswith("⚠ Discord Tasks Channel: task message") and "action_type is missing" in alert
    wait_until(lambda: outbox(env) == [], what="nothing left waiting in the outbox")


@pytest.fixture
def llm_task(env: Env) -> Iterator[Callable[[str, str], None]]:
    """Configure an llm task ``digest`` whose model answers ``answer``, delivered to ``deliver_to``."""
    ollama: FakeOllama | None = None

    def configure(answer: str, deliver_to: str) -> None:
        nonlocal ollama
        ollama = FakeOllama(answer=lambda body: {"role": "assistant", "content": answer}).start()
        env.write_tasks(
            {"task_id": "digest", "kind": "llm", "prompt": "Anything?", "schedule": "daily at 07:00",
             "deliver_to": deliver_to},
            settings=f'[ollama]\nhost = "{ollama.url}"\nmodel = "llama3.2"\n',
        )  # fmt: skip

    yield configure
    if ollama is not None:
        ollama.stop()


def test_with_no_chat_channel_an_alert_is_logged_once_and_not_kept(
    env: Env, llm_task: Callable[[str, str], None], start_daemon: Callable[..., DaemonProcess]
) -> None:
    llm_task("disks are fine", "signal:admins")  # the answer goes to the admins, as an alert
    daemon = start_daemon()
    assert env.cli("run", "digest", check=True).returncode == 0
    line = "alert (no chat channel can deliver it): disks are fine"
    wait_until(lambda: line in daemon.output(), what="the alert in the log")
    wait_until(lambda: outbox(env) == [], what="nothing left waiting in the outbox")
    assert daemon.output().count(line) == 1


def test_a_message_for_a_channel_not_configured_is_given_up_not_kept(
    env: Env, llm_task: Callable[[str, str], None], start_daemon: Callable[..., DaemonProcess]
) -> None:
    llm_task("all quiet", "discord:700000000000000002")
    start_daemon()
    assert env.cli("run", "digest", check=True).returncode == 0
    wait_until(lambda: [m["status"] for m in outbox(env)] == ["failed"], what="the message given up")
    (message,) = outbox(env)
    assert message["error"] == "no discord channel is configured" and message["text"] == "all quiet"
