"""Discord's side of delivering the outbox: where a message goes, how it is cut, what fails how.

The core's outbox worker owns the rules; this says what Discord's answers
mean. Every post carries a nonce (``enforce_nonce``): a post retried after
an uncertain answer is not posted twice, so every failure but a refusal is
tried again. A 403 (no access, no permission, DMs closed) will not heal by
retrying: the message is given up and the task that sent it is paused with
the reason, and the admins told. A 401 stops Discord delivery until the token
is fixed and moltbot restarted. The admins' alerts go to ``default_user_id``'s
DMs, or else to the heartbeat log channel.
"""

from __future__ import annotations

import logging

import httpx

from handlers import format as fmt
from moltbot.config.integrations import DiscordSettings
from moltbot.core import Core
from moltbot.core.outbox import ChannelUnusable, NotSent, Outgoing, Refused
from moltbot.discord_tasks.client import DiscordClient, DiscordError, DiscordForbidden, DiscordUnauthorized
from moltbot.records import OutboxMessage, Run
from moltbot.text import split_text

__all__ = ["CHANNEL", "DiscordChannel"]

log = logging.getLogger(__name__)
CHANNEL = "discord"
MAX_CHARACTERS = 2000


class DiscordChannel:
    name = CHANNEL

    def __init__(self, core: Core, client: DiscordClient, settings: DiscordSettings) -> None:
        self.core = core
        self.client = client
        self.settings = settings

    def alert_recipients(self) -> tuple[str, ...]:
        if self.settings.default_user_id:
            return (f"dm:{self.settings.default_user_id}",)
        if self.settings.heartbeat_log_channel_id:
            return (self.settings.heartbeat_log_channel_id,)
        return ()

    def render(self, message: OutboxMessage, run: Run | None) -> str:
        return fmt.outbox_text(message, run)

    def split(self, text: str) -> list[Outgoing]:
        return [Outgoing(part) for part in split_text(text, MAX_CHARACTERS)]

    def send(self, message: OutboxMessage, outgoing: Outgoing) -> None:
        try:
            address = message.address
            channel = self.client.open_dm(address[3:]) if address.startswith("dm:") else address
            self.client.create_message(channel, outgoing.text, nonce=f"o{message.id}")
        except DiscordUnauthorized as exc:
            raise ChannelUnusable(str(exc)) from exc
        except DiscordForbidden as exc:
            raise Refused(str(exc)) from exc
        except (DiscordError, httpx.HTTPError) as exc:  # the nonce makes the retry safe
            raise NotSent(str(exc)) from exc

    def refused(self, message: OutboxMessage, error: Refused) -> None:
        """Missing access or permissions will not heal by retrying every run: pause the task, say why."""
        run = self.core.run(message.run_id) if message.run_id else None
        if run is None:
            return
        reason = (
            f"⏸ {run.task_id} paused: Discord refused its message ({error}); fix the permissions, then resume"
        )
        self.core.pause(run.task_id, by="discord", reason=reason)
        self.core.alert(reason)
