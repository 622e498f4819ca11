"""A fake signal-cli-rest-api on 127.0.0.1 that speaks its real wire protocol.

Built to ../shared/signal-cli-rest-api/swagger.json and GATEWAY-NOTES.md:
``GET /v1/about`` (mode), ``/v1/health`` (204), ``/v1/accounts``,
``POST /v2/send`` (201 with ``{"timestamp": "..."}`` or, as newer releases,
``[{...}]``; 400/429/5xx when told to; or no answer at all),
``POST /v1/reactions/{number}``, ``PUT|DELETE /v1/typing-indicator/{number}``
(204), and ``GET /v1/receive/{number}``: a JSON array sent as text/plain in
normal mode, a websocket in json-rpc mode (one JSON object per text frame,
server pings, client frames over 512 bytes close it, and frames pushed while
no socket is connected are lost, as the real gateway loses them).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

BOT = "+4915100000000"


@dataclass
class SendFault:
    """How the next sends fail: ``status`` with ``body``, or ``hang`` (never answer)."""

    status: int = 503
    body: dict[str, Any] = field(default_factory=lambda: {"error": "signal-cli is restarting"})
    count: int = 1  # how many sends it affects
    hang: bool = False


class _Socket:
    """One accepted websocket (sans-I/O protocol from the websockets library on a raw socket)."""

    def __init__(self, connection: socket.socket, protocol: ServerProtocol) -> None:
        self.connection = connection
        self.protocol = protocol
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            self.connection.sendall(data)

    def send_text(self, text: str) -> bool:
        with self.lock:
            if self.closed.is_set() or self.protocol.state is not State.OPEN:
                return False
            self.protocol.send_text(text.encode())
            try:
                self.flush()
            except OSError:
                self.closed.set()
                return False
            return True

    def ping(self) -> None:
        with self.lock:
            if self.protocol.state is State.OPEN:
                self.protocol.send_ping(b"fake")
                try:
                    self.flush()
                except OSError:
                    self.closed.set()

    def close(self) -> None:
        with self.lock:
            self.closed.set()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeGateway:
    def __init__(
        self, mode: str = "json-rpc", number: str = BOT, ping_seconds: float = 54.0, version: str = "0.100"
    ) -> None:
        self.mode = mode
        self.version = version  # BUILD_VERSION; dev and CI images report "unset"
        self.number = number
        self.ping_seconds = ping_seconds
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
        self._queued: list[dict[str, Any]] = []  # normal mode: waiting for GET /v1/receive
        self._sockets: list[_Socket] = []
        self._lock = threading.Condition()
        self._release_hung = threading.Event()
        self._timestamp = int(time.time() * 1000)
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGateway:
        gateway = self

        class Handler(_Handler):
            fake = gateway

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: listening stops, every websocket is dropped, hung sends are let go."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.drop_sockets()
        self._release_hung.set()

    def restart(self, after: float = 0.0) -> None:
        self.stop()
        time.sleep(after)
        self._release_hung = threading.Event()
        self.start()

    def drop_sockets(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    # --- what tests drive ---------------------------------------------------------------

    def push(self, frame: dict[str, Any]) -> bool:
        """Deliver a received message to moltbot; False when the gateway lost it."""
        with self._lock:
            if self.mode != "json-rpc":
                self._queued.append(frame)
                self._lock.notify_all()
                return True
            sockets = [sock for sock in self._sockets if not sock.closed.is_set()]
        delivered = any([sock.send_text(json.dumps(frame)) for sock in sockets])
        if not delivered:
            self.lost.append(frame)
        return delivered

    def push_raw(self, text: str) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            sock.send_text(text)

    def connected(self) -> bool:
        with self._lock:
            return any(not sock.closed.is_set() for sock in self._sockets)

    def texts_to(self, recipient: str) -> list[str]:
        with self._lock:
            return [body["message"] for body in self.sent if recipient in body["recipients"]]

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

    def _send(self, body: Any) -> tuple[int, Any]:
        with self._lock:
            self.send_requests += 1
        if not isinstance(body, dict) or not body.get("number"):
            return 400, {"error": "Couldn't process request - please provide a valid number"}
        recipients = body.get("recipients")
        if (
            not isinstance(recipients, list)
            or not recipients
            or not all(isinstance(r, str) for r in recipients)
        ):
            return 400, {"error": "Couldn't process request - please provide at least one recipient"}
        if body["number"] != self.number:
            return 400, {"error": f"User {body['number']} is not registered."}
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
                return 0, None  # the connection is dropped without an answer
            return fault.status, fault.body
        timestamp = self.next_timestamp()
        with self._lock:
            self.sent_times.append(time.perf_counter())
            self.sent.append(body)
            self._lock.notify_all()
        answer = {"timestamp": str(timestamp)}
        return 201, [answer] if self.response_shape == "array" else answer

    def wait_for_sent(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.sent) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(self.sent)} of {count} messages sent: {self.sent}")
                self._lock.wait(remaining)
            return list(self.sent)

    def _receive_batch(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._queued and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            batch, self._queued = self._queued, []
        return batch

    def _serve_socket(self, handler: _Handler) -> None:
        headers = Headers([(key, value) for key, value in handler.headers.items()])
        protocol = ServerProtocol(max_size=512)  # the real gateway's ReadLimit(512)
        response = protocol.accept(Request(handler.path, headers))
        protocol.send_response(response)
        sock = _Socket(handler.connection, protocol)
        sock.flush()
        if protocol.state is not State.OPEN:
            return
        with self._lock:
            self._sockets.append(sock)
            self.connections += 1
        stop_pings = threading.Event()

        def pinger() -> None:
            while not stop_pings.wait(self.ping_seconds):
                sock.ping()

        threading.Thread(target=pinger, daemon=True).start()
        try:
            while not sock.closed.is_set():
                try:
                    data = handler.connection.recv(65536)
                except OSError:
                    break
                with sock.lock:
                    if data:
                        protocol.receive_data(data)
                    else:
                        protocol.receive_eof()
                    protocol.events_received()  # pings are answered by the protocol itself
                    try:
                        sock.flush()  # pongs, close answers
                    except OSError:
                        break
                if not data or protocol.state is State.CLOSED:
                    break
        finally:
            stop_pings.set()
            sock.closed.set()
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGateway
    protocol_version = "HTTP/1.1"
    # The real gateway is Go, whose sockets are TCP_NODELAY: without it, a response's
    # body waited for the client's delayed ACK of its headers (40 ms per request).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests

    def _reply(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _route(self, method: str) -> None:
        fake = self.fake
        path = urlparse(self.path).path
        receive = f"/v1/receive/{fake.number}"
        if method == "GET" and path == "/v1/about":
            about = {"versions": ["v1", "v2"], "build": 2, "mode": fake.mode, "version": fake.version,
                     "capabilities": {"v2/send": ["quotes", "mentions"]}}  # fmt: skip
            return self._reply(200, about)
        if method == "GET" and path == "/v1/health":
            return self._reply(204)
        if method == "GET" and path == "/v1/accounts":
            return self._reply(200, [fake.number])
        if method == "GET" and path == f"/v1/groups/{fake.number}":
            return self._reply(200, [])  # no groups (signalbot lists them at start)
        if method == "GET" and path == f"/v1/contacts/{fake.number}":
            return self._reply(200, [])
        if method == "POST" and path == "/v2/send":
            status, answer = fake._send(self._body())
            if status == 0:
                self.close_connection = True  # hung, then dropped: no answer ever
                return None
            return self._reply(status, answer)
        if method == "POST" and path == f"/v1/reactions/{fake.number}":
            body = self._body()
            if not isinstance(body, dict) or not all(
                body.get(k) for k in ("recipient", "reaction", "target_author", "timestamp")
            ):
                return self._reply(400, {"error": "Couldn't process request - invalid request"})
            fake.reactions.append(body)
            return self._reply(204)
        if method in ("PUT", "DELETE") and path == f"/v1/typing-indicator/{fake.number}":
            body = self._body()
            if not isinstance(body, dict) or not body.get("recipient"):
                return self._reply(400, {"error": "Couldn't process request - invalid request"})
            fake.typing.append((method, body["recipient"]))
            return self._reply(204)
        if method == "GET" and path == receive:
            upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
            if fake.mode == "json-rpc":
                if not upgrade:
                    return self._reply(
                        400, {"error": "websocket: the client is not using the websocket protocol"}
                    )
                self.close_connection = True
                fake._serve_socket(self)
                return None
            timeout = parse_qs(urlparse(self.path).query).get("timeout", ["1"])[0]
            batch = fake._receive_batch(float(timeout))
            return self._reply(200, json.dumps(batch).encode(), "text/plain; charset=utf-8")
        return self._reply(404, b"404 page not found", "text/plain")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


# --- envelopes, shaped as signal-cli sends them (GATEWAY-NOTES 1.5) ---------------------


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
