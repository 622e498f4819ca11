"""The Tasks Channel <-> the core: read tasks, hand them to the daemon, keep the messages current.

The sync thread reads the whole channel every ``poll_seconds``, hands the
tasks to the daemon (they run on time whatever the poll interval: it only
bounds how soon new or changed messages are seen), and brings the messages
up to date after runs: a one-time task's message is deleted, a recurring
one's edited in place with its new ``next_run`` (header and JSON), or, when
Discord refuses the edit (not the author, 30046), reposted first and deleted
after, so a failure in between loses nothing; the superseded message is
remembered (``core.remember``) until it is gone. Messages to Discord go
through the core's outbox (``delivery.py`` says how Discord sends them).
The channel is up while its reads succeed: one that fails (Discord or the
network) shows it reconnecting, a refused token down; a bug of ours ends
the pass and the supervisor logs it and starts again after its backoff.

Which occurrence ran is the core's business: a run claims its occurrence in
the transaction that advances ``next_run``, and re-reading a message whose
edit failed never winds it back (its schedule did not change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from moltbot.config.integrations import DiscordSettings
from moltbot.config.spec import TaskSpec
from moltbot.core import Core
from moltbot.core.delivery import Delivery
from moltbot.discord_tasks.client import (
    DiscordClient,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordUnauthorized,
)
from moltbot.discord_tasks.delivery import CHANNEL, DiscordChannel
from moltbot.discord_tasks.message import DiscordTask, InvalidTask, parse_message, render_message
from moltbot.discord_tasks.tasks import task_id_of, to_spec
from moltbot.threads import Supervised, describe

__all__ = ["DiscordBridge"]

log = logging.getLogger(__name__)
OfferSpecs = Callable[[list[TaskSpec]], None]  # hands the channel's tasks to the daemon loop


def _superseded(message_id: str) -> str:
    return f"discord_superseded:{message_id}"


def _rejected(message_id: str) -> str:
    return f"discord_rejected:{message_id}"


class DiscordBridge:
    def __init__(self, core: Core, settings: DiscordSettings, delivery: Delivery, offer: OfferSpecs) -> None:
        self.core = core
        self.settings = settings
        self.offer = offer
        self.client = DiscordClient(settings.token, settings.api_base)
        delivery.add(DiscordChannel(core, self.client, settings))
        self._sync = Supervised("discord-sync", self._sync_pass, core.health)

    def start(self) -> None:
        self.core.health.channel_connecting(CHANNEL)
        self._sync.start()

    def stop(self) -> None:
        self._sync.stop()

    def close(self) -> None:
        self.client.close()

    # --- sync ---------------------------------------------------------------------------

    def _sync_pass(self) -> None:
        health = self.core.health
        try:
            self.sync_once()
        except DiscordUnauthorized as exc:
            log.error("discord: %s; Discord work stops until the token is fixed and moltbot restarted", exc)
            health.channel_down(CHANNEL, str(exc))
            self.core.alert(f"⚠ Discord refused the bot token: {exc}")
            self._sync.stopping.set()  # this thread's work ends here
            return
        except (DiscordError, httpx.HTTPError) as exc:
            log.warning("discord: reading the Tasks Channel failed (%s); trying again next poll", exc)
            health.channel_lost(CHANNEL, str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug of ours: the supervisor logs it and starts again
            health.channel_lost(CHANNEL, describe(exc))
            raise
        else:
            health.channel_connected(CHANNEL)
        self._sync.stopping.wait(self.settings.poll_seconds)

    def sync_once(self) -> None:
        channel = self.settings.tasks_channel_id
        tasks = []
        for message in self.client.all_messages(channel):
            if self.core.recall(_superseded(message["id"])):
                self.client.delete_message(channel, message["id"])  # reposted already: never a task again
                self.core.remember(_superseded(message["id"]), None)
                continue
            task = self._read(message)
            if task is not None:
                tasks.append(task)
        self.offer([to_spec(task, self.settings.timezone) for task in tasks if task.active])
        for task in tasks:
            self._bring_up_to_date(task)

    def _read(self, message: dict[str, object]) -> DiscordTask | None:
        message_id = str(message["id"])
        author = message.get("author")
        author_id = str(author.get("id")) if isinstance(author, dict) else None
        try:
            return parse_message(
                message_id, str(message.get("content") or ""), author_id, self.settings.timezone
            )
        except InvalidTask as error:
            content = str(message.get("content"))
            if self.core.recall(_rejected(message_id)) != content:  # said once per version of the message
                self.core.remember(_rejected(message_id), content)
                log.warning("discord: %s", error)
                self.core.alert(f"⚠ {error}")
            return None

    def _bring_up_to_date(self, task: DiscordTask) -> None:
        row = self.core.task(task_id_of(task.message_id))
        if row is None or row.current_run_id is not None or row.last_finished is None:
            return  # not registered yet, running, or not run yet
        channel = self.settings.tasks_channel_id
        if task.one_time:
            if row.next_run is None:
                self.client.delete_message(channel, task.message_id)  # False: already gone, fine
            return
        if row.next_run is None or row.next_run <= task.next_run:
            return  # the message is current
        content = render_message(task, row.next_run, self.settings.timezone)
        try:
            self.client.edit_message(channel, task.message_id, content)
        except DiscordNotFound:
            return  # deleted meanwhile: handled (its task goes with the next read)
        except DiscordForbidden:
            self._repost(task, content, row.next_run)
        except DiscordError as error:
            if error.code != 30046:  # too many edits of an old message
                raise
            self._repost(task, content, row.next_run)

    def _repost(self, task: DiscordTask, content: str, next_run: datetime) -> None:
        """Post the new message first, then delete the old one: a failure between loses nothing."""
        channel = self.settings.tasks_channel_id
        self.client.create_message(
            channel, content, nonce=f"t{task.message_id[-12:]}{int(next_run.timestamp())}"
        )
        self.core.remember(_superseded(task.message_id), "1")
        self.client.delete_message(channel, task.message_id)
        self.core.remember(_superseded(task.message_id), None)
