"""Signal's side of delivering the outbox: how a message is rendered, cut and sent, and what fails how.

The core's outbox worker (``moltbot/core/outbox.py``) owns the rules (marking,
backoff, never repeating a send that may have taken effect); this says what
the gateway's answers mean: unreachable, 5xx and 429 surely took no effect
(tried again later), a 400 is refused and a request that got no answer may
have been delivered (both given up, never repeated). A text longer than
``MAX_PARTS`` bubbles travels as an attachment with its first part as the
message. Each send's timestamp and text are told to the bridge, which
recognises our own replies when they come back (linked device).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from handlers import format as fmt
from moltbot.config.integrations import SignalSettings
from moltbot.core.outbox import MaybeSent, NotSent, Outgoing, Refused
from moltbot.records import OutboxMessage, Run
from moltbot.signal_chat.gateway import Gateway, GatewayUnavailable, SendRefused, SendUncertain
from moltbot.text import split_text

__all__ = ["CHANNEL", "SignalChannel", "split_message"]

CHANNEL = "signal"
MAX_BYTES = 2000  # what Signal shows inline (GATEWAY-NOTES 1.9)
MAX_PARTS = 4  # beyond this a reply travels as a text attachment
ATTACHED = "\n… (the whole text is attached)"


def split_message(text: str, limit: int = MAX_BYTES) -> list[str]:
    """Parts of at most ``limit`` UTF-8 bytes (what Signal shows inline)."""
    return split_text(text, limit, in_bytes=True)


class SignalChannel:
    name = CHANNEL

    def __init__(
        self,
        gateway: Gateway,
        settings: SignalSettings,
        sent: Callable[[int, str], None],
        people: Callable[[SignalSettings], SignalSettings] | None = None,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self.on_sent = sent  # told each sent message's timestamp (0: before the request) and text
        self._people = people  # the section with the paired people (core/people.py: with_paired)

    def alert_recipients(self) -> tuple[str, ...]:
        settings = self._people(self.settings) if self._people else self.settings
        return settings.alert_recipients

    def render(self, message: OutboxMessage, run: Run | None) -> str:
        return fmt.outbox_text(message, run)

    def split(self, text: str) -> list[Outgoing]:
        parts = split_message(text)
        if len(parts) > MAX_PARTS:
            first = split_message(text, MAX_BYTES - len(ATTACHED.encode()))[0]
            return [Outgoing(first + ATTACHED, attachment=text)]
        return [Outgoing(part) for part in parts]

    def send(self, message: OutboxMessage, outgoing: Outgoing) -> None:
        quote = (
            (message.reply_to, message.reply_author) if message.reply_to and message.reply_author else None
        )
        self.on_sent(0, outgoing.text)  # before the request: its echo may arrive before the answer
        try:
            timestamp = self.gateway.send(
                message.address, outgoing.text, quote, attachment=_as_data_uri(outgoing)
            )
        except GatewayUnavailable as exc:
            raise NotSent(str(exc)) from exc
        except SendRefused as exc:
            raise Refused(str(exc)) from exc
        except SendUncertain as exc:
            raise MaybeSent(str(exc)) from exc
        except RuntimeError as exc:  # the client was closed (shutdown): nothing went out
            raise NotSent(str(exc)) from exc
        self.on_sent(timestamp, outgoing.text)

    def refused(self, message: OutboxMessage, error: Refused) -> None:
        pass  # listed by `moltbot outbox`; nothing else to undo


def _as_data_uri(outgoing: Outgoing) -> str | None:
    if outgoing.attachment is None:
        return None
    encoded = base64.b64encode(outgoing.attachment.encode()).decode()
    return f"data:text/plain;filename=moltbot.txt;base64,{encoded}"
