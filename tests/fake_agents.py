"""Fake Ollama and Letta servers on 127.0.0.1, speaking their real HTTP APIs (NOTES.md §3, §4)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]  # request body -> the assistant "message"


@dataclass
class FakeOllama:
    models: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    answer: Answer = field(default=lambda body: {"role": "assistant", "content": "ok"})
    fail_status: int | None = None  # answer every chat with this status
    error_mid_stream: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOllama:
        _serve(self, _OllamaHandler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def chat(self, body: dict[str, Any]) -> tuple[int, bytes, str]:
        self.requests.append(body)
        model = body.get("model", "")
        if self.fail_status is not None:
            return self.fail_status, json.dumps({"error": "server busy"}).encode(), "application/json"
        if not any(model in (name, name.split(":")[0]) for name in self.models):
            return 404, json.dumps({"error": f"model '{model}' not found"}).encode(), "application/json"
        message = self.answer(body)
        base = {"model": model, "created_at": "2026-11-23T10:00:00Z"}
        if not body.get("stream", True):
            final = {**base, "message": message, "done": True, "done_reason": "stop", "total_duration": 1}
            return 200, json.dumps(final).encode(), "application/json"
        lines = []
        for index, word in enumerate((message.get("content") or "").split(" ")):
            text = word if index == 0 else " " + word
            lines.append({**base, "message": {"role": "assistant", "content": text}, "done": False})
        if message.get("tool_calls"):
            calls = {"role": "assistant", "content": "", "tool_calls": message["tool_calls"]}
            lines.append({**base, "message": calls, "done": False})
        if self.error_mid_stream:
            lines.append({"error": self.error_mid_stream})
        lines.append(
            {**base, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
        )
        return 200, "".join(json.dumps(line) + "\n" for line in lines).encode(), "application/x-ndjson"


class _OllamaHandler(BaseHTTPRequestHandler):
    fake: FakeOllama
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/api/tags":
            models = [{"name": name, "model": name, "size": 1, "details": {}} for name in self.fake.models]
            return self._send(200, json.dumps({"models": models}).encode())
        if self.path == "/api/version":
            return self._send(200, b'{"version": "0.12.0"}')
        return self._send(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path != "/api/chat":
            return self._send(404, b"404 page not found", "text/plain")
        status, payload, content_type = self.fake.chat(body)
        return self._send(status, payload, content_type)


@dataclass
class FakeLetta:
    agent_id: str = "agent-1234"
    password: str | None = None
    answer: Callable[[str], str] = field(default=lambda text: f"noted: {text[:40]}")
    legacy_send_message: bool = False
    delay: float = 0.0
    concurrent: int = 0
    max_concurrent: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: _Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLetta:
        _serve(self, _LettaHandler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


class _LettaHandler(_OllamaHandler):
    fake: FakeLetta  # type: ignore[assignment]

    def do_POST(self) -> None:
        fake = self.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if fake.password and self.headers.get("Authorization") != f"Bearer {fake.password}":
            return self._send(401, b'{"detail": "Unauthorized"}')
        if self.path != f"/v1/agents/{fake.agent_id}/messages":
            return self._send(404, b'{"detail": "Agent not found"}')
        messages = body.get("messages") or []
        if not messages:
            return self._send(422, b'{"detail": "messages must not be empty"}')
        with fake._lock:
            fake.requests.append(body)
            fake.concurrent += 1
            fake.max_concurrent = max(fake.max_concurrent, fake.concurrent)
        time.sleep(fake.delay)
        text = fake.answer(messages[-1]["content"])
        with fake._lock:
            fake.concurrent -= 1
        if fake.legacy_send_message:
            reply = {"message_type": "tool_call_message", "tool_call": {"name": "send_message",
                     "arguments": json.dumps({"message": text})}}  # fmt: skip
        else:
            reply = {"message_type": "assistant_message", "content": text}
        answer = {"messages": [{"message_type": "reasoning_message", "reasoning": "hm"}, reply],
                  "stop_reason": {"message_type": "stop_reason", "stop_reason": "end_turn"},
                  "usage": {"message_type": "usage_statistics", "total_tokens": 10}}  # fmt: skip
        return self._send(200, json.dumps(answer).encode())


class _Server(ThreadingHTTPServer):
    """Closes its open (keep-alive) connections when stopped, as a server going down does."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.open_sockets: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.open_sockets.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        for sock in list(self.open_sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


def _serve(fake: Any, handler: type[BaseHTTPRequestHandler]) -> None:
    bound = type("Bound", (handler,), {"fake": fake})
    server = _Server(("127.0.0.1", fake.port), bound)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    fake._server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
