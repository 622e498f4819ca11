"""The daemon's Signal receiver against the fake gateway's websocket, over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from typing import Any

import pytest

from moltbot.clock import SystemClock
from moltbot.config.integrations import SignalSettings
from moltbot.core.chat import Chat
from moltbot.core.health import HealthBoard
from moltbot.signal_chat.gateway import Gateway
from moltbot.signal_chat.receiver import Receiver
from tests.conftest import wait_until
from tests.fake_gateway import BOT, FakeGateway, text_frame

OWNER = "+4915100000001"
OWNER_UUID = "0b0e0a2c-1111-4222-8333-444455556666"


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    gateway = FakeGateway(ping_seconds=100).start()
    yield gateway
    gateway.stop()


def receiving(fake: FakeGateway, frames: queue.Queue[Any], ping_seconds: float = 20) -> Receiver:
    """A receiver on ``fake``, reporting to a health board of its own (not recorded: no store)."""
    settings = SignalSettings(url=fake.url, number=BOT, allowed=(OWNER,), timeout_seconds=2)
    board = HealthBoard(SystemClock(), Chat(SystemClock()))
    return Receiver(Gateway(settings), frames, board, lambda since: None, ping_seconds=ping_seconds)


def test_the_receiver_keeps_one_socket_across_its_pings(fake: FakeGateway) -> None:
    """The gateway answers the receiver's pings, so it never drops a healthy socket as a dead one."""
    frames: queue.Queue[Any] = queue.Queue()
    receiver = receiving(fake, frames, ping_seconds=0.1)
    receiver.start()
    try:
        wait_until(lambda: fake.pings_received >= 5, timeout=10, what="5 pings from the receiver")
        assert fake.connections == 1 and fake.connected()
        frame = text_frame(OWNER_UUID, "status", fake.next_timestamp(), OWNER)
        assert fake.push(frame)
        assert frames.get(timeout=5) == frame
    finally:
        receiver.stop()
        receiver.gateway.close()


class FirstPutFails(queue.Queue[Any]):
    """A stdlib queue whose first ``put`` raises, as a bug of ours on the receiving thread would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug while handing over a frame")
        super().put(item, block, timeout)


def test_a_bug_while_receiving_is_logged_the_thread_starts_again_and_the_channel_shows_it(
    fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    frames = FirstPutFails()
    receiver = receiving(fake, frames)
    board = receiver.health
    receiver.start()
    try:
        wait_until(fake.connected, what="the first connection")
        assert [c.state for c in board.report().channels] == ["connected"]
        with caplog.at_level(logging.ERROR, logger="moltbot.threads"):
            assert fake.push(text_frame(OWNER_UUID, "status", fake.next_timestamp(), OWNER))
            wait_until(lambda: fake.connections == 2 and fake.connected(), what="a new connection")
        (failure,) = [record for record in caplog.records if record.exc_info]
        assert failure.getMessage().startswith("signal-receive failed")
        assert failure.exc_info is not None and isinstance(failure.exc_info[1], RuntimeError)  # traceback
        (thread,) = board.report().threads
        assert (thread.name, thread.state, thread.failures) == ("signal-receive", "running", 1)
        assert thread.error == "RuntimeError: a bug while handing over a frame"
        wait_until(lambda: board.report().channels[0].up, what="the channel connected again")
        assert board.report().channels[0].error == "RuntimeError: a bug while handing over a frame"
        frame = text_frame(OWNER_UUID, "help", fake.next_timestamp(), OWNER)
        assert fake.push(frame)
        assert frames.get(timeout=5) == frame  # receiving again
    finally:
        receiver.stop()
        receiver.gateway.close()
