"""Ollama and Letta clients against fake servers on 127.0.0.1 (their real HTTP APIs)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moltbot.agents.letta import LettaClient
from moltbot.agents.ollama import AgentUnavailable, OllamaClient, ToolCall
from tests.fake_agents import FakeLetta, FakeOllama

PAUSE_TOOL = {
    "type": "function",
    "function": {
        "name": "pause",
        "description": "pause a task's schedule",
        "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]},
    },
}
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama().start()
    yield fake
    fake.stop()


def test_chat_plain_and_streamed(ollama: FakeOllama) -> None:
    ollama.answer = lambda body: {"role": "assistant", "content": "disk is 71% full"}
    messages = [{"role": "user", "content": "how full is the disk?"}]
    with OllamaClient(ollama.url, "llama3.2", timeout=5) as client:
        assert client.chat(messages).content == "disk is 71% full"
        assert client.chat(messages, stream=True).content == "disk is 71% full"
        assert client.has_model() and not client.has_model("mistral")
    assert [request["stream"] for request in ollama.requests] == [False, True]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_as_objects_or_as_json_text(ollama: FakeOllama, stream: bool) -> None:
    call = {"function": {"name": "pause", "arguments": {"task": "email"}}}
    ollama.answer = lambda body: {"role": "assistant", "content": "", "tool_calls": [call]}
    with OllamaClient(ollama.url, "llama3.2", timeout=5) as client:
        reply = client.chat([{"role": "user", "content": "stop email"}], tools=[PAUSE_TOOL], stream=stream)
        assert reply.tool_calls == [ToolCall("pause", {"task": "email"})]
        # Small models often write the call as text in content (ollama/ollama#13519).
        text = json.dumps({"name": "pause", "arguments": {"task": "backup"}})
        ollama.answer = lambda body: {"role": "assistant", "content": f"```json\n{text}\n```"}
        reply = client.chat([{"role": "user", "content": "hold backup"}], tools=[PAUSE_TOOL], stream=stream)
        assert reply.tool_calls == [ToolCall("pause", {"task": "backup"})] and reply.content == ""
        # A name that was not offered is just text, never a call.
        rogue = json.dumps({"name": "rm_rf", "arguments": {}})
        ollama.answer = lambda body: {"role": "assistant", "content": rogue}
        assert client.chat(HELLO, tools=[PAUSE_TOOL], stream=stream).tool_calls == []


def test_errors_say_what_is_wrong(ollama: FakeOllama) -> None:
    with OllamaClient(ollama.url, "mistral", timeout=5) as client, pytest.raises(AgentUnavailable) as caught:
        client.chat(HELLO)
    assert "no model 'mistral' (ollama pull mistral)" in str(caught.value)
    with OllamaClient(ollama.url, "llama3.2", timeout=5) as client:
        ollama.error_mid_stream = "out of memory"
        with pytest.raises(AgentUnavailable, match="out of memory"):
            client.chat(HELLO, stream=True)
        ollama.fail_status, before = 503, len(ollama.requests)
        with pytest.raises(AgentUnavailable, match="busy"):
            client.chat(HELLO)
        assert len(ollama.requests) - before == 3  # bounded retries of what never reached the model
    ollama.stop()
    with OllamaClient(ollama.url, "llama3.2", timeout=2) as client, pytest.raises(AgentUnavailable) as caught:
        client.health()
    assert "not reachable" in str(caught.value)


@pytest.mark.parametrize("legacy", [False, True])
def test_letta_answers_one_request_at_a_time(legacy: bool, tmp_path: Path) -> None:
    fake = FakeLetta(password="s3cret", legacy_send_message=legacy, delay=0.2).start()
    answers: list[str] = []
    try:
        with LettaClient(fake.url, fake.agent_id, api_key="s3cret", timeout=5, lock_dir=tmp_path) as client:

            def ask() -> None:
                answers.append(client.ask("water plants"))

            threads = [threading.Thread(target=ask) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
        assert answers == ["noted: water plants"] * 3
        assert fake.max_concurrent == 1  # Letta: concurrent requests to one agent are undefined
        assert fake.requests[0] == {"messages": [{"role": "user", "content": "water plants"}]}
        wrong = LettaClient(fake.url, fake.agent_id, api_key="wrong", timeout=5, lock_dir=tmp_path)
        with wrong, pytest.raises(AgentUnavailable, match="401"):
            wrong.ask("hi")
    finally:
        fake.stop()


def test_letta_without_text_is_an_error(tmp_path: Path) -> None:
    silent: Any = lambda text: ""  # noqa: E731
    fake = FakeLetta(answer=silent).start()
    try:
        client = LettaClient(fake.url, fake.agent_id, timeout=5, lock_dir=tmp_path)
        with client, pytest.raises(AgentUnavailable, match="no text"):
            client.ask("hi")
    finally:
        fake.stop()


def test_letta_is_asked_one_at_a_time_across_processes_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    fake = FakeLetta(delay=0.3).start()
    code = (
        "from moltbot.agents.letta import LettaClient; import sys; from pathlib import Path; "
        f"client = LettaClient('{fake.url}', '{fake.agent_id}', timeout=10, lock_dir=Path(sys.argv[2])); "
        "print(client.ask(sys.argv[1]))"
    )
    try:
        commands = [[sys.executable, "-c", code, f"task {i}", str(tmp_path)] for i in range(3)]
        askers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for command in commands]
        outputs = sorted(asker.communicate(timeout=30)[0].strip() for asker in askers)
        assert outputs == ["noted: task 0", "noted: task 1", "noted: task 2"]
        assert fake.max_concurrent == 1  # each Discord task's action is its own process
    finally:
        fake.stop()
