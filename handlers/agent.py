"""Free text to commands, through a model that may only call the commands.

The model is offered one tool per command the sender's role allows (declared
once in commands.py), so it can do nothing a command could not; its choice
runs through the same ``handle`` with the same role check. Read-only choices
run at once ("→ status ✓" and the answer); mutating ones are proposed, bound
to the sender and the conversation they were proposed in (issue #12): only a
``yes`` from that sender there within two minutes runs one, anything else
they send there cancels it, and a newer proposal replaces it, saying so. A
model that is down or confused gets the short help instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers.commands import COMMANDS, allowed, closest_command, handle, parse, short_help
from moltbot.core import Core, Reply, Request

__all__ = ["CONFIRM_WINDOW", "Interpreter", "answers_a_proposal", "is_free_text"]

log = logging.getLogger(__name__)
CONFIRM_WINDOW = timedelta(minutes=2)
# Only an explicit yes confirms: "ok" or "y" are sent for other reasons too, and once ran a change.
YES = "yes"
NO = frozenset({"no", "n", "nope", "nein", "cancel", "never mind", "nevermind"})  # they only cancel
NOTHING_WAITING = "nothing is waiting for a yes here (a proposal is valid for 2 minutes, in its chat)"
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


def answers_a_proposal(text: str) -> bool:
    """``yes`` or a no: an answer to a proposal (or to none), never a question for the model."""
    word = _word(text)
    return word == YES or word in NO


def _word(text: str) -> str:
    return text.strip().lower().rstrip(".!")


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
class _Proposal:
    command: str
    expires: datetime


# Whose proposal, where: (requester, channel, chat address).
_Conversation = tuple[str, str, str]


class Interpreter:
    """One per transport; remembers the proposal waiting for a ``yes`` in each conversation.

    A proposal belongs to the sender it was made for in the chat it was made in: a ``yes`` from
    elsewhere does not reach it, and its result goes back to that chat. Only the transport's
    command worker calls it (one thread), so it needs no lock.
    """

    def __init__(self, core: Core, chat: Chat) -> None:
        self.core = core
        self.chat = chat
        self._proposals: dict[_Conversation, _Proposal] = {}

    def answer(self, request: Request, otherwise: Callable[[], Reply]) -> Reply:
        """The reply to a message that is not for the model (a command, a typo, a yes or a no).

        ``yes`` runs what waits in this conversation; a no cancels it and does nothing else;
        anything else cancels it too, said before ``otherwise()``, the message's own answer.
        """
        word = _word(request.text)
        if word == YES:
            proposal = self._take(request)
            if proposal is None:
                return Reply(NOTHING_WAITING)
            return self._done(proposal.command, handle(self.core, _with_text(request, proposal.command)))
        if word in NO:
            proposal = self._take(request)
            return Reply(f"✗ {proposal.command} cancelled" if proposal else "nothing to cancel here")
        return self.withdrawn(request, otherwise())

    def waiting(self, request: Request) -> bool:
        """Does a proposal wait for a yes in this conversation (not expired)?"""
        proposal = self._proposals.get(self._conversation(request))
        return proposal is not None and proposal.expires >= self.core.clock.now()

    def withdrawn(self, request: Request, reply: Reply) -> Reply:
        """``reply``, after the proposal waiting in this conversation (if any) is cancelled, said first."""
        proposal = self._take(request)
        return reply if proposal is None else _cancelled(proposal, reply)

    def interpret(self, request: Request) -> Reply:
        """Ask the model what the text means; run it or propose it. Slow: call outside transactions.

        A proposal waiting in this conversation is cancelled, or replaced by a new one (said so)."""
        waiting = self._take(request)
        reply = self._ask(request)
        if waiting is None:
            return reply
        if self._conversation(request) in self._proposals:
            return Reply(f"{reply.text} (it replaces {waiting.command}, which will not run)")
        return _cancelled(waiting, reply)

    def _ask(self, request: Request) -> Reply:
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
        expires = self.core.clock.now() + CONFIRM_WINDOW
        self._proposals[self._conversation(request)] = _Proposal(text, expires)
        return Reply(f"→ {text}? reply yes within 2 minutes to do it")

    def _take(self, request: Request) -> _Proposal | None:
        """Remove and return what waits in this conversation, unless it has expired."""
        proposal = self._proposals.pop(self._conversation(request), None)
        if proposal is None or proposal.expires < self.core.clock.now():
            return None
        return proposal

    @staticmethod
    def _conversation(request: Request) -> _Conversation:
        return request.requester, request.watcher.channel, request.watcher.address

    def _done(self, command: str, reply: Reply) -> Reply:
        mark = "✗" if reply.text.startswith(("⛔", "unknown", "⏭")) else "✓"
        return Reply(f"→ {command} {mark}\n{reply.text}", run_id=reply.run_id)


def _cancelled(proposal: _Proposal, reply: Reply) -> Reply:
    return Reply(f"✗ {proposal.command} cancelled\n{reply.text}", reply.run_id)


def _with_text(request: Request, text: str) -> Request:
    return Request(text, request.role, request.requester, request.watcher)
