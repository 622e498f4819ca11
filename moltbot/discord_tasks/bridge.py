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

Who may command moltbot through the channel, and how much, is ``policy.py``'s:
messages of other authors are never read, tasks it refuses never scheduled.
What a pass has to say (a task refused, strangers in the channel) is logged
and goes to the admins as one alert, each thing once: remembered when told,
so a pass that fails before telling tells it again next time.

Which occurrence ran is the core's business: a run claims its occurrence in
the transaction that advances ``next_run``, and re-reading a message whose
edit failed never winds it back (its schedule did not change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import httpx

from moltbot.config.integrations import DiscordSettings
from moltbot.config.settings import Settings
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
from moltbot.discord_tasks.policy import STRANGER_REPORT_EVERY, author_of, over_the_cap, refusal
from moltbot.discord_tasks.tasks import task_id_of, to_spec
from moltbot.threads import Supervised, describe

__all__ = ["DiscordBridge"]

log = logging.getLogger(__name__)
OfferSpecs = Callable[[list[TaskSpec]], None]  # hands the channel's tasks to the daemon loop
NOTICES_SHOWN = 5  # in one alert; the log has every one


class Notice(NamedTuple):
    """Something to tell the admins once: ``key`` remembered as ``value`` when told."""

    key: str
    value: str
    text: str


def _superseded(message_id: str) -> str:
    return f"discord_superseded:{message_id}"


def _rejected(message_id: str) -> str:
    return f"discord_rejected:{message_id}"


def _unrenderable(message_id: str) -> str:
    return f"discord_unrenderable:{message_id}"


def _stranger(author_id: str) -> str:
    return f"discord_stranger:{author_id}"


class DiscordBridge:
    def __init__(self, core: Core, settings: DiscordSettings, delivery: Delivery, offer: OfferSpecs) -> None:
        self.core = core
        self.settings = settings
        self.offer = offer
        self.client = DiscordClient(settings.token, settings.api_base)
        delivery.add(DiscordChannel(core, self.client, settings))
        self._sync = Supervised("discord-sync", self._sync_pass, core.health)
        self._own_id: str | None = None  # the bot's user id, asked once

    def start(self) -> None:
        self.core.health.channel_connecting(CHANNEL)
        self._sync.start()

    def stop(self) -> None:
        self._sync.stop()

    def close(self) -> None:
        self.client.close()

    def settings_changed(self, settings: Settings) -> None:
        """Nothing to take up: a Discord task's run reads ``[letta]`` and ``[ollama]`` at its start."""

    # --- sync ---------------------------------------------------------------------------

    def _sync_pass(self) -> None:
        health = self.core.health
        if not self.core.leads():  # another node syncs the channel (cluster.py)
            self._sync.stopping.wait(self.settings.poll_seconds)
            return
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
        if self._own_id is None:
            self._own_id = self.client.own_id()
        authors = {self._own_id, *self.settings.allowed_authors}
        notices: list[Notice] = []
        strangers: dict[str, int] = {}  # author -> their messages in the channel
        read: dict[str, tuple[DiscordTask, str]] = {}  # message id -> its task, and its content
        for message in self.client.all_messages(channel):
            message_id = str(message["id"])
            if self.core.recall(_superseded(message_id)):
                self.client.delete_message(channel, message_id)  # reposted already: never a task again
                self.core.remember(_superseded(message_id), None)
                continue
            author = author_of(message)
            if author not in authors:  # never read: whoever may post there does not command moltbot
                strangers[author] = strangers.get(author, 0) + 1
                continue
            content = str(message.get("content") or "")
            task = self._read(message_id, author, content, notices)
            if task is not None:
                read[message_id] = (task, content)
        admitted = self._admit(read, notices)
        self.offer([to_spec(task, self.settings.timezone) for task in admitted if task.active])
        self._tell(notices + self._strangers(strangers))
        for task in admitted:
            self._bring_up_to_date(task)

    def _read(self, message_id: str, author: str, content: str, notices: list[Notice]) -> DiscordTask | None:
        try:
            return parse_message(message_id, content, author, self.settings.timezone)
        except InvalidTask as error:
            self._refuse(message_id, author, content, "; ".join(error.reasons), notices)
            return None

    def _admit(self, read: dict[str, tuple[DiscordTask, str]], notices: list[Notice]) -> list[DiscordTask]:
        """The tasks policy allows, the oldest ``max_tasks`` active ones; the others refused."""
        allowed = []
        for task, content in read.values():
            reason = refusal(task, self.settings)
            if reason is None:
                allowed.append(task)
            else:
                self._refuse(task.message_id, task.author_id, content, reason, notices)
        cap = self.settings.max_tasks
        beyond = over_the_cap(allowed, cap)
        for message_id in sorted(beyond, key=int):
            task, content = read[message_id]
            reason = f"over [discord] max_tasks: the {cap} oldest active task messages are scheduled"
            self._refuse(message_id, task.author_id, content, reason, notices)
        return [task for task in allowed if task.message_id not in beyond]

    def _refuse(
        self, message_id: str, author: str | None, content: str, reason: str, notices: list[Notice]
    ) -> None:
        """Said once per version of the message (its content)."""
        if self.core.recall(_rejected(message_id)) != content:
            text = f"task message {message_id} by user {author or '?'} refused: {reason}"
            notices.append(Notice(_rejected(message_id), content, text))

    def _strangers(self, seen: dict[str, int]) -> list[Notice]:
        """Authors not allowed, each at most once per STRANGER_REPORT_EVERY."""
        now = self.core.clock.now()
        notices = []
        for author, count in seen.items():
            told = self.core.recall(_stranger(author or "unknown"))
            if told is not None and now - datetime.fromisoformat(told) < STRANGER_REPORT_EVERY:
                continue
            who = f"user {author}" if author else "no known author"
            text = f"ignored {count} message(s) from {who}, not in [discord] allowed_authors"
            notices.append(Notice(_stranger(author or "unknown"), now.isoformat(), text))
        return notices

    def _tell(self, notices: list[Notice]) -> None:
        """Log each notice, and tell the admins in one alert (the first few, and how many more)."""
        if not notices:
            return
        for notice in notices:
            log.warning("discord: %s", notice.text)
            self.core.remember(notice.key, notice.value)
        if len(notices) == 1:
            self.core.alert(f"⚠ Discord Tasks Channel: {notices[0].text}")
            return
        lines = [f"• {notice.text}" for notice in notices[:NOTICES_SHOWN]]
        if len(notices) > NOTICES_SHOWN:
            lines.append(f"… and {len(notices) - NOTICES_SHOWN} more (in the daemon's log)")
        self.core.alert("⚠ Discord Tasks Channel:\n" + "\n".join(lines))

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
        try:
            content = render_message(task, row.next_run, self.settings.timezone)
        except ValueError as error:  # it no longer fits in a message: it stays as it is
            if self.core.recall(_unrenderable(task.message_id)) is None:
                text = f"task message {task.message_id} cannot be brought up to date: {error}"
                self._tell([Notice(_unrenderable(task.message_id), "1", text)])
            return
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
