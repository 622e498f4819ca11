"""Delivering the outbox to Signal, exactly once per message.

A row is marked ``sending`` before its request and ``sent`` after the 201.
What surely did not take effect (gateway unreachable, 5xx, 429) is tried
again later with backoff; what may have (a 400, no answer) is never sent
again but marked failed and listed by ``moltbot outbox``. A text too long for
one bubble becomes one row per part first, so a retry never repeats a part.
Alerts ("alerts"/"admins" rows) fan out to each admin, merged when several
are waiting.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from moltbot import store
from moltbot.config import SignalSettings
from moltbot.handlers import format as fmt
from moltbot.scheduler import Core
from moltbot.signal_chat.gateway import Gateway, GatewayUnavailable, SendRefused, SendUncertain
from moltbot.store import messages
from moltbot.store.messages import Outbox
from moltbot.text import split_text

__all__ = ["Delivery", "split_message"]

log = logging.getLogger(__name__)
MAX_BYTES = 2000  # what Signal shows inline (GATEWAY-NOTES 1.9)
MAX_PARTS = 4  # beyond this a reply travels as a text attachment
CHANNEL = "signal"


def split_message(text: str, limit: int = MAX_BYTES) -> list[str]:
    """Parts of at most ``limit`` UTF-8 bytes (what Signal shows inline)."""
    return split_text(text, limit, in_bytes=True)


class Delivery:
    """The outbox sender thread."""

    def __init__(
        self, core: Core, gateway: Gateway, settings: SignalSettings, sent: Callable[[int, str], None]
    ) -> None:
        self.core = core
        self.gateway = gateway
        self.settings = settings
        self.on_sent = sent  # told each delivered message's timestamp and text (echo protection)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signal-send", daemon=True)

    def start(self) -> None:
        for message_id in messages.recover_sending(self.core.clock.now()):
            log.warning(
                "outbox message %d may or may not have been delivered before a restart; not resent",
                message_id,
            )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5)  # a send still waiting is found "sending" at the next start: not repeated

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.deliver_due()
            except Exception:
                log.exception("outbox delivery failed; retrying shortly")
                self._wake.wait(5)
                continue
            due = messages.next_outbox_due((CHANNEL, "alerts"))
            timeout = None if due is None else max(0.0, (due - self.core.clock.now()).total_seconds())
            self._wake.wait(timeout)

    def deliver_due(self) -> None:
        now = self.core.clock.now()
        self._fan_out_alerts(now)
        for row in messages.due_outbox((CHANNEL,), now):
            if self._stopping.is_set():
                return
            self._deliver(row)

    def _fan_out_alerts(self, now: datetime) -> None:
        alerts = messages.due_outbox(("alerts",), now, limit=200)
        if not alerts:
            return
        texts = [self._text(row) for row in alerts]
        text = (
            texts[0]
            if len(texts) == 1
            else f"⚠ {len(texts)} alerts\n" + "\n".join(t.splitlines()[0] for t in texts)
        )
        with store.write_transaction():
            for recipient in self.settings.alert_recipients:
                messages.enqueue_message(CHANNEL, recipient, text, now)
            for row in alerts:
                messages.mark_sent(row.id, now)  # handed over to the per-admin rows

    def _text(self, row: Outbox) -> str:
        if row.kind == "run-finished" and row.run_id is not None:
            run = self.core.run(row.run_id)
            if run is None:
                return f"run {row.run_id} ended (pruned since)"
            text = fmt.finished_run(run)
            return f"⚠ scheduled run: {text}" if row.channel == "alerts" else text
        return row.text or ""

    def _deliver(self, row: Outbox) -> None:
        text = self._text(row)
        attachment = None
        parts = split_message(text)
        if len(parts) > MAX_PARTS:
            attachment, parts = text, [split_message(text)[0] + "\n… (the whole text is attached)"]
        if len(parts) > 1:
            # One row per part, in one transaction: a retry never repeats a part.
            with store.write_transaction():
                for part in parts:
                    messages.enqueue_message(
                        CHANNEL,
                        row.address,
                        part,
                        row.created_at,
                        reply_to=row.reply_to,
                        reply_author=row.reply_author,
                    )
                messages.mark_sent(row.id, self.core.clock.now())
            return
        messages.mark_sending(row.id)
        quote = (row.reply_to, row.reply_author) if row.reply_to and row.reply_author else None
        self.on_sent(0, parts[0])  # before the request: its echo may arrive before the answer
        try:
            timestamp = self.gateway.send(row.address, parts[0], quote, attachment=_as_attachment(attachment))
        except GatewayUnavailable as exc:
            until = self.core.clock.now() + messages.backoff(row.attempts + 1)
            messages.postpone(row.id, until, str(exc))
            log.warning(
                "outbox message %d not delivered yet (%s); next try at %s", row.id, exc, until.isoformat()
            )
            return
        except (SendRefused, SendUncertain) as exc:
            messages.mark_failed(row.id, str(exc))
            log.error("outbox message %d given up: %s", row.id, exc)
            return
        self.on_sent(timestamp, parts[0])
        messages.mark_sent(row.id, self.core.clock.now())


def _as_attachment(text: str | None) -> str | None:
    if text is None:
        return None
    return "data:text/plain;filename=moltbot.txt;base64," + base64.b64encode(text.encode()).decode()
