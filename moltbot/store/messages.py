"""Chat traffic in the store: the inbox, the outbox and who waits for a run.

Channel-neutral on purpose (the core knows nothing about Signal): a channel
is a name ("signal"; "alerts" for whoever delivers alerts), an address is
whatever that channel sends to. Every command received is written here
before it is acted on, and every message moltbot promises is written here
before it is sent, so neither a crash nor a gateway outage loses or repeats
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import AutoField, IntegerField, IntegrityError, TextField

from moltbot.store import note_outbox_write, write_transaction
from moltbot.store.orm import BaseModel, UTCDateTimeField, database

__all__ = [
    "Inbox",
    "Outbox",
    "RunWatch",
    "accept_inbound",
    "due_outbox",
    "enqueue_message",
    "mark_failed",
    "mark_sending",
    "mark_sent",
    "pending_outbox",
    "postpone",
    "seen",
    "watch_run",
]


class Inbox(BaseModel):
    """A command as received; (channel, sender, sent_at) is its identity.

    Recorded in the transaction that acts on it and queues its answer, so a
    command is either fully handled or not at all, and never twice.
    """

    id = AutoField()
    channel = TextField()
    sender = TextField()  # the sender's stable id (Signal: the ACI UUID)
    sent_at = IntegerField()  # the sender's timestamp in ms, the message's id
    chat = TextField()  # where replies go
    text = TextField()
    received_at = UTCDateTimeField()

    class Meta:
        indexes = ((("channel", "sender", "sent_at"), True),)


class Outbox(BaseModel):
    """A message to deliver: written first, then sent, then marked."""

    id = AutoField()
    channel = TextField()
    address = TextField()
    kind = TextField()  # text | run-finished
    text = TextField(null=True)
    run_id = IntegerField(null=True)  # run-finished: formatted when sent, from the run's row
    reply_to = IntegerField(null=True)  # the command's sent_at, to quote it
    reply_author = TextField(null=True)
    created_at = UTCDateTimeField()
    due_at = UTCDateTimeField()
    attempts = IntegerField(default=0)
    status = TextField(default="pending")  # pending | sending | sent | failed
    sent_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)

    class Meta:
        indexes = ((("status", "due_at"), False),)


class RunWatch(BaseModel):
    """A chat waiting for a run's end; the store turns it into an outbox row then."""

    id = AutoField()
    run_id = IntegerField(index=True)
    channel = TextField()
    address = TextField()
    reply_to = IntegerField(null=True)
    reply_author = TextField(null=True)


MODELS = [Inbox, Outbox, RunWatch]


def create_tables() -> None:
    database.create_tables(MODELS)


@dataclass(frozen=True)
class Inbound:
    id: int
    channel: str
    sender: str
    sent_at: int
    chat: str
    text: str


def accept_inbound(
    channel: str, sender: str, sent_at: int, chat: str, text: str, now: datetime
) -> Inbound | None:
    """Record a command; None when this (sender, timestamp) was seen before (a replay)."""
    try:
        with write_transaction():
            row = Inbox.create(
                channel=channel, sender=sender, sent_at=sent_at, chat=chat, text=text, received_at=now
            )
    except IntegrityError:
        return None
    return Inbound(row.id, channel, sender, sent_at, chat, text)


def seen(channel: str, sender: str, sent_at: int) -> bool:
    """Was this message recorded before (a replay)?"""
    query = Inbox.select().where(
        (Inbox.channel == channel) & (Inbox.sender == sender) & (Inbox.sent_at == sent_at)
    )
    return bool(query.exists())


def enqueue_message(
    channel: str,
    address: str,
    text: str | None,
    now: datetime,
    *,
    kind: str = "text",
    run_id: int | None = None,
    reply_to: int | None = None,
    reply_author: str | None = None,
) -> int:
    with write_transaction():
        row = Outbox.create(
            channel=channel,
            address=address,
            kind=kind,
            text=text,
            run_id=run_id,
            reply_to=reply_to,
            reply_author=reply_author,
            created_at=now,
            due_at=now,
        )
        note_outbox_write()
    return int(row.id)


def watch_run(
    run_id: int, channel: str, address: str, reply_to: int | None = None, reply_author: str | None = None
) -> None:
    """Deliver the run's result to ``address`` when it ends (in the transaction that records the end)."""
    with write_transaction():
        RunWatch.create(
            run_id=run_id, channel=channel, address=address, reply_to=reply_to, reply_author=reply_author
        )


def due_outbox(channels: tuple[str, ...], now: datetime, limit: int = 50) -> list[Outbox]:
    return list(
        Outbox.select()
        .where((Outbox.status == "pending") & (Outbox.due_at <= now) & (Outbox.channel.in_(channels)))
        .order_by(Outbox.id)
        .limit(limit)
    )


def next_outbox_due(channels: tuple[str, ...]) -> datetime | None:
    row = (
        Outbox.select(Outbox.due_at)
        .where((Outbox.status == "pending") & (Outbox.channel.in_(channels)))
        .order_by(Outbox.due_at)
        .first()
    )
    return row.due_at if row else None


def pending_outbox() -> list[Outbox]:
    """Everything not delivered yet, and what was given up (for ``moltbot outbox``)."""
    return list(Outbox.select().where(Outbox.status != "sent").order_by(Outbox.id))


def mark_sending(message_id: int) -> None:
    """Before the request: after a crash, a row left here may have been delivered."""
    with write_transaction():
        Outbox.update(status="sending", attempts=Outbox.attempts + 1).where(Outbox.id == message_id).execute()


def mark_sent(message_id: int, now: datetime) -> None:
    with write_transaction():
        Outbox.update(status="sent", sent_at=now, last_error=None).where(Outbox.id == message_id).execute()


def postpone(message_id: int, until: datetime, error: str) -> None:
    """The request surely did not take effect: try again later."""
    with write_transaction():
        Outbox.update(status="pending", due_at=until, last_error=error).where(
            Outbox.id == message_id
        ).execute()


def mark_failed(message_id: int, error: str) -> None:
    """Given up: refused, or it may have been delivered (never sent twice)."""
    with write_transaction():
        Outbox.update(status="failed", last_error=error).where(Outbox.id == message_id).execute()


def recover_sending(now: datetime) -> list[int]:
    """Rows a crash left between request and answer: they may have been delivered, so
    they are not sent again; they are marked failed and listed by ``moltbot outbox``."""
    with write_transaction():
        rows = [row.id for row in Outbox.select(Outbox.id).where(Outbox.status == "sending")]
        if rows:
            Outbox.update(
                status="failed", last_error="the daemon stopped while sending; it may have been delivered"
            ).where(Outbox.id.in_(rows)).execute()
    return rows


def backoff(attempts: int) -> timedelta:
    """Between tries of an undelivered message: 2 s doubling up to 5 min."""
    return timedelta(seconds=min(300, 2 ** max(1, attempts)))


def prune(before: datetime) -> None:
    """Forget delivered messages and handled commands older than ``before`` (failed ones stay listed)."""
    with write_transaction():
        Outbox.delete().where((Outbox.status == "sent") & (Outbox.created_at < before)).execute()
        Inbox.delete().where(Inbox.received_at < before).execute()
