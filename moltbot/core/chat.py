"""Chat in the core, channel-neutral: commands received, messages promised, alerts for the admins.

A transport (Signal, Discord) hands a received command to ``accept`` with the
handler that answers it: the command is recorded (de-duplicated on its
channel, sender and timestamp), handled and its answer queued in one
transaction, so a crash leaves it either untouched or fully done and a replay
never runs it twice. Every message moltbot promises (answers, run results,
alerts) is written to the outbox before it is sent; ``core/outbox.py``
delivers it, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from moltbot import store
from moltbot.clock import Clock
from moltbot.records import OutboxMessage, Watcher

__all__ = ["Chat", "ReceivedCommand", "Reply", "Request"]

FAILED_INSIDE = "⚠ that failed inside moltbot (see its log)"


class Request(NamedTuple):
    """A command as the handlers see it."""

    text: str
    role: str  # "admin" | "viewer"
    requester: str  # recorded as a run's requested_by, e.g. "signal:<uuid>"
    watcher: Watcher  # where the answers go


class Reply(NamedTuple):
    """A handler's answer."""

    text: str
    run_id: int | None = None  # a run started or stopped: its result follows when it ends


class ReceivedCommand(NamedTuple):
    """A message received on a chat channel; (channel, sender, sent_at) is its identity."""

    channel: str
    sender: str  # the sender's stable id (Signal: the ACI UUID)
    sent_at: int  # the sender's timestamp in ms
    chat: str  # where replies go
    text: str


class Chat:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def seen(self, command: ReceivedCommand) -> bool:
        """Was this command received before (a replay)? For work that must not start twice."""
        return store.seen(command.channel, command.sender, command.sent_at)

    def accept(
        self, command: ReceivedCommand, watcher: Watcher, respond: Callable[[], Reply]
    ) -> Reply | None:
        """Record ``command``, ``respond`` to it and queue the answer to ``watcher``, all or nothing;
        None when it was received before (nothing is done again).

        ``respond`` runs inside the transaction: what it changes commits with the
        command's record. If it fails, its changes are undone and the sender is told.
        """
        now = self.clock.now()
        with store.write_transaction():
            if not store.accept_inbound(
                command.channel, command.sender, command.sent_at, command.chat, command.text, now
            ):
                return None
            try:
                with store.write_transaction():  # a savepoint: a failing handler leaves nothing behind
                    reply = respond()
            except Exception:
                import logging  # here: `moltbot status` goes through this module and never logs (~3 ms)

                log = logging.getLogger(__name__)
                log.exception("%s: the command %r failed inside moltbot", command.channel, command.text[:40])
                reply = Reply(FAILED_INSIDE)
            store.enqueue_message(watcher, reply.text, now)
        return reply

    def post(self, watcher: Watcher, text: str, run_id: int | None = None) -> int:
        """Queue a message (written before it is sent); its id. ``run_id``: the run it is about."""
        return store.enqueue_message(watcher, text, self.clock.now(), run_id=run_id)

    def alert(self, text: str) -> None:
        """Tell the admins, on every chat channel that takes alerts (the daemon hands it over, or
        logs it when no channel is configured)."""
        store.enqueue_message(Watcher(store.ALERTS, store.ADMINS), text, self.clock.now())

    def pending(self) -> list[OutboxMessage]:
        """Messages not delivered yet, and those given up (``moltbot outbox``)."""
        return store.pending_outbox()
