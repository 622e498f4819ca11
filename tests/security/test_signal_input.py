"""What the Signal gateway sends is bounded before it is parsed: one test per boundary.

The daemon is real, the gateway a fake on 127.0.0.1 gone wrong on the real protocol. After
each piece of garbage it is refused (a warning, no traceback: it is not a bug of ours) and the
daemon goes on answering commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from moltbot.bounded_json import MAX_DEPTH
from moltbot.signal_chat.gateway import ABOUT_MAX_BYTES, RECEIVE_MAX_BYTES
from moltbot.signal_chat.receiver import MAX_FRAME_BYTES
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway, huge_frame, nested_json
from tests.test_signal import OWNER, bot, echo_task, say

__all__ = ["bot"]  # the Signal fixture, used here too (gateway: conftest.py)
Bot = Callable[..., DaemonProcess]


def answers_commands(gateway: FakeGateway) -> None:
    """A command still gets its answer (after the "back online" notice, when there was an outage)."""
    if gateway.mode == "json-rpc":
        wait_until(gateway.connected, what="the daemon's websocket")
    say(gateway, "status")
    wait_until(lambda: any(t.startswith("moltbot:") for t in gateway.texts_to(OWNER)), what="the answer")


def logged(daemon: DaemonProcess, text: str) -> None:
    wait_until(lambda: text in daemon.output(), what=f"{text!r} in the daemon's log")
    assert "Traceback" not in daemon.output()


@pytest.mark.parametrize("body", [b"[]", b"null", b'"json-rpc"'])
def test_an_about_answer_that_is_not_an_object_is_refused(
    env: Env, gateway: FakeGateway, bot: Bot, body: bytes
) -> None:
    gateway.about_body = body
    daemon = bot(echo_task(env), wait_connected=False)
    logged(daemon, "/v1/about answered JSON that is not an object")
    gateway.about_body = None
    answers_commands(gateway)


def test_an_about_answer_over_its_size_bound_is_refused_unparsed(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    padding = "x" * ABOUT_MAX_BYTES
    gateway.about_body = json.dumps({"mode": "json-rpc", "version": "0.100", "padding": padding}).encode()
    daemon = bot(echo_task(env), wait_connected=False)
    logged(daemon, f"/v1/about answered more than {ABOUT_MAX_BYTES} bytes")
    assert gateway.connections == 0  # not taken for a json-rpc gateway
    gateway.about_body = None
    answers_commands(gateway)


def test_a_frame_nested_too_deep_is_refused_and_the_socket_kept(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    daemon = bot(echo_task(env))
    gateway.push_raw(nested_json(100_000))  # deeper than the stdlib's parser can go (RecursionError)
    logged(daemon, f"nested deeper than {MAX_DEPTH} levels")
    answers_commands(gateway)
    assert gateway.connections == 1  # refused by us, not by dropping the connection


def test_a_frame_over_its_size_bound_is_refused_before_it_is_read(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    daemon = bot(echo_task(env))
    gateway.push_raw(huge_frame(MAX_FRAME_BYTES + 1))
    logged(daemon, f"a frame over {MAX_FRAME_BYTES} bytes")
    answers_commands(gateway)


def test_a_normal_mode_answer_nested_too_deep_is_refused(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    gateway.mode = "normal"
    gateway.push_raw(nested_json(100_000))
    daemon = bot(echo_task(env), wait_connected=False)
    logged(daemon, f"nested deeper than {MAX_DEPTH} levels")
    answers_commands(gateway)


def test_a_normal_mode_answer_over_its_size_bound_is_refused_unparsed(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    gateway.mode = "normal"
    gateway.push_raw("[" + huge_frame(RECEIVE_MAX_BYTES) + "]")
    daemon = bot(echo_task(env), wait_connected=False)
    logged(daemon, f"/v1/receive/+4915100000000 answered more than {RECEIVE_MAX_BYTES} bytes")
    answers_commands(gateway)
