"""A fake signal-cli-rest-api on 127.0.0.1 that speaks its real wire protocol.

Built to ../shared/signal-cli-rest-api/swagger.json and GATEWAY-NOTES.md:
``GET /v1/about`` (mode), ``/v1/health`` (204), ``/v1/accounts``,
``POST /v2/send`` (201 with ``{"timestamp": "..."}`` or, as newer releases,
``[{...}]``; 400/429/5xx when told to; or no answer at all; or, stalled, every
request held until it is unstalled),
``POST /v1/reactions/{number}``, ``PUT|DELETE /v1/typing-indicator/{number}``
(204), and ``GET /v1/receive/{number}``: a JSON array sent as text/plain in
normal mode, a websocket in json-rpc mode (one JSON object per text frame,
server pings, the client's pings answered, client frames over 512 bytes close
it, and frames pushed while no socket is connected are lost, as the real
gateway loses them). A gateway gone wrong, on the same protocol: ``about_body``
answers ``/v1/about`` with other JSON (``[]``, ``null``, a huge object), and
``push_raw`` sends any text as a frame (``nested_json``, ``huge_frame``), or
in normal mode as the next ``/v1/receive`` answer. HTTP and websocket
plumbing: tests/loopback.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import ServerConnection

from tests.loopback import Loopback, Reply, Request, drop

BOT = "+4915100000000"


@dataclass
class SendFault:
    """How the next sends fail: ``status`` with ``body``, or ``hang`` (never answer)."""

    status: int = 503
    body: dict[str, Any] = field(default_factory=lambda: {"error": "signal-cli is restarting"})
    count: int = 1  # how many sends it affects
    hang: bool = False


class FakeGateway:
    def __init__(
        self, mode: str = "json-rpc", number: str = BOT, ping_seconds: float = 54.0, version: str = "0.100"
    ) -> None:
        self.mode = mode
        self.version = version  # BUILD_VERSION; dev and CI images report "unset"
        self.number = number
        self.ping_seconds = ping_seconds  # between the server's pings, and as long to wait for each pong
        self.response_shape = "object"  # "object" (release 0.100) | "array" (newer)
        self.sent: list[dict[str, Any]] = []  # bodies of accepted /v2/send requests
        self.sent_times: list[float] = []  # time.perf_counter() at each accepted send
        self.send_requests = 0  # every /v2/send that reached us, answered or not
        self.reactions: list[dict[str, Any]] = []
        self.typing: list[tuple[str, str]] = []  # (PUT|DELETE, recipient)
        self.lost: list[dict[str, Any]] = []  # pushed while no websocket was connected
        self.faults: list[SendFault] = []
        self.fault_for: Callable[[dict[str, Any]], SendFault | None] | None = None
        self.connections = 0  # websockets accepted so far
        self.about_body: bytes | None = None  # set: /v1/about answers these bytes (200, JSON)
        self.held = 0  # requests that arrived while stalled
        self.accounts: dict[str, str] = {}  # number -> UUID: one person's account, reachable by either
        self._queued: list[dict[str, Any]] = []  # normal mode: waiting for GET /v1/receive
        self._queued_raw: list[str] = []  # normal mode: the next answers of GET /v1/receive, as they are
        self._sockets: list[ServerConnection] = []
        self._lock = threading.Condition()
        self._release_hung = threading.Event()
        self._unstalled = threading.Event()
        self._unstalled.set()
        self._timestamp = int(time.time() * 1000)
        self.port = 0
        self._server = Loopback(self._route, self._serve_socket, max_size=512)  # ReadLimit(512)

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pings_received(self) -> int:
        """Pings from clients on every websocket so far (each answered with a pong)."""
        return self._server.pings_received

    def start(self) -> FakeGateway:
        self._server.port, self._server.ping_seconds = self.port, self.ping_seconds
        self.port = self._server.start().port
        return self

    def stop(self) -> None:
        """Down: listening stops, every connection (websockets too) is dropped, hung sends are let go."""
        self._server.stop()
        self.drop_sockets()
        self._release_hung.set()
        self._unstalled.set()

    def stall(self) -> None:
        """Wedged (signal-cli hanging behind a live HTTP front): connections are still accepted, and
        every request, a websocket's handshake too, is held unanswered until ``unstall``. Open
        websockets stay open (``drop_sockets`` for a restart that hangs)."""
        self._unstalled.clear()

    def unstall(self) -> None:
        """The held requests are served now, as the real gateway does once signal-cli answers: a send
        whose client gave up meanwhile is delivered all the same."""
        self._unstalled.set()

    def restart(self, after: float = 0.0) -> None:
        self.stop()
        time.sleep(after)
        self._release_hung = threading.Event()
        self.start()

    def drop_sockets(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            drop(sock.socket)

    # --- what tests drive ---------------------------------------------------------------

    def push(self, frame: dict[str, Any]) -> bool:
        """Deliver a received message to moltbot; False when the gateway lost it."""
        with self._lock:
            if self.mode != "json-rpc":
                self._queued.append(frame)
                self._lock.notify_all()
                return True
            sockets = list(self._sockets)
        delivered = any([_send_text(sock, json.dumps(frame)) for sock in sockets])
        if not delivered:
            self.lost.append(frame)
        return delivered

    def push_raw(self, text: str) -> None:
        """Any text as one frame (json-rpc mode), or as the next /v1/receive answer (normal mode)."""
        with self._lock:
            if self.mode != "json-rpc":
                self._queued_raw.append(text)
                self._lock.notify_all()
                return
            sockets = list(self._sockets)
        for sock in sockets:
            _send_text(sock, text)

    def connected(self) -> bool:
        with self._lock:
            return any(sock.state is State.OPEN for sock in self._sockets)

    def texts_to(self, recipient: str) -> list[str]:
        with self._lock:
            return [body["message"] for body in self.sent if recipient in body["recipients"]]

    def texts_to_person(self, uuid: str) -> list[str]:
        """What reached the account ``uuid``, addressed by its UUID or its number: one per recipient."""
        addresses = {uuid, *(number for number, owner in self.accounts.items() if owner == uuid)}
        with self._lock:
            sent = [(body["message"], body["recipients"]) for body in self.sent]
        return [text for text, recipients in sent for recipient in recipients if recipient in addresses]

    def next_timestamp(self) -> int:
        with self._lock:
            self._timestamp = max(self._timestamp + 1, int(time.time() * 1000))
            return self._timestamp

    @property
    def last_timestamp(self) -> int:
        return self._timestamp

    def release_hung_sends(self) -> None:
        self._release_hung.set()

    # --- endpoint logic ----------------------------------------------------------------

    def _send(self, body: Any) -> Reply:
        with self._lock:
            self.send_requests += 1
        if not isinstance(body, dict) or not body.get("number"):
            return Reply(400, {"error": "Couldn't process request - please provide a valid number"})
        recipients = body.get("recipients")
        if (
            not isinstance(recipients, list)
            or not recipients
            or not all(isinstance(r, str) for r in recipients)
        ):
            return Reply(400, {"error": "Couldn't process request - please provide at least one recipient"})
        if body["number"] != self.number:
            return Reply(400, {"error": f"User {body['number']} is not registered."})
        fault = self.fault_for(body) if self.fault_for else None
        with self._lock:
            if fault is None and self.faults:
                fault = self.faults[0]
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.pop(0)
        if fault is not None:
            if fault.hang:
                self._release_hung.wait()
                return Reply(0)  # the connection is dropped without an answer
            return Reply(fault.status, fault.body)
        timestamp = self.next_timestamp()
        with self._lock:
            self.sent_times.append(time.perf_counter())
            self.sent.append(body)
            self._lock.notify_all()
        answer = {"timestamp": str(timestamp)}
        return Reply(201, [answer] if self.response_shape == "array" else answer)

    def wait_for_sent(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.sent) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(self.sent)} of {count} messages sent: {self.sent}")
                self._lock.wait(remaining)
            return list(self.sent)

    def _receive_batch(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._queued and not self._queued_raw and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            if self._queued_raw:
                return self._queued_raw.pop(0)
            batch, self._queued = self._queued, []
        return json.dumps(batch)

    def _serve_socket(self, sock: ServerConnection) -> None:
        """An accepted websocket: pushed frames go out on it; client frames are read and ignored."""
        with self._lock:
            self._sockets.append(sock)
            self.connections += 1
        try:
            for _ in sock:
                pass
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)

    def _route(self, request: Request) -> Reply:
        if not self._unstalled.is_set():
            with self._lock:
                self.held += 1
            self._unstalled.wait()
        method, path, number = request.method, request.path, self.number
        if method == "GET" and path == "/v1/about":
            if self.about_body is not None:
                return Reply(200, self.about_body)
            about = {"versions": ["v1", "v2"], "build": 2, "mode": self.mode, "version": self.version,
                     "capabilities": {"v2/send": ["quotes", "mentions"]}}  # fmt: skip
            return Reply(200, about)
        if method == "GET" and path == "/v1/health":
            return Reply(204)
        if method == "GET" and path == "/v1/accounts":
            return Reply(200, [number])
        if method == "GET" and path in (f"/v1/groups/{number}", f"/v1/contacts/{number}"):
            return Reply(200, [])  # no groups, no contacts (signalbot lists them at start)
        if method == "POST" and path == "/v2/send":
            return self._send(request.body)
        body = request.body if isinstance(request.body, dict) else {}
        if method == "POST" and path == f"/v1/reactions/{number}":
            if not all(body.get(k) for k in ("recipient", "reaction", "target_author", "timestamp")):
                return Reply(400, {"error": "Couldn't process request - invalid request"})
            self.reactions.append(body)
            return Reply(204)
        if method in ("PUT", "DELETE") and path == f"/v1/typing-indicator/{number}":
            if not body.get("recipient"):
                return Reply(400, {"error": "Couldn't process request - invalid request"})
            self.typing.append((method, body["recipient"]))
            return Reply(204)
        if method == "GET" and path == f"/v1/receive/{number}":
            if self.mode == "json-rpc":
                if request.headers.get("upgrade", "").lower() != "websocket":
                    return Reply(400, {"error": "websocket: the client is not using the websocket protocol"})
                return Reply(101)  # the websocket: _serve_socket
            batch = self._receive_batch(float(request.query.get("timeout", ["1"])[0]))
            return Reply(200, batch.encode(), "text/plain; charset=utf-8")
        return Reply(404, b"404 page not found", "text/plain")


def _send_text(sock: ServerConnection, text: str) -> bool:
    try:
        sock.send(text)
    except (ConnectionClosed, OSError):
        return False
    return True


# --- envelopes, shaped as signal-cli sends them (GATEWAY-NOTES 1.5) ---------------------


def nested_json(depth: int) -> str:
    """Valid JSON nested ``depth`` levels deep: objects inside arrays, as an envelope's parts nest."""
    return '[{"a":' * (depth // 2) + "0" + "}]" * (depth // 2)


def huge_frame(size: int) -> str:
    """A valid frame (an envelope, for another account) of exactly ``size`` bytes."""
    head, tail = '{"account": "+10000000000", "envelope": {"padding": "', '"}}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def text_frame(
    sender_uuid: str,
    text: str | None,
    timestamp: int,
    sender_number: str | None = None,
    group_id: str | None = None,
    account: str = BOT,
) -> dict[str, Any]:
    data: dict[str, Any] = {"timestamp": timestamp, "message": text, "expiresInSeconds": 0, "viewOnce": False}
    if group_id is not None:
        data["groupInfo"] = {"groupId": group_id, "groupName": "ops", "revision": 3, "type": "DELIVER"}
    return {
        "envelope": {
            "source": sender_number or sender_uuid,
            "sourceNumber": sender_number,
            "sourceUuid": sender_uuid,
            "sourceName": "Someone",
            "sourceDevice": 1,
            "timestamp": timestamp,
            "serverReceivedTimestamp": timestamp + 100,
            "serverDeliveredTimestamp": timestamp + 200,
            "dataMessage": data,
        },
        "account": account,
    }


def note_to_self_frame(own_uuid: str, text: str, timestamp: int, own_number: str = BOT) -> dict[str, Any]:
    return {
        "envelope": {
            "source": own_number,
            "sourceNumber": own_number,
            "sourceUuid": own_uuid,
            "sourceDevice": 1,
            "timestamp": timestamp,
            "syncMessage": {
                "sentMessage": {
                    "destination": own_number,
                    "destinationNumber": own_number,
                    "destinationUuid": own_uuid,
                    "timestamp": timestamp,
                    "message": text,
                    "expiresInSeconds": 0,
                    "viewOnce": False,
                }
            },
        },
        "account": own_number,
    }
