"""The daemon's Signal receiver against the fake gateway's websocket, over real sockets on 127.0.0.1."""

from __future__ import annotations

import queue
from datetime import UTC, datetime
from typing import Any

from moltbot.config.integrations import SignalSettings
from moltbot.signal_chat.gateway import Gateway
from moltbot.signal_chat.receiver import Receiver
from tests.conftest import wait_until
from tests.fake_gateway import BOT, FakeGateway, text_frame

OWNER = "+4915100000001"


def test_the_receiver_keeps_one_socket_across_its_pings() -> None:
    """The gateway answers the receiver's pings, so it never drops a healthy socket as a dead one."""
    fake = FakeGateway(ping_seconds=100).start()
    settings = SignalSettings(url=fake.url, number=BOT, allowed=(OWNER,), timeout_seconds=2)
    frames: queue.Queue[Any] = queue.Queue()
    gateway = Gateway(settings)
    receiver = Receiver(gateway, frames, lambda: datetime.now(UTC), lambda since: None, ping_seconds=0.1)
    receiver.start()
    try:
        wait_until(lambda: fake.pings_received >= 5, timeout=10, what="5 pings from the receiver")
        assert fake.connections == 1 and fake.connected()
        frame = text_frame("0b0e0a2c-1111-4222-8333-444455556666", "status", fake.next_timestamp(), OWNER)
        assert fake.push(frame)
        assert frames.get(timeout=5) == frame
    finally:
        receiver.stop()
        gateway.close()
        fake.stop()
