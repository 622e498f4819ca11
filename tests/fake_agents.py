"""Fake Ollama and Letta servers on 127.0.0.1, speaking their real HTTP APIs (NOTES.md §3, §4).

HTTP plumbing: tests/loopback.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import Loopback, Reply, Request

Answer = Callable[[dict[str, Any]], dict[str, Any]]  # request body -> the assistant "message"


@dataclass
class FakeOllama:
    models: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    answer: Answer = field(default=lambda body: {"role": "assistant", "content": "ok"})
    fail_status: int | None = None  # answer every chat with this status
    error_mid_stream: str | None = None
    garbage: bytes | None = None  # a broken or hostile server: every answer is these bytes, status 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: Loopback | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOllama:
        self._server = Loopback(self._serve, port=self.port).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _serve(self, request: Request) -> Reply:
        if self.garbage is not None:
            return Reply(200, self.garbage)
        if request.method == "GET" and request.path == "/api/tags":
            models = [{"name": name, "model": name, "size": 1, "details": {}} for name in self.models]
            return Reply(200, {"models": models})
        if request.method == "GET" and request.path == "/api/version":
            return Reply(200, {"version": "0.12.0"})
        if request.method == "POST" and request.path == "/api/chat":
            status, payload, content_type = self.chat(request.body or {})
            return Reply(status, payload, content_type)
        return Reply(404, b"404 page not found", "text/plain")

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


@dataclass
class FakeLetta:
    agent_id: str = "agent-1234"
    password: str | None = None
    answer: Callable[[str], str] = field(default=lambda text: f"noted: {text[:40]}")
    legacy_send_message: bool = False
    garbage: bytes | None = None  # a broken or hostile server: every answer is these bytes, status 200
    delay: float = 0.0
    concurrent: int = 0
    max_concurrent: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: Loopback | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLetta:
        self._server = Loopback(self._serve, port=self.port).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _serve(self, request: Request) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        if self.garbage is not None:
            return Reply(200, self.garbage)
        if self.password and request.headers.get("authorization") != f"Bearer {self.password}":
            return Reply(401, {"detail": "Unauthorized"})
        if request.method != "POST" or request.path != f"/v1/agents/{self.agent_id}/messages":
            return Reply(404, {"detail": "Agent not found"})
        messages = body.get("messages") or []
        if not messages:
            return Reply(422, {"detail": "messages must not be empty"})
        with self._lock:
            self.requests.append(body)
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        time.sleep(self.delay)
        text = self.answer(messages[-1]["content"])
        with self._lock:
            self.concurrent -= 1
        if self.legacy_send_message:
            reply = {"message_type": "tool_call_message", "tool_call": {"name": "send_message",
                     "arguments": json.dumps({"message": text})}}  # fmt: skip
        else:
            reply = {"message_type": "assistant_message", "content": text}
        answer = {"messages": [{"message_type": "reasoning_message", "reasoning": "hm"}, reply],
                  "stop_reason": {"message_type": "stop_reason", "stop_reason": "end_turn"},
                  "usage": {"message_type": "usage_statistics", "total_tokens": 10}}  # fmt: skip
        return Reply(200, answer)
