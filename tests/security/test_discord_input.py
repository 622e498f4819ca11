"""What Discord answers, and what a task message holds, is bounded before it is parsed: a test per boundary.

The REST client talks to the fake Discord on 127.0.0.1 gone wrong on the wire (or a
proxy in front of it): answers too big, nested too deep, of the wrong shape, with
rate-limit numbers that are none. Each is a ``DiscordError`` the callers already
handle (or a second's wait), never a crash of the caller. A task message nested
too deep is refused with its reason, and the channel's other tasks still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from moltbot.bounded_json import MAX_DEPTH
from moltbot.discord_tasks.client import MAX_ANSWER_BYTES, DiscordClient, DiscordError
from moltbot.discord_tasks.message import MAX_JSON_DEPTH
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_discord import BOT_ID, TOKEN, FakeDiscord
from tests.fake_gateway import nested_json
from tests.loopback import Reply
from tests.test_discord import HEARTBEAT, TASKS, contents, soon, task_message

READ = f"GET /channels/{TASKS}/messages"


@pytest.fixture
def client(discord: FakeDiscord) -> Iterator[DiscordClient]:
    client = DiscordClient(TOKEN, discord.api, timeout=5)
    yield client
    client.close()


@pytest.mark.parametrize("body", [b"[]", b'"slow down"', b"null", b"not json at all"])
def test_a_429_whose_body_is_no_object_waits_as_its_header_says(
    discord: FakeDiscord, client: DiscordClient, body: bytes
) -> None:
    discord.garbage[READ] = [Reply(429, body, headers={"Retry-After": "0.3"})]
    began = time.monotonic()
    assert client.messages(TASKS) == []
    first, second = [e.at for e in discord.log if e.method == "GET"]
    assert second - first >= 0.3 and time.monotonic() - began >= 0.3


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "soon"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "inf"},
    ],
)
def test_rate_limit_numbers_that_are_none_are_ignored(
    discord: FakeDiscord, client: DiscordClient, headers: dict[str, str]
) -> None:
    discord.garbage[READ] = [Reply(200, b"[]", headers=headers)]
    assert client.messages(TASKS) == []
    assert client.messages(TASKS) == []  # and the next request is not held back by them


@pytest.mark.parametrize("retry_after", [b"Infinity", b"NaN", b"-1", b'"soon"'])
def test_a_429_whose_retry_after_is_no_wait_falls_back_to_its_header(
    discord: FakeDiscord, client: DiscordClient, retry_after: bytes
) -> None:
    body = b'{"message": "You are being rate limited.", "retry_after": ' + retry_after + b', "global": "yes"}'
    discord.garbage[READ] = [Reply(429, body, headers={"Retry-After": "0.3"})]
    assert client.messages(TASKS) == []
    first, second = [e.at for e in discord.log if e.method == "GET"]
    assert 0.3 <= second - first < 5


def test_an_answer_over_its_size_bound_is_refused_unread(discord: FakeDiscord, client: DiscordClient) -> None:
    discord.garbage[READ] = [Reply(200, b"[" + b" " * MAX_ANSWER_BYTES + b"]")]
    with pytest.raises(DiscordError, match=f"answered more than {MAX_ANSWER_BYTES} bytes; refused unread"):
        client.messages(TASKS)
    assert client.messages(TASKS) == []  # the client goes on


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (nested_json(100_000).encode(), f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"message": "not a page"}', "is not a list of messages"),
        (b"<html>502 Bad Gateway</html>", "an answer that is not JSON"),
    ],
)
def test_an_answer_nested_too_deep_or_of_the_wrong_shape_is_a_discord_error(
    discord: FakeDiscord, client: DiscordClient, body: bytes, reason: str
) -> None:
    discord.garbage[READ] = [Reply(200, body)]
    with pytest.raises(DiscordError, match=reason):
        client.messages(TASKS)


def test_a_page_of_messages_without_ids_keeps_only_the_messages(
    discord: FakeDiscord, client: DiscordClient
) -> None:
    good = discord.post(TASKS, "hello")
    discord.garbage[READ] = [Reply(200, [None, 7, {"content": "no id"}, {"id": "1; DROP"}, good])]
    assert client.messages(TASKS) == [good]


def test_a_task_message_nested_too_deep_is_refused_and_the_channels_other_tasks_run(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # Deeper than the stdlib parser goes (RecursionError), and within the size bound.
    discord.post(TASKS, f"```json\n{nested_json(1300)}\n```", author_id=BOT_ID)
    discord.post(
        TASKS, task_message("tea", "in_1_minutes", soon(), True, action_type="self_task"), author_id=BOT_ID
    )
    env.write_tasks(settings=(
        f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
        f'heartbeat_log_channel_id = "{HEARTBEAT}"\npoll_seconds = 0.2\n'
    ))  # fmt: skip
    daemon = start_daemon(DISCORD_BOT_TOKEN=TOKEN)
    wait_until(lambda: "tea: time!" in contents(discord, HEARTBEAT), what="the good task to run")
    wait_until(lambda: f"refused unparsed: nested deeper than {MAX_JSON_DEPTH} levels" in daemon.output(),
               what="the refusal logged")  # fmt: skip
    assert "Traceback" not in daemon.output()
