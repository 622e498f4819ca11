"""Receiving from the gateway on a thread of its own, into a queue.

json-rpc mode: one persistent websocket, read continuously (the gateway drops
a frame when its reader is slow, and everything sent while no socket is
connected: GATEWAY-NOTES 1.4), with pings, reconnecting with backoff and
jitter (``retries.RECONNECT_WAIT``). Normal and native mode: ``GET /v1/receive`` in a loop, with a client
timeout longer than the server's wait. The mode is detected on every
(re)connection. Commands are never processed here: only queued.

A frame is bounded before it is parsed: its size by the websocket itself
(a bigger one is refused unread, and the connection closes with 1009), its
nesting by ``moltbot.bounded_json``; what is refused is logged and dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection, connect

from moltbot import bounded_json, retries
from moltbot.core.health import HealthBoard
from moltbot.signal_chat.delivery import CHANNEL
from moltbot.signal_chat.gateway import Gateway, GatewayError
from moltbot.threads import Supervised, describe

__all__ = ["MAX_FRAME_BYTES", "Receiver"]

log = logging.getLogger(__name__)
PING_SECONDS = 20.0  # the gateway pings every 54 s; ours find a half-open connection sooner
# An envelope is a few KiB (a message's text, quotes, mentions; attachments are only named).
MAX_FRAME_BYTES = 1024 * 1024


class Receiver:
    """Feeds ``frames`` with every received frame (decoded JSON) until ``stop``.

    One pass of its supervised thread is one connection: detect the mode,
    receive until the connection ends, wait before the next. The Signal
    channel's health (connected, reconnecting since when and why) goes to the
    health board; a bug of ours ends the pass, is logged with its traceback by
    the supervisor, and the next pass reconnects.
    """

    def __init__(
        self,
        gateway: Gateway,
        frames: queue.Queue[Any],
        health: HealthBoard,
        on_reconnect: Callable[[datetime], None],
        ping_seconds: float = PING_SECONDS,
    ) -> None:
        self.gateway = gateway
        self.ping_seconds = ping_seconds  # and as long for the answer: a silent socket is dropped
        self.frames = frames
        self.health = health
        self.on_reconnect = on_reconnect  # told when the gateway is back after an outage
        self.connected = threading.Event()
        self._socket: ClientConnection | None = None
        self._thread = Supervised("signal-receive", self._one_connection, health)
        self._stopping = self._thread.stopping
        self._down_since: datetime | None = None  # an outage in progress (also: unreachable at start)
        self._failures = 0  # connections in a row that failed
        self._unreachable_logged = False

    def start(self) -> None:
        self.health.channel_connecting(CHANNEL)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        self._thread.stop()

    def _one_connection(self) -> None:
        self._failures += 1
        error = "the gateway closed the connection"
        try:
            about = self.gateway.detect()
            if about.mode == "json-rpc":
                self._read_socket()
            else:
                self._poll()
            self._failures = 0
        except (GatewayError, WebSocketException, OSError, ValueError) as exc:
            error = _why(exc)
            if not self._unreachable_logged or self.connected.is_set():
                log.warning("signal gateway: %s; retrying (messages sent meanwhile may be lost)", error)
                self._unreachable_logged = True
        except Exception as exc:  # a bug of ours: the supervisor logs it, then reconnects
            self._disconnected(describe(exc))
            raise
        self._disconnected(error)
        self._stopping.wait(retries.delay(retries.RECONNECT_WAIT, max(1, self._failures)))

    def _read_socket(self) -> None:
        with connect(
            self.gateway.receive_url,
            open_timeout=self.gateway.settings.timeout_seconds,
            ping_interval=self.ping_seconds,
            ping_timeout=self.ping_seconds,
            close_timeout=2,
            proxy=None,
            max_size=MAX_FRAME_BYTES,
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
            frame = bounded_json.loads(message, MAX_FRAME_BYTES)
        except bounded_json.UnsafeJson as exc:
            log.warning("signal gateway sent a frame %s; refused unparsed", exc)
            return
        except ValueError:
            log.warning("signal gateway sent a frame that is not JSON (%d bytes); ignored", len(message))
            return
        self.frames.put(frame)

    def _connected(self, how: str) -> None:
        self.connected.set()
        self.health.channel_connected(CHANNEL)
        log.info(
            "signal gateway connected (%s, mode %s)",
            how,
            self.gateway.about.mode if self.gateway.about else "?",
        )
        if self._down_since is not None:
            self.on_reconnect(self._down_since)
        self._down_since = None

    def _disconnected(self, error: str) -> None:
        if self._stopping.is_set():
            return  # shutting down: not an outage
        if self.connected.is_set():
            log.warning("signal gateway disconnected; reconnecting")
        self.connected.clear()
        self.health.channel_lost(CHANNEL, error)
        if self._down_since is None:
            self._down_since = self.health.clock.now()


def _why(exc: Exception) -> str:
    """What went wrong, said plainly where the library's words are obscure."""
    if isinstance(exc, ConnectionClosed) and exc.sent and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
        return f"it sent a frame over {MAX_FRAME_BYTES} bytes (refused unread: the connection closes with it)"
    return str(exc)
