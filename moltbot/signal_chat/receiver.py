"""Receiving from the gateway on a thread of its own, into a queue.

json-rpc mode: one persistent websocket, read continuously (the gateway drops
a frame when its reader is slow, and everything sent while no socket is
connected: GATEWAY-NOTES 1.4), with pings, reconnecting with backoff and
jitter (``retries.RECONNECT_WAIT``). Normal and native mode: ``GET /v1/receive`` in a loop, with a client
timeout longer than the server's wait. The mode is detected on every
(re)connection. Commands are never processed here: only queued.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from moltbot import retries
from moltbot.signal_chat.gateway import Gateway, GatewayError

__all__ = ["Receiver"]

log = logging.getLogger(__name__)
PING_SECONDS = 20.0  # the gateway pings every 54 s; ours find a half-open connection sooner


class Receiver:
    """Feeds ``frames`` with every received frame (decoded JSON) until ``stop``."""

    def __init__(
        self,
        gateway: Gateway,
        frames: queue.Queue[Any],
        now: Callable[[], datetime],
        on_reconnect: Callable[[datetime], None],
        ping_seconds: float = PING_SECONDS,
    ) -> None:
        self.gateway = gateway
        self.ping_seconds = ping_seconds  # and as long for the answer: a silent socket is dropped
        self.frames = frames
        self.now = now
        self.on_reconnect = on_reconnect  # told when the gateway is back after an outage
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._socket: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="signal-receive", daemon=True)
        self._down_since: datetime | None = None  # an outage in progress (also: unreachable at start)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        self._thread.join(5)

    def _run(self) -> None:
        failures = 0  # in a row
        unreachable_logged = False
        while not self._stopping.is_set():
            failures += 1
            try:
                about = self.gateway.detect()
                if about.mode == "json-rpc":
                    self._read_socket()
                else:
                    self._poll()
                failures = 0
            except (GatewayError, WebSocketException, OSError, ValueError) as exc:
                if not unreachable_logged or self.connected.is_set():
                    log.warning("signal gateway: %s; retrying (messages sent meanwhile may be lost)", exc)
                    unreachable_logged = True
            except Exception:  # a bug of ours: reconnect all the same
                log.exception("signal gateway: receiving failed unexpectedly; reconnecting")
            self._disconnected()
            if self._stopping.is_set():
                return
            self._stopping.wait(retries.delay(retries.RECONNECT_WAIT, max(1, failures)))

    def _read_socket(self) -> None:
        with connect(
            self.gateway.receive_url,
            open_timeout=self.gateway.settings.timeout_seconds,
            ping_interval=self.ping_seconds,
            ping_timeout=self.ping_seconds,
            close_timeout=2,
            proxy=None,
            max_size=2**22,
        ) as socket:
            self._socket = socket
            self._connected("websocket")
            try:
                for message in socket:
                    self._put(message)
            finally:
                self._socket = None

    def _poll(self) -> None:
        self._connected("polling")
        while not self._stopping.is_set():
            for frame in self.gateway.poll():
                self.frames.put(frame)

    def _put(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            log.warning("signal gateway sent a frame that is not JSON (%d bytes); ignored", len(message))
            return
        self.frames.put(frame)

    def _connected(self, how: str) -> None:
        self.connected.set()
        log.info(
            "signal gateway connected (%s, mode %s)",
            how,
            self.gateway.about.mode if self.gateway.about else "?",
        )
        if self._down_since is not None:
            self.on_reconnect(self._down_since)
        self._down_since = None

    def _disconnected(self) -> None:
        if self.connected.is_set():
            log.warning("signal gateway disconnected; reconnecting")
        self.connected.clear()
        if self._down_since is None:
            self._down_since = self.now()
