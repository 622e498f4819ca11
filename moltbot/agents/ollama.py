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
from dataclasses import dataclass, field
from typing import Any

import httpx

from moltbot.agents.answers import AgentUnavailable, body, json_object, ndjson_objects
from moltbot.redact import redact_urls
from moltbot.retries import quick_retries

__all__ = ["AgentUnavailable", "ChatReply", "OllamaClient", "ToolCall"]

DEFAULT_HOST = "http://127.0.0.1:11434"


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
            with self._http.stream("GET", "/api/tags", timeout=5.0) as response:
                response.raise_for_status()
                answer = json_object(body(response, "Ollama"), "Ollama")
        except httpx.HTTPError as exc:
            raise AgentUnavailable(f"Ollama at {self._shown} is not reachable: {exc}") from exc
        models = answer.get("models")
        if not isinstance(models, list):
            raise AgentUnavailable("Ollama answered a model list that is not a list")
        return [str(model.get("name", "")) for model in models if isinstance(model, dict)]

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
        request: dict[str, Any] = {"model": model or self.model, "messages": messages, "stream": stream}
        if tools:
            request["tools"] = tools
        try:
            if stream:
                return self._streamed(request, tools)
            with self._http.stream("POST", "/api/chat", json=request) as response:
                answer = body(response, "Ollama")
                self._check(response.status_code, answer, request["model"])
            return _reply(_message(json_object(answer, "Ollama")), tools)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Busy(f"Ollama at {self._shown} is not reachable ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise AgentUnavailable(f"Ollama did not answer in time ({exc!r})") from exc
        except httpx.HTTPError as exc:  # the connection broke: it may have been working on it
            raise AgentUnavailable(f"Ollama at {self._shown} failed: {exc!r}") from exc

    def _streamed(self, request: dict[str, Any], tools: list[dict[str, Any]] | None) -> ChatReply:
        content: list[str] = []
        calls: list[Any] = []
        with self._http.stream("POST", "/api/chat", json=request) as response:
            if response.status_code != 200:
                self._check(response.status_code, body(response, "Ollama"), request["model"])
            for chunk in ndjson_objects(response, "Ollama"):
                if "error" in chunk:
                    raise AgentUnavailable(f"Ollama: {chunk['error']}")
                message = _message(chunk)
                content.append(str(message.get("content") or ""))
                tool_calls = message.get("tool_calls")
                calls += tool_calls if isinstance(tool_calls, list) else []
                if chunk.get("done"):
                    break
        return _reply({"content": "".join(content), "tool_calls": calls}, tools)

    def _check(self, status: int, answer: bytes, model: str) -> None:
        if status == 200:
            return
        try:
            error = json_object(answer, "Ollama").get("error") or answer[:200].decode(errors="replace")
        except AgentUnavailable:
            error = answer[:200].decode(errors="replace")
        if status == 404:
            raise AgentUnavailable(f"Ollama has no model {model!r} (ollama pull {model}): {error}")
        if status == 503:
            raise _Busy(f"Ollama is busy: {error}")
        raise AgentUnavailable(f"Ollama answered {status}: {error}")


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` of an answer or chunk; an empty one when it is missing or not an object."""
    message = answer.get("message")
    return message if isinstance(message, dict) else {}


def _reply(message: dict[str, Any], tools: list[dict[str, Any]] | None) -> ChatReply:
    content = str(message.get("content") or "")
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
