"""The fakes' server: HTTP and websockets on one 127.0.0.1 port, served as the real services serve them.

A fake gives a ``route`` (a ``Request`` in, a ``Reply`` out), called on the connection's thread as the
request arrives, so the fake can log it, time it or hang it. A connection whose request asks for a
websocket (peeked at, left unread) goes to the websockets library's own sync ``ServerConnection`` once
``route`` answers 101: handshake, pongs, keepalive pings, closing and the frame size limit are the
library's. ``stop()`` is the server going down (every open connection dropped); ``start()`` again
listens on the same port.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets import http11
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # the JSON body, parsed; None when there is none or it is not JSON
    headers: dict[str, str]  # names in lower case


@dataclass
class Reply:
    status: int  # 101 accepts a websocket upgrade; 0 never answers and drops the connection
    body: Any = None  # bytes as they are; anything else but None as JSON
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


class Loopback:
    def __init__(
        self,
        route: Callable[[Request], Reply],
        websocket: Callable[[ServerConnection], None] | None = None,
        port: int = 0,
        ping_seconds: float | None = None,
        max_size: int | None = 2**20,
    ) -> None:
        self.route = route
        self.websocket = websocket  # serves an accepted websocket; the socket closes when it returns
        self.port = port
        self.ping_seconds = ping_seconds  # keepalive pings, and as long to wait for each pong
        self.max_size = max_size  # a bigger client message closes the websocket (1009)
        self.pings_received = 0  # from clients, on every websocket so far (the library answers them)
        self._server: _Server | None = None

    def start(self) -> Loopback:
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        # serve_forever() checks for stop() every 50 ms, not socketserver's 500
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: no more listening, and every open connection (HTTP or websocket) dropped."""
        server, self._server = self._server, None
        if server is None:
            return
        server.socket_closed.set()  # a handshake under way is refused (503), as by websockets' Server
        server.shutdown()
        server.server_close()
        with server.lock:
            connections = list(server.open)
        for sock in connections:
            drop(sock)

    def _serve_websocket(self, sock: socket.socket, server: _Server) -> None:
        """What websockets.sync.server.serve() does with each connection, on a socket we accepted."""
        protocol = ServerProtocol(max_size=self.max_size)
        connection = _Connection(  # its server is ours: all a ServerConnection asks of it is socket_closed
            sock, protocol, server, ping_interval=self.ping_seconds, ping_timeout=self.ping_seconds
        )
        connection.handshake(self._upgrade, server_header=None, timeout=10)
        if connection.protocol.state is not State.OPEN:
            connection.close_socket()  # refused: the route's answer went instead
            return
        connection.start_keepalive()
        with connection:
            if self.websocket is not None:
                self.websocket(connection)

    def _upgrade(self, connection: ServerConnection, request: http11.Request) -> http11.Response | None:
        """The route decides: 101 lets the library complete the handshake, anything else is answered."""
        url = urlsplit(request.path)
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        reply = self.route(Request("GET", url.path, parse_qs(url.query), None, headers))
        if reply.status == HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        payload = reply.payload
        fields = [*reply.headers.items(), ("Content-Type", reply.content_type)] if payload else []
        fields += [("Content-Length", str(len(payload))), ("Connection", "close")]
        return http11.Response(reply.status, HTTPStatus(reply.status).phrase, Headers(fields), payload)


def drop(sock: socket.socket) -> None:
    """Drop a connection as a dying server does: no answer, no close frame, just the end of the stream."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Connection(ServerConnection):
    """The library's server connection, counting the client's pings (the protocol answers them)."""

    server: _Server

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            with self.server.lock:
                self.server.loopback.pings_received += 1


class _Server(ThreadingHTTPServer):
    """One run of a Loopback: accepts, peeks at each connection's first request, serves it or hands it on."""

    daemon_threads = True
    allow_reuse_address = True  # restart on the same port

    def __init__(self, loopback: Loopback) -> None:
        self.loopback = loopback
        self.socket_closed = threading.Event()  # read by ServerConnection.handshake
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        super().__init__(("127.0.0.1", loopback.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if _asks_upgrade(request):
            self.loopback._serve_websocket(request, self)
        else:
            super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client left before its answer (it gave up on a stalled request): not news
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.open.discard(request)
        super().shutdown_request(request)


_UPGRADE = re.compile(rb"^upgrade:.*\bwebsocket\b", re.IGNORECASE | re.MULTILINE)


def _asks_upgrade(sock: socket.socket) -> bool:
    """Peek at the request's head, leaving it unread for whoever serves it: a websocket upgrade?"""
    head = b""
    try:
        while b"\r\n\r\n" not in head and len(head) < 65536:
            if len(sock.recv(len(head) + 1, socket.MSG_PEEK | socket.MSG_WAITALL)) <= len(head):
                break  # the client closed mid-head
            head = sock.recv(65536, socket.MSG_PEEK)
    except OSError:
        return False
    return _UPGRADE.search(head.partition(b"\r\n\r\n")[0]) is not None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the real services
    disable_nagle_algorithm = True  # as the real services: else a body waits 40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests: each fake keeps its own log of what reached it

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(self.command, url.path, parse_qs(url.query), body, headers)
        reply = self.server.loopback.route(request)
        if reply.status == 0:
            self.close_connection = True  # hung, then dropped: no answer ever
            return
        payload = reply.payload
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
