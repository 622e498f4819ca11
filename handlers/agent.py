"""Free text to commands, through a model that may only call the commands.

The model is offered one tool per command the sender's role allows (declared
once in commands.py), so it can do nothing a command could not; its choice
runs through the same ``handle`` with the same role check. Read-only choices
run at once ("→ status ✓" and the answer); mutating ones wait for a one-word
``yes`` from the same sender within two minutes. A model that is down or
confused gets the short help instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers.commands import COMMANDS, allowed, closest_command, handle, parse, short_help
from moltbot.core import Core, Reply, Request

__all__ = ["CONFIRM_WINDOW", "Interpreter", "is_free_text"]

log = logging.getLogger(__name__)
CONFIRM_WINDOW = timedelta(minutes=2)
YES = {"yes", "y", "ja", "ok", "confirm"}
SYSTEM = (
    "You operate moltbot, a task scheduler on a home server, for its owner. "
    "Answer by calling exactly one of the tools; each is a moltbot command. "
    "Use task ids exactly as the owner wrote them. If no tool fits, reply in one short sentence."
)


class ToolCallLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def arguments(self) -> dict[str, Any]: ...


class ChatReplyLike(Protocol):
    """A model's answer (``moltbot.agents.ollama.ChatReply``): text, or calls of the offered tools."""

    @property
    def content(self) -> str: ...

    @property
    def tool_calls(self) -> Sequence[ToolCallLike]: ...


Chat = Callable[[list[dict[str, Any]], list[dict[str, Any]]], ChatReplyLike]  # (messages, tools) -> reply


def is_free_text(text: str) -> bool:
    """Not a command, nor a typo of one (those get "did you mean")."""
    try:
        parse(text)
    except ValueError:
        first = text.strip().lstrip("/!").split(":")[0].split(" ")[0].lower()
        return closest_command(first, 0.75) is None
    return False


def tools_for(role: str) -> list[dict[str, Any]]:
    tools = []
    for command in COMMANDS.values():
        if not allowed(role, command.role):
            continue
        properties: dict[str, Any] = {}
        required: list[str] = []
        if command.argument:
            key = command.argument.lower()
            properties[key] = {"type": "string", "description": f"the {key} (id or name)"}
            required = [key] if command.required else []
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": command.name,
                    "description": command.help,
                    "parameters": {"type": "object", "properties": properties, "required": required},
                },
            }
        )
    return tools


@dataclass(frozen=True)
class _Pending:
    command: str
    expires: datetime


class Interpreter:
    """One per transport; remembers what waits for a ``yes`` (by requester)."""

    def __init__(self, core: Core, chat: Chat) -> None:
        self.core = core
        self.chat = chat
        self._pending: dict[str, _Pending] = {}

    def confirmation(self, request: Request) -> Reply | None:
        """The answer to a ``yes`` when something waits for one (None: it is no confirmation)."""
        if request.text.strip().lower() not in YES:
            return None
        pending = self._pending.pop(request.requester, None)
        if pending is None or pending.expires < self.core.clock.now():
            return Reply("nothing is waiting for a yes (a proposal is valid for 2 minutes)")
        return self._done(pending.command, handle(self.core, _with_text(request, pending.command)))

    def interpret(self, request: Request) -> Reply:
        """Ask the model what the text means; run it or propose it. Slow: call outside transactions."""
        try:
            reply = self.chat(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": request.text}],
                tools_for(request.role),
            )
        except Exception as exc:  # the agent's own errors name the cause
            log.warning("agent unavailable: %s", exc)
            return Reply(f"agent unavailable ({exc}).\n{short_help()}")
        if not reply.tool_calls:
            text = (reply.content or "").strip()
            return Reply(text[:1500] if text else short_help())
        call = reply.tool_calls[0]
        command = COMMANDS.get(call.name)
        if command is None or not allowed(request.role, command.role):
            return Reply(f"⛔ not something I may do for you.\n{short_help()}")
        argument = (
            next((str(value) for value in call.arguments.values() if value), "") if command.argument else ""
        )
        text = f"{command.name}:{argument}" if argument else command.name
        if command.role == "viewer":  # read-only: at once
            return self._done(text, handle(self.core, _with_text(request, text)))
        self._pending[request.requester] = _Pending(text, self.core.clock.now() + CONFIRM_WINDOW)
        return Reply(f"→ {text}? reply yes within 2 minutes to do it")

    def _done(self, command: str, reply: Reply) -> Reply:
        mark = "✗" if reply.text.startswith(("⛔", "unknown", "⏭")) else "✓"
        return Reply(f"→ {command} {mark}\n{reply.text}", run_id=reply.run_id)


def _with_text(request: Request, text: str) -> Request:
    return Request(text, request.role, request.requester, request.watcher)
