"""A change the model proposes is bound to its conversation (issue #12 §4): one test per attack.

The daemon is real, the gateway and Ollama fakes on 127.0.0.1. The model proposes ``pause`` for
"email" and ``run`` for "backup"; anything else it answers in words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moltbot import store
from tests.conftest import DaemonProcess, Env
from tests.fake_agents import FakeOllama
from tests.fake_gateway import FakeGateway
from tests.test_signal import GROUP, GROUP_REST, bot, echo_task, replies, say

__all__ = ["bot"]  # the Signal fixture, used here too (gateway: conftest.py)
Bot = Callable[..., DaemonProcess]
PAUSE_PROPOSED = "→ pause:email-check? reply yes within 2 minutes to do it"


def understand(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body["messages"][-1]["content"])
    for word, call in (("email", ("pause", "email-check")), ("backup", ("run", "backup"))):
        if word in text:
            tool_call = {"function": {"name": call[0], "arguments": {"task": call[1]}}}
            return {"role": "assistant", "content": "", "tool_calls": [tool_call]}
    return {"role": "assistant", "content": "I can only operate moltbot's tasks."}


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama(answer=understand).start()
    yield fake
    fake.stop()


@pytest.fixture
def agent_bot(env: Env, bot: Bot, ollama: FakeOllama) -> Callable[[], None]:
    def start() -> None:
        bot(echo_task(env, "email-check"), echo_task(env, "backup"), ollama=ollama.url)
        env.db()

    return start


def paused(task_id: str) -> bool:
    task = store.get_task(task_id)
    return task is not None and task.paused_by is not None


def test_a_proposal_made_one_to_one_is_not_confirmed_from_a_group(
    gateway: FakeGateway, agent_bot: Callable[[], None]
) -> None:
    agent_bot()
    say(gateway, "please stop the email thing for now")
    assert replies(gateway, 1) == [PAUSE_PROPOSED]
    say(gateway, "yes", group=GROUP)  # the same sender, in an allowed group
    (in_group,) = replies(gateway, 1, recipient=GROUP_REST)
    assert in_group.startswith("nothing is waiting for a yes here") and not paused("email-check")
    say(gateway, "yes")  # where it was proposed: it still waits there, and its result comes there
    assert replies(gateway, 2)[1].startswith("→ pause:email-check ✓\n⏸ email-check paused")
    assert paused("email-check") and len(gateway.texts_to(GROUP_REST)) == 1


@pytest.mark.parametrize(
    "answer",
    ["no", "never mind", "ok", "y", "status", "tell me a joke", pytest.param("x" * 5000, id="too-long")],
)
def test_anything_but_yes_cancels_a_proposal(
    gateway: FakeGateway, agent_bot: Callable[[], None], answer: str
) -> None:
    agent_bot()
    say(gateway, "please stop the email thing for now")
    assert replies(gateway, 1) == [PAUSE_PROPOSED]
    say(gateway, answer)
    assert replies(gateway, 2)[1].startswith("✗ pause:email-check cancelled")
    say(gateway, "yes")
    assert replies(gateway, 3)[2].startswith("nothing is waiting for a yes here")
    assert not paused("email-check")


def test_a_newer_proposal_says_that_it_replaced_the_older(
    gateway: FakeGateway, agent_bot: Callable[[], None]
) -> None:
    agent_bot()
    say(gateway, "please stop the email thing for now")
    assert replies(gateway, 1) == [PAUSE_PROPOSED]
    say(gateway, "actually, run the backup")
    replacing = replies(gateway, 2)[1]
    assert replacing == "→ run:backup? reply yes within 2 minutes to do it" + (
        " (it replaces pause:email-check, which will not run)"
    )
    say(gateway, "yes")
    assert replies(gateway, 3)[2].startswith("→ run:backup ✓\n▶ backup started")
    assert not paused("email-check") and store.recent_runs("email-check", 5) == []
