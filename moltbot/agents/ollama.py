"""A local Ollama model: chat (with tools), health, clear errors.

``POST /api/chat`` with ``stream`` false or true (NDJSON; an ``{"error"}``
line mid-stream keeps status 200 and is an error here too), explicit
timeouts (the official client sets none), bounded retries only for what did
not reach the model (connection refused, 503 queue full). A tool call that a
small model wrote as JSON text in ``content`` instead of ``tool_calls`` is
recognised when it names one of the offered tools (NOTES.md §4).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from moltbot.redact import redact_urls
from moltbot.retries import quick_retries

__all__ = ["AgentUnavailable", "ChatReply", "OllamaClient", "ToolCall"]

DEFAULT_HOST = "http://127.0.0.1:11434"


class AgentUnavailable(Exception):
    """The agent cannot answer (server down, model missing, an error); the text says which."""


class _Busy(AgentUnavailable):
    """Not reached or queue full: worth another try."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatReply:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)


class OllamaClient:
    def __init__(self, host: str = DEFAULT_HOST, model: str = "llama3.2", timeout: float = 120.0) -> None:
        self.host, self.model = host.rstrip("/"), model
        self._shown = redact_urls(self.host)  # in errors, which reach the log and the chat
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        # Generous read timeout (a cold model loads for a while), short connect timeout.
        self._http = httpx.Client(
            base_url=self.host, timeout=httpx.Timeout(timeout, connect=5.0), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> list[str]:
        """The models the server has; AgentUnavailable when it does not answer."""
        try:
            response = self._http.get("/api/tags", timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise AgentUnavailable(f"Ollama at {self._shown} is not reachable: {exc}") from exc
        return [model.get("name", "") for model in response.json().get("models", [])]

    def has_model(self, model: str | None = None) -> bool:
        wanted = model or self.model
        names = self.health()
        return any(name == wanted or name.split(":")[0] == wanted for name in names)

    @quick_retries(_Busy)
    def chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        model: str | None = None,
        stream: bool = False,
    ) -> ChatReply:
        body: dict[str, Any] = {"model": model or self.model, "messages": messages, "stream": stream}
        if tools:
            body["tools"] = tools
        try:
            if stream:
                return self._streamed(body, tools)
            response = self._http.post("/api/chat", json=body)
            self._check(response, body["model"])
            return _reply(response.json().get("message") or {}, tools)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Busy(f"Ollama at {self._shown} is not reachable ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise AgentUnavailable(f"Ollama did not answer in time ({exc!r})") from exc
        except httpx.HTTPError as exc:  # the connection broke: it may have been working on it
            raise AgentUnavailable(f"Ollama at {self._shown} failed: {exc!r}") from exc

    def _streamed(self, body: dict[str, Any], tools: list[dict[str, Any]] | None) -> ChatReply:
        content: list[str] = []
        calls: list[dict[str, Any]] = []
        with self._http.stream("POST", "/api/chat", json=body) as response:
            if response.status_code != 200:
                response.read()
                self._check(response, body["model"])
            for chunk in _ndjson(response.iter_lines()):
                if "error" in chunk:
                    raise AgentUnavailable(f"Ollama: {chunk['error']}")
                message = chunk.get("message") or {}
                content.append(message.get("content") or "")
                calls += message.get("tool_calls") or []
                if chunk.get("done"):
                    break
        return _reply({"content": "".join(content), "tool_calls": calls}, tools)

    def _check(self, response: httpx.Response, model: str) -> None:
        if response.status_code == 200:
            return
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        if response.status_code == 404:
            raise AgentUnavailable(f"Ollama has no model {model!r} (ollama pull {model}): {error}")
        if response.status_code == 503:
            raise _Busy(f"Ollama is busy: {error}")
        raise AgentUnavailable(f"Ollama answered {response.status_code}: {error}")


def _ndjson(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            chunk = json.loads(line)
            if isinstance(chunk, dict):
                yield chunk


def _reply(message: dict[str, Any], tools: list[dict[str, Any]] | None) -> ChatReply:
    content = message.get("content") or ""
    parsed = [_tool_call(call) for call in message.get("tool_calls") or []]
    calls = [call for call in parsed if call is not None]
    if not calls and tools:
        found = _tool_call_in_text(content, {tool["function"]["name"] for tool in tools})
        if found is not None:
            return ChatReply("", [found])
    return ChatReply(content, calls)


def _tool_call(call: Any) -> ToolCall | None:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return None
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):  # the OpenAI-compatible shape
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    return ToolCall(function["name"], arguments if isinstance(arguments, dict) else {})


def _tool_call_in_text(content: str, names: set[str]) -> ToolCall | None:
    """``{"name": "pause", "arguments": {...}}`` written as text, possibly in a fence."""
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("function"), dict):
        data = data["function"]
    name = data.get("name")
    arguments = data.get("arguments", data.get("parameters", {}))
    if name in names and isinstance(arguments, dict):
        return ToolCall(name, arguments)
    return None
