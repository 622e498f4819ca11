"""A Letta agent (optional): ``POST /v1/agents/{id}/messages``, the assistant's text.

One request at a time per agent (Letta: concurrent requests to one agent are
undefined behaviour), bounded in time; the key, when set, as a Bearer token.
Older agents answer through a ``send_message`` tool call instead of an
``assistant_message``; both are read (NOTES.md §3).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from moltbot.agents.answers import AgentUnavailable, body, json_object

__all__ = ["LettaClient"]

_AGENT_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class LettaClient:
    def __init__(
        self,
        base_url: str,
        agent_id: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        *,
        lock_dir: Path,
    ) -> None:
        self.agent_id = agent_id
        # Our own folder (the daemon's data/), never the shared /tmp, where any local user could
        # create and hold the lock and so stop every Letta task.
        self.lock_dir = lock_dir
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=5.0), headers=headers
        )
        with _LOCKS_GUARD:
            self._lock = _AGENT_LOCKS.setdefault(agent_id, threading.Lock())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LettaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, text: str) -> str:
        # One at a time per agent: threads here, and other moltbot processes (each Discord
        # task's action is one) through a lock file named after the agent.
        with self._lock, _agent_file_lock(self.lock_dir, self.agent_id):
            try:
                with self._http.stream(
                    "POST",
                    f"/v1/agents/{self.agent_id}/messages",
                    json={"messages": [{"role": "user", "content": text}]},
                ) as response:
                    status, answer_bytes = response.status_code, body(response, "Letta")
            except httpx.HTTPError as exc:
                raise AgentUnavailable(f"Letta is not reachable: {exc}") from exc
        if status != 200:
            raise AgentUnavailable(f"Letta answered {status}: {answer_bytes[:200].decode(errors='replace')}")
        answer = _assistant_text(json_object(answer_bytes, "Letta"))
        if not answer:
            raise AgentUnavailable("Letta's agent answered with no text")
        return answer


@contextmanager
def _agent_file_lock(lock_dir: Path, agent_id: str) -> Iterator[None]:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in agent_id)
    path = lock_dir / f"letta-{safe}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _assistant_text(answer: dict[str, Any]) -> str:
    messages = answer.get("messages")
    if not isinstance(messages, list):
        raise AgentUnavailable("Letta answered without a list of messages")
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        kind = message.get("message_type")
        if kind == "assistant_message":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            parts.append(str(content or ""))
        elif kind == "tool_call_message":
            call = message.get("tool_call")
            if isinstance(call, dict) and call.get("name") == "send_message":
                try:
                    arguments = json_object(str(call.get("arguments") or "{}").encode(), "Letta")
                except AgentUnavailable:
                    continue
                parts.append(str(arguments.get("message", "")))
    return "\n".join(part for part in parts if part).strip()
