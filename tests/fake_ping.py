"""A fake healthchecks.io ping endpoint on 127.0.0.1: records each ping's method, path, query and time.

It answers as the real one does (``200``, body ``OK``), or as a monitor gone wrong: an HTTP
status of the test's choosing, an answer whose body never ends, bytes that are no HTTP at all
(without a line break, forever), or no answer. Raw sockets, so a test decides every byte.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

UUID = "5f1b4f2e-6c1d-4d7a-9a57-0c1d2e3f9a1b"  # the check's, as healthchecks.io hands it out


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    query: dict[str, list[str]]
    at: float  # time.monotonic()
    headers: dict[str, str]


class FakePing:
    def __init__(self) -> None:
        self.pings: list[Ping] = []
        self.mode = "ok"  # ok | status | endless | garbage | silent
        self.status = 200  # in mode "status"
        self.lock = threading.Lock()
        self.port = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> FakePing:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: connections refused (start() listens on the same port again)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def url(self, uuid: str = UUID) -> str:
        return f"http://127.0.0.1:{self.port}/{uuid}"

    def paths(self) -> list[str]:
        with self.lock:
            return [ping.path for ping in self.pings]

    def received(self) -> list[Ping]:
        with self.lock:
            return list(self.pings)

    def _serve(self, sock: socket.socket) -> None:
        head = b""
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        lines = head.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        with self.lock:
            self.pings.append(Ping(method, url.path, parse_qs(url.query), time.monotonic(), headers))
            mode, status = self.mode, self.status
        try:
            if mode == "ok":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")
            elif mode == "status":
                sock.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            elif mode == "endless":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                while True:
                    sock.sendall(b"OK" * 32768)
            elif mode == "garbage":
                while True:
                    sock.sendall(b"x" * 65536)
            elif mode == "silent":
                time.sleep(30)
        except OSError:
            pass  # the client hung up, as it should
