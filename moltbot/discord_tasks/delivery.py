"""Discord's side of delivering the outbox: where a message goes, how it is cut, what fails how.

The core's outbox worker owns the rules; this says what Discord's answers
mean. Every post carries a nonce (``enforce_nonce``), so a post retried after
an uncertain answer is not posted twice, as long as the retry comes within
Discord's nonce window (a few minutes): an uncertain failure is retried
within ``NONCE_WINDOW`` of the message's creation, and given up after it.
Surely-not-sent failures (unreachable, 429, 5xx) are always tried again. Any
other 4xx will not heal by retrying: the message is given up, and for a
missing access or an unknown channel (403, 404) the task that sent it is
paused with the reason, and the admins told. A 401 stops Discord delivery
until the token is fixed and moltbot restarted. The admins' alerts go to
``default_user_id``'s DMs, or else to the heartbeat log channel.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from handlers import format as fmt
from moltbot.config.integrations import DiscordSettings
from moltbot.core import Core
from moltbot.core.outbox import ChannelUnusable, MaybeSent, NotSent, Outgoing, Refused
from moltbot.discord_tasks.client import (
    DiscordClient,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordUnauthorized,
)
from moltbot.records import OutboxMessage, Run
from moltbot.text import split_text

__all__ = ["CHANNEL", "DiscordChannel"]

log = logging.getLogger(__name__)
CHANNEL = "discord"
MAX_CHARACTERS = 2000
NONCE_WINDOW = timedelta(minutes=2)  # Discord remembers a nonce for "a few minutes"


class DiscordChannel:
    name = CHANNEL

    def __init__(self, core: Core, client: DiscordClient, settings: DiscordSettings) -> None:
        self.core = core
        self.client = client
        self.settings = settings

    def alert_recipients(self) -> tuple[str, ...]:
        if self.client.unauthorized:  # the token was refused: no alert can go this way
            return ()
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
        except DiscordError as exc:
            if exc.status == 429 or exc.status >= 500:
                raise NotSent(str(exc)) from exc
            raise Refused(str(exc)) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"Discord unreachable: {exc}") from exc
        except httpx.HTTPError as exc:  # it went out, and no answer came back
            if self.core.clock.now() - message.created_at > NONCE_WINDOW:
                raise MaybeSent(f"no answer from Discord: {exc!r}") from exc
            raise NotSent(f"no answer from Discord: {exc!r}") from exc  # the nonce makes this retry safe
        except RuntimeError as exc:  # the client was closed (shutdown): nothing went out
            raise NotSent(str(exc)) from exc

    def refused(self, message: OutboxMessage, error: Refused) -> None:
        """Missing access or an unknown channel will not heal by retrying every run: pause the
        task that sent it (once), and say why."""
        if not isinstance(error.__cause__, DiscordForbidden | DiscordNotFound):
            return
        run = self.core.run(message.run_id) if message.run_id else None
        task = self.core.task(run.task_id) if run else None
        if run is None or task is None or task.paused_by == "discord":
            return
        reason = (
            f"⏸ {run.task_id} paused: Discord refused its message ({error}); fix the permissions, then resume"
        )
        if not task.removed:
            self.core.pause(run.task_id, by="discord", reason=reason)
        self.core.alert(reason)
