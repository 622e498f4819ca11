"""Signal <-> moltbot: commands in, answers, run results and alerts out.

Three threads: the receiver (frames into a queue, receiver.py), the command
worker (here) and the outbox sender (delivery.py). A command is authorized,
de-duplicated, acted on through the handlers and answered in one
transaction, so a crash leaves it either untouched or fully done.

Who may command: ``allowed`` senders (admins of moltbot), ``viewers`` for
read-only commands, by ACI UUID or number, 1:1 or in an allowed group. Anyone
else gets no answer at all; the refusal is logged without the message's
content, and admins hear of refusals at most every ten minutes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from moltbot import store
from moltbot.config import SignalSettings
from moltbot.handlers.agent import YES, Interpreter, is_free_text
from moltbot.handlers.commands import Reply, Request, handle
from moltbot.scheduler import Core, Watcher
from moltbot.signal_chat.delivery import CHANNEL, Delivery
from moltbot.signal_chat.envelopes import Ignored, Inbound, classify
from moltbot.signal_chat.gateway import Gateway
from moltbot.signal_chat.receiver import Receiver
from moltbot.store import messages

__all__ = ["SignalBridge"]

log = logging.getLogger(__name__)
TYPING_REFRESH = 8.0  # Signal apps hide the indicator after a few seconds
STRANGER_ALERT_EVERY = timedelta(minutes=10)
_STOP = object()


class SignalBridge:
    def __init__(self, core: Core, settings: SignalSettings) -> None:
        self.core = core
        self.settings = settings
        self.gateway = Gateway(settings)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.receiver = Receiver(self.gateway, self.frames, core.clock.now, self._back_online)
        self.delivery = Delivery(core, self.gateway, settings, self._sent)
        # Echo protection (linked device): what we sent comes back as the account's own sync messages.
        self._own_sends: deque[int] = deque(maxlen=1000)  # their timestamps
        self._own_texts: deque[str] = deque(maxlen=100)  # and texts: the echo may beat the send's answer
        self._typing: dict[int, tuple[str, float]] = {}  # run id -> (chat, last refresh, monotonic)
        self._refused = 0
        self._refusal_alerted: datetime | None = None
        self._worker = threading.Thread(target=self._work, name="signal-commands", daemon=True)
        self.interpreter = _interpreter(core)  # free text, when an agent is configured

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        store.listen_for_outbox(self.delivery.wake)
        self.delivery.start()
        self._worker.start()
        self.receiver.start()
        allowed = len(self.settings.allowed)
        log.info("signal: bot %s, gateway %s, %d allowed", self.settings.number, self.settings.url, allowed)

    def stop(self) -> None:
        """Within ~15 s (systemd's stop timeout also covers the runs' grace period)."""
        self.receiver.stop()
        self.frames.put(_STOP)
        self._worker.join(5)
        store.listen_for_outbox(self.delivery.wake, listen=False)
        self.delivery.stop()
        self.gateway.close()

    # --- commands ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            try:
                frame = self.frames.get(timeout=TYPING_REFRESH if self._typing else None)
            except queue.Empty:
                frame = None
            if frame is _STOP:
                return
            if frame is not None:
                try:
                    self.handle_frame(frame)
                except Exception:
                    log.exception("signal: a received message could not be handled")
            self._refresh_typing()

    def handle_frame(self, frame: Any) -> None:
        found = classify(frame, self.settings, set(self._own_sends))
        if isinstance(found, Ignored):
            log.debug("signal: ignored a frame: %s", found.reason)
            return
        if self.settings.linked_device and found.text in self._own_texts:
            log.debug("signal: ignored the echo of our own message")
            return
        role = self._role(found)
        if role is None:
            self._refuse(found)
            return
        now = self.core.clock.now()
        age = now.timestamp() - found.timestamp / 1000
        if age > self.settings.max_command_age_seconds:
            limit = self.settings.max_command_age_seconds
            log.info(
                "signal: ignored a command from %s sent %.0f s ago (max %g s)", found.sender_uuid, age, limit
            )
            return
        watcher = Watcher(CHANNEL, found.chat, found.timestamp, found.sender_number or found.sender_uuid)
        request = Request(found.text, role, f"signal:{found.sender_uuid}", watcher)
        if self.interpreter is not None and not found.edit and self._is_free_text(found.text):
            if messages.seen(CHANNEL, found.sender_uuid, found.timestamp):
                return
            answer = self.interpreter.interpret(request)  # slow: outside any transaction
            with store.write_transaction():
                if messages.accept_inbound(
                    CHANNEL, found.sender_uuid, found.timestamp, found.chat, found.text, now
                ):
                    self.core.post(watcher, answer.text)
            self._watch(answer, found)
            return
        with store.write_transaction():
            sender, sent_at = found.sender_uuid, found.timestamp
            if messages.accept_inbound(CHANNEL, sender, sent_at, found.chat, found.text, now) is None:
                log.info("signal: command %d from %s seen before; not repeated", sent_at, sender)
                return
            if found.edit:
                self.core.post(watcher, "edits are ignored; send the command again")
                return
            try:
                reply = (self.interpreter and self.interpreter.confirmation(request)) or handle(
                    self.core, request
                )
            except Exception:
                log.exception("signal: the command %r failed inside moltbot", found.text[:40])
                self.core.post(watcher, "⚠ that failed inside moltbot (see its log)")
                return
            self.core.post(watcher, reply.text)
        self._watch(reply, found)

    def _is_free_text(self, text: str) -> bool:
        return text.strip().lower() not in YES and is_free_text(text)

    def _watch(self, reply: Reply, found: Inbound) -> None:
        """A run was started: 👀 on the command, and the typing indicator while it runs."""
        if reply.run_id is not None:
            self._typing[reply.run_id] = (found.chat, 0.0)
            self.gateway.react(found.chat, "👀", found.sender_number or found.sender_uuid, found.timestamp)

    def _role(self, found: Inbound) -> str | None:
        if self.settings.linked_device:
            return "admin"  # envelopes.classify let only the account's own sends through
        ids = {found.sender_uuid, found.sender_number}
        if ids & set(self.settings.allowed):
            return "admin"
        if ids & set(self.settings.viewers):
            return "viewer"
        return None

    def _refuse(self, found: Inbound) -> None:
        """No reply, nothing runs; a log line (never the content) and, now and then, an alert."""
        number = found.sender_number or "number hidden"
        log.warning(
            "signal: refused a message from %s (%s): not an allowed sender", found.sender_uuid, number
        )
        self._refused += 1
        now = self.core.clock.now()
        if self._refusal_alerted is None or now - self._refusal_alerted >= STRANGER_ALERT_EVERY:
            who = found.sender_number or found.sender_uuid
            messages.enqueue_message(
                "alerts",
                "admins",
                f"⚠ ignored {self._refused} message(s) from senders not allowed (last: {who})",
                now,
            )
            self._refused, self._refusal_alerted = 0, now

    # --- feedback ---------------------------------------------------------------------

    def _refresh_typing(self) -> None:
        now = time.monotonic()
        for run_id, (chat, refreshed) in list(self._typing.items()):
            run = self.core.run(run_id)
            if run is None or run.status not in store.ACTIVE_RUN_STATES:
                del self._typing[run_id]
                self.gateway.typing(chat, on=False)
            elif now - refreshed >= TYPING_REFRESH - 0.5:
                self.gateway.typing(chat, on=True)
                self._typing[run_id] = (chat, now)

    def _sent(self, timestamp: int, text: str) -> None:
        if timestamp:
            self._own_sends.append(timestamp)
        else:
            self._own_texts.append(text)

    def _back_online(self, since: datetime) -> None:
        local = since.astimezone(self.core.settings.timezone).strftime("%H:%M")
        messages.enqueue_message(
            "alerts",
            "admins",
            f"moltbot is back online; resend anything you sent since {local}",
            self.core.clock.now(),
        )


def _interpreter(core: Core) -> Interpreter | None:
    settings = core.settings.ollama
    if settings is None:
        return None
    from moltbot.agents.ollama import OllamaClient

    client = OllamaClient(settings.host, settings.model, settings.timeout_seconds)
    return Interpreter(core, lambda messages, tools: client.chat(messages, tools))
