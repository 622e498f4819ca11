"""A question for the admins is answered only by an admin, in their own chat, after it was asked
(issue #13): one test per attack. A real daemon, the fake gateway (and the fake Ollama for the
precedence of a model's proposal); the question is a real ``moltbot ask``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_agents import FakeOllama
from tests.fake_gateway import FakeGateway, text_frame
from tests.security.test_proposals import PAUSE_PROPOSED, agent_bot, ollama, paused
from tests.test_signal import GROUP, OWNER, OWNER_UUID, VIEWER_UUID, bot, now_ms, replies, say

__all__ = ["agent_bot", "bot", "ollama"]  # fixtures used here
Bot = Callable[..., DaemonProcess]
Asking = Callable[[str], subprocess.Popen[str]]


@pytest.fixture
def asking(env: Env, gateway: FakeGateway) -> Iterator[Asking]:
    started: list[subprocess.Popen[str]] = []

    def ask(question: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            env.cli_argv("ask", question, "--timeout", "2m"),
            env=env.environ,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        wait_until(
            lambda: any(question in text for text in gateway.texts_to(OWNER)), what="the question sent"
        )
        return process

    yield ask
    for process in started:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=10)  # and its pipe closed


def open_questions(env: Env) -> list[str]:
    return [question["text"] for question in env.cli_json("status")["questions"]]


def test_a_viewer_cannot_answer(env: Env, gateway: FakeGateway, bot: Bot, asking: Asking) -> None:
    bot()
    asking("Wipe the cache?")
    say(gateway, "yes", sender=VIEWER_UUID, number=None)
    wait_until(lambda: gateway.texts_to(VIEWER_UUID), what="the viewer's answer")
    assert open_questions(env) == ["Wipe the cache?"]


def test_an_answer_in_a_group_does_not_count(
    env: Env, gateway: FakeGateway, bot: Bot, asking: Asking
) -> None:
    bot()
    asking("Wipe the cache?")
    say(gateway, "yes", group=GROUP)
    say(gateway, "yes 1", group=GROUP)
    wait_until(lambda: len(gateway.sent) >= 3, what="the group's answers")
    assert open_questions(env) == ["Wipe the cache?"]


def test_a_message_sent_before_the_question_does_not_answer_it(
    env: Env, gateway: FakeGateway, bot: Bot, asking
) -> None:  # type: ignore[no-untyped-def]
    bot()
    asking("Wipe the cache?")
    old = now_ms() - 30_000  # within max_command_age_seconds, but before it was asked
    assert gateway.push(text_frame(OWNER_UUID, "yes", old, OWNER))
    replies(gateway, 2)
    assert open_questions(env) == ["Wipe the cache?"]


def test_a_replayed_yes_does_not_answer_the_next_question(
    env: Env, gateway: FakeGateway, bot: Bot, asking
) -> None:  # type: ignore[no-untyped-def]
    bot()
    first = asking("First?")
    sent_at = now_ms()
    frame = text_frame(OWNER_UUID, "yes", sent_at, OWNER)
    assert gateway.push(frame)
    assert first.communicate(timeout=30)[0] == "yes\n"
    asking("Second?")
    told = len(gateway.texts_to(OWNER))
    assert gateway.push(frame)  # the same envelope again
    say(gateway, "status")  # handled after the replay: once its answer is here, the replay was seen
    wait_until(lambda: len(gateway.texts_to(OWNER)) > told, what="the status answer")
    assert open_questions(env) == ["Second?"]


def test_a_bare_yes_goes_to_the_models_proposal_and_a_numbered_one_to_the_question(
    env: Env, gateway: FakeGateway, agent_bot: Callable[[], None], ollama: FakeOllama, asking: Asking
) -> None:
    agent_bot()
    question = asking("Wipe the cache?")
    say(gateway, "please stop the email thing for now")
    wait_until(lambda: PAUSE_PROPOSED in gateway.texts_to(OWNER), what="the proposal")
    say(gateway, "yes")
    wait_until(lambda: paused("email-check"), what="the proposal confirmed")
    assert open_questions(env) == ["Wipe the cache?"]
    say(gateway, "yes 1")
    assert question.communicate(timeout=30)[0] == "yes\n" and question.returncode == 0


def test_an_answer_is_read_no_further_than_its_bound(
    env: Env, gateway: FakeGateway, bot: Bot, asking
) -> None:  # type: ignore[no-untyped-def]
    bot()
    asking("Wipe the cache?")
    say(gateway, "yes" + " " * 5000 + "1")  # too long to be an answer (or a command)
    replies(gateway, 2)
    assert open_questions(env) == ["Wipe the cache?"]
