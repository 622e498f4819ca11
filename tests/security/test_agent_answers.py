"""Answers from a model server (Ollama, Letta) are not trusted: each is capped in size and depth
before it is parsed, and one that is not what the API says is a clear AgentUnavailable, never a
crash of the caller (a chat thread, a task's action)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moltbot.agents.answers import MAX_ANSWER_BYTES
from moltbot.agents.letta import LettaClient
from moltbot.agents.ollama import AgentUnavailable, OllamaClient
from tests.fake_agents import FakeLetta, FakeOllama

NOT_OBJECTS = [b"[]", b"null", b'"text"', b"42"]
DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = b'{"message": {"content": "' + b"x" * (MAX_ANSWER_BYTES + 1) + b'"}}'


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama().start()
    yield fake
    fake.stop()


@pytest.fixture
def letta() -> Iterator[FakeLetta]:
    fake = FakeLetta().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("answer", [*NOT_OBJECTS, DEEP, HUGE, b'{"message": "not an object"}', b"\xff\xfe"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_ollama_chat_answer_that_is_not_a_json_object_is_refused(
    ollama: FakeOllama, answer: bytes, stream: bool
) -> None:
    ollama.garbage = answer
    with OllamaClient(ollama.url) as client:
        try:
            reply = client.chat([{"role": "user", "content": "hi"}], stream=stream)
        except AgentUnavailable as refused:
            assert "Ollama" in str(refused)
        else:  # an object with a useless message is read as an empty answer, never a crash
            assert reply.content == "" and reply.tool_calls == []


@pytest.mark.parametrize("answer", [*NOT_OBJECTS, DEEP, HUGE, b'{"models": "none"}'])
def test_an_ollama_model_list_that_is_not_one_is_refused(ollama: FakeOllama, answer: bytes) -> None:
    ollama.garbage = answer
    with OllamaClient(ollama.url) as client:
        try:
            assert client.health() == []
        except AgentUnavailable as refused:
            assert "Ollama" in str(refused)


def test_an_endless_stream_line_is_cut_off_before_it_is_parsed(ollama: FakeOllama) -> None:
    ollama.garbage = b'{"message": {"content": "' + b"y" * (MAX_ANSWER_BYTES + 10)  # no newline, ever
    with OllamaClient(ollama.url) as client, pytest.raises(AgentUnavailable, match="over"):
        client.chat([{"role": "user", "content": "hi"}], stream=True)


@pytest.mark.parametrize(
    "answer", [*NOT_OBJECTS, DEEP, HUGE, b'{"messages": ["a", 1, null]}', b'{"messages": {"a": 1}}']
)
def test_a_letta_answer_that_is_not_what_the_api_says_is_refused(
    letta: FakeLetta, answer: bytes, tmp_path: Path
) -> None:
    letta.garbage = answer
    with (
        LettaClient(letta.url, letta.agent_id, lock_dir=tmp_path) as client,
        pytest.raises(AgentUnavailable, match="Letta"),
    ):
        client.ask("hello")
