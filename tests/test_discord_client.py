"""The Discord REST client against the fake Discord on 127.0.0.1 (real HTTP, real waits)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from moltbot.discord_tasks.client import (
    DiscordClient,
    DiscordForbidden,
    DiscordUnauthorized,
    route_key,
)
from tests.fake_discord import BOT_ID, TOKEN, FakeDiscord

CHANNEL = "700000000000000001"


@pytest.fixture
def client(discord: FakeDiscord) -> Iterator[DiscordClient]:
    client = DiscordClient(TOKEN, discord.api, timeout=5)
    yield client
    client.close()


def test_routes_keep_the_top_level_resource_and_blank_the_rest() -> None:
    assert route_key("GET", f"/channels/{CHANNEL}/messages") == f"GET /channels/{CHANNEL}/messages"
    assert route_key("PATCH", f"/channels/{CHANNEL}/messages/1234567890") == (
        f"PATCH /channels/{CHANNEL}/messages/{{id}}"
    )


def test_the_whole_channel_is_read_page_by_page(discord: FakeDiscord, client: DiscordClient) -> None:
    discord.bucket(f"GET /channels/{CHANNEL}/messages").limit = 100
    for index in range(250):
        discord.post(CHANNEL, f"message {index}")
    messages = client.all_messages(CHANNEL)
    assert len(messages) == 250 and messages[0]["content"] == "message 249"
    assert len({m["id"] for m in messages}) == 250
    assert len([e for e in discord.log if e.method == "GET"]) == 3


def test_create_edit_delete_and_dm(discord: FakeDiscord, client: DiscordClient) -> None:
    created = client.create_message(CHANNEL, "hello", nonce="task-1@2026")
    assert created["author"]["id"] == BOT_ID
    assert client.edit_message(CHANNEL, created["id"], "edited")["content"] == "edited"
    human = discord.post(CHANNEL, "a human's task")
    with pytest.raises(DiscordForbidden) as caught:
        client.edit_message(CHANNEL, human["id"], "mine now")
    assert caught.value.code == 50005  # only the author may edit: the caller deletes and reposts
    assert client.delete_message(CHANNEL, created["id"]) is True
    assert client.delete_message(CHANNEL, created["id"]) is False  # 404: already handled
    assert client.open_dm("900000000000000002") == client.open_dm("900000000000000002")


def test_an_exhausted_bucket_waits_for_its_reset_and_never_sends_early(
    discord: FakeDiscord, client: DiscordClient
) -> None:
    bucket = discord.bucket(f"POST /channels/{CHANNEL}/messages")
    bucket.limit, bucket.reset_after = 2, 0.4
    started = time.monotonic()
    for index in range(5):
        client.create_message(CHANNEL, f"burst {index}")
    assert discord.early_requests == []
    assert [e for e in discord.log if e.method == "POST"] and time.monotonic() - started >= 0.8  # two resets
    assert len(discord.channels[CHANNEL]) == 5


def test_a_429_storm_is_honoured_per_bucket_and_globally(discord: FakeDiscord, client: DiscordClient) -> None:
    route = f"GET /channels/{CHANNEL}/messages"
    discord.bucket(route).storm, discord.bucket(route).storm_retry_after = 3, 0.25
    assert client.messages(CHANNEL) == []
    gets = [e for e in discord.log if e.method == "GET"]
    assert len(gets) == 4 and discord.early_requests == []
    assert all(b.at - a.at >= 0.25 for a, b in itertools.pairwise(gets))
    post = discord.bucket(f"POST /channels/{CHANNEL}/messages")
    post.storm, post.storm_retry_after, post.storm_global = 1, 0.3, True
    client.create_message(CHANNEL, "after a global limit")
    assert discord.early_requests == []


def test_a_refused_token_stops_all_discord_work(discord: FakeDiscord) -> None:
    client = DiscordClient("wrong-token", discord.api, timeout=5)
    with pytest.raises(DiscordUnauthorized):
        client.me()
    requests = len(discord.log)
    with pytest.raises(DiscordUnauthorized):
        client.messages(CHANNEL)
    assert len(discord.log) == requests  # nothing more was sent
    client.close()


def test_split_text_counts_characters_for_discord_and_bytes_for_signal() -> None:
    from moltbot.text import split_text

    text = "\n".join("ü" * 30 for _ in range(100))  # 3099 characters, 6099 bytes
    by_characters = split_text(text, 2000)
    by_bytes = split_text(text, 2000, in_bytes=True)
    assert len(by_characters) == 2 and all(len(part) <= 2000 for part in by_characters)
    assert len(by_bytes) == 4 and all(len(part.encode()) <= 2000 for part in by_bytes)
    assert "\n".join(by_characters) == text == "\n".join(by_bytes)


def test_the_client_stays_under_discords_global_50_per_second(discord: FakeDiscord) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = DiscordClient(TOKEN, discord.api, timeout=5, clock=lambda: now[0], sleep=sleep)
    for bucket in ("GET /channels/{}/messages", "POST /channels/{}/messages"):
        discord.bucket(bucket.format(CHANNEL)).limit = 1000
    for index in range(60):  # all at the same (injected) instant
        if index % 2:
            client.messages(CHANNEL)
        else:
            client.create_message(CHANNEL, f"m{index}")
    client.close()
    assert slept and sum(slept) == pytest.approx(1.0)  # the 51st waited for the first to leave the window
    assert len(discord.log) == 60
