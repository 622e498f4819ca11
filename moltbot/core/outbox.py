"""Delivering one chat channel's outbox, exactly once per message.

The worker owns the rules; the channel (Signal, Discord) only says how to
render, split and send, and what its errors mean by raising one of:

- ``NotSent``: surely not delivered (unreachable, 5xx, 429, or a retry the
  channel makes safe itself, like Discord's nonce): tried again after
  ``retries.OUTBOX_WAIT``;
- ``MaybeSent``: the request went out and no clear answer came: it may have
  been delivered, so it is marked failed and never sent again;
- ``Refused``: refused for good (a bad request, no permission): marked failed,
  and the channel's ``refused`` may act on it;
- ``ChannelUnusable``: the channel cannot send at all (a revoked token): the
  message waits, and so does the worker, until the daemon restarts; the
  health board shows the channel down.

A row is marked ``sending`` before its request and ``sent`` after it; a row a
crash left ``sending`` is marked failed at the next start (``core/delivery.py``:
it may have been delivered). A text too long for one message becomes one row
per part first, so a retry never repeats a part. The admins' alerts waiting
together go out merged, one row per recipient.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from moltbot import retries, store
from moltbot.clock import Clock
from moltbot.core.health import HealthBoard
from moltbot.records import OutboxMessage, Run, Watcher
from moltbot.threads import Supervised

__all__ = [
    "ChannelUnusable",
    "DeliveryChannel",
    "MaybeSent",
    "NotSent",
    "OutboxWorker",
    "Outgoing",
    "Refused",
]

log = logging.getLogger(__name__)


class NotSent(Exception):
    """Surely not delivered: try again after a backoff."""


class ChannelUnusable(NotSent):
    """The channel cannot send anything until it is fixed and the daemon restarted."""


class MaybeSent(Exception):
    """It may have been delivered: never sent again."""


class Refused(Exception):
    """Refused for good."""


@dataclass(frozen=True)
class Outgoing:
    """What one request sends: a text, and the whole text attached when it had to be cut."""

    text: str
    attachment: str | None = None


class DeliveryChannel(Protocol):
    """A chat channel's side of delivery."""

    @property
    def name(self) -> str: ...  # the outbox's channel column: "signal", "discord"

    def alert_recipients(self) -> tuple[str, ...]:
        """The addresses that get the admins' alerts on this channel (none: it takes no alerts)."""
        ...

    def render(self, message: OutboxMessage, run: Run | None) -> str:
        """The message's text; ``run`` is the run a run-finished message is about (None: pruned)."""
        ...

    def split(self, text: str) -> list[Outgoing]:
        """The requests a text needs (one, unless it is too long for one message)."""
        ...

    def send(self, message: OutboxMessage, outgoing: Outgoing) -> None:
        """One request; raises NotSent, MaybeSent, Refused or ChannelUnusable when it fails."""
        ...

    def refused(self, message: OutboxMessage, error: Refused) -> None:
        """A message was refused for good (after it is marked failed)."""
        ...


class OutboxWorker:
    """One channel's sender: a supervised thread woken by every commit that queues a message."""

    def __init__(self, channel: DeliveryChannel, clock: Clock, health: HealthBoard) -> None:
        self.channel = channel
        self.clock = clock
        self.health = health
        self.unusable: str | None = None  # why the channel cannot send (it waits for a restart)
        self._wake = threading.Event()
        self._thread = Supervised(f"{channel.name}-send", self._one_pass, health)

    def start(self) -> None:
        store.listen_for_outbox(self.wake)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Within ~5 s: a send still waiting is found "sending" at the next start, and not repeated."""
        store.listen_for_outbox(self.wake, listen=False)
        self._thread.stopping.set()
        self._wake.set()
        self._thread.stop()

    def _one_pass(self) -> None:
        self._wake.clear()
        if self.unusable is None:
            self.deliver_due()
        due = None if self.unusable else store.next_outbox_due(self.channel.name)
        timeout = None if due is None else max(0.0, (due - self.clock.now()).total_seconds())
        self._wake.wait(timeout)

    def deliver_due(self) -> None:
        """One pass: hand the alerts to their recipients, then send what is due."""
        now = self.clock.now()
        self._hand_alerts_to_recipients(now)
        for message in store.due_outbox(self.channel.name, now):
            if self._thread.stopping.is_set() or self.unusable:
                return
            if message.address != store.ADMINS:  # came in meanwhile: handed over in the next pass
                self._deliver(message)

    def _hand_alerts_to_recipients(self, now: datetime) -> None:
        alerts = store.due_outbox(self.channel.name, now, limit=200, address=store.ADMINS)
        if not alerts:
            return
        texts = [self.channel.render(message, _run_of(message)) for message in alerts]
        merged = texts[0] if len(texts) == 1 else f"⚠ {len(texts)} alerts\n" + "\n".join(map(_gist, texts))
        recipients = self.channel.alert_recipients()
        if not recipients:
            log.warning("%s: no one to alert; dropped: %s", self.channel.name, merged)
        replacements = [(Watcher(self.channel.name, who), merged, "text", None) for who in recipients]
        store.hand_over([message.id for message in alerts], replacements, now)

    def _deliver(self, message: OutboxMessage) -> None:
        name = self.channel.name
        try:
            parts = self.channel.split(self.channel.render(message, _run_of(message)))
        except Exception as exc:  # a bug of ours: this message is given up, the others go on
            store.mark_failed(message.id, f"internal error: {exc!r}")
            log.exception("%s: outbox message %d could not be prepared", name, message.id)
            return
        if len(parts) > 1:
            # One row per part, in one transaction: a retry never repeats a part.
            replacements = [(message.watcher, part.text, "text", None) for part in parts]
            store.hand_over([message.id], replacements, self.clock.now())
            return
        if not store.mark_sending(message.id):
            return  # another node took it between the query and now
        try:
            self.channel.send(message, parts[0])
        except ChannelUnusable as exc:
            store.postpone(message.id, self.clock.now(), str(exc))
            self.unusable = str(exc)
            self.health.channel_down(name, str(exc))
            log.error("%s: cannot send anything until fixed and restarted: %s", name, exc)
        except NotSent as exc:
            wait = timedelta(seconds=retries.delay(retries.OUTBOX_WAIT, message.attempts + 1))
            until = self.clock.now() + wait
            store.postpone(message.id, until, str(exc))
            log.warning(
                "%s: outbox message %d not delivered yet (%s); next try at %s", name, message.id, exc, until
            )
        except (MaybeSent, Refused) as exc:
            store.mark_failed(message.id, str(exc))
            log.error("%s: outbox message %d given up: %s", name, message.id, exc)
            if isinstance(exc, Refused):
                try:
                    self.channel.refused(message, exc)
                except Exception:
                    log.exception("%s: acting on the refusal of message %d failed", name, message.id)
        except Exception as exc:  # a bug of ours: it may have gone out, so never again
            store.mark_failed(message.id, f"internal error: {exc!r}")
            log.exception("%s: outbox message %d given up after an internal error", name, message.id)
        else:
            store.mark_sent(message.id, self.clock.now())


def _gist(alert: str) -> str:
    """An alert in a merged message: its first line (what happened) and its last, which says what
    to do next (``logs:backup …``, a question's answers); what is between waits for ``logs``."""
    lines = alert.strip().splitlines() or [""]
    return "\n".join(lines[:1] + lines[-1:]) if len(lines) > 1 else lines[0]


def _run_of(message: OutboxMessage) -> Run | None:
    return store.get_run(message.run_id) if message.kind == "run-finished" and message.run_id else None
