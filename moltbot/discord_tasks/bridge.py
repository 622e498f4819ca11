"""The Tasks Channel <-> the core: read tasks, hand them to the daemon, keep the messages current.

Two threads. The sync thread reads the whole channel every ``poll_seconds``,
hands the tasks to the daemon (they run on time whatever the poll interval:
it only bounds how soon new or changed messages are seen), and brings the
messages up to date after runs: a one-time task's message is deleted, a
recurring one's edited in place with its new ``next_run`` (header and JSON),
or, when Discord refuses the edit (not the author, 30046), reposted first and
deleted after, so a failure in between loses nothing; the superseded message
is remembered (in the store) until it is gone. The delivery thread sends the
outbox's Discord messages with a nonce per message, so a retry after an
uncertain answer is not posted twice.

Which occurrence ran is the store's business: a run claims its occurrence
in the transaction that advances ``next_run``, and re-reading a message
whose edit failed never winds it back (its schedule did not change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from moltbot import store
from moltbot.config import DiscordSettings, TaskSpec
from moltbot.discord_tasks.client import (
    DiscordClient,
    DiscordError,
    DiscordForbidden,
    DiscordNotFound,
    DiscordUnauthorized,
)
from moltbot.discord_tasks.message import DiscordTask, InvalidTask, parse_message, render_message
from moltbot.discord_tasks.tasks import task_id_of, to_spec
from moltbot.scheduler import Core
from moltbot.store import messages
from moltbot.store.messages import Outbox
from moltbot.text import split_text

__all__ = ["DiscordBridge"]

log = logging.getLogger(__name__)
CHANNEL = "discord"
SPLIT = 2000
OfferSpecs = Callable[[list[TaskSpec]], None]  # hands the channel's tasks to the daemon loop


class DiscordBridge:
    def __init__(self, core: Core, settings: DiscordSettings, offer: OfferSpecs) -> None:
        self.core = core
        self.settings = settings
        self.offer = offer
        self.client = DiscordClient(settings.token, settings.api_base)
        self._stopping = threading.Event()
        self._deliver = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="discord-sync", daemon=True)
        self._send_thread = threading.Thread(target=self._send_loop, name="discord-send", daemon=True)

    def start(self) -> None:
        store.listen_for_outbox(self._deliver.set)
        self._sync_thread.start()
        self._send_thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._deliver.set()
        self._sync_thread.join(5)
        self._send_thread.join(5)
        store.listen_for_outbox(self._deliver.set, listen=False)
        self.client.close()

    # --- sync ---------------------------------------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sync_once()
            except DiscordUnauthorized as exc:
                log.error(
                    "discord: %s; Discord work stops until the token is fixed and moltbot restarted", exc
                )
                alert = f"⚠ Discord refused the bot token: {exc}"
                messages.enqueue_message("alerts", "admins", alert, self.core.clock.now())
                return
            except Exception:
                log.exception("discord: reading the Tasks Channel failed; trying again next poll")
            self._stopping.wait(self.settings.poll_seconds)

    def sync_once(self) -> None:
        channel = self.settings.tasks_channel_id
        tasks = []
        for message in self.client.all_messages(channel):
            if store.get_meta(f"discord_superseded:{message['id']}"):
                self.client.delete_message(channel, message["id"])  # reposted already: never a task again
                store.set_meta(f"discord_superseded:{message['id']}", "")
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
            key = f"discord_rejected:{message_id}"
            if store.get_meta(key) != str(message.get("content")):  # said once per version of the message
                store.set_meta(key, str(message.get("content")))
                log.warning("discord: %s", error)
                messages.enqueue_message("alerts", "admins", f"⚠ {error}", self.core.clock.now())
            return None

    def _bring_up_to_date(self, task: DiscordTask) -> None:
        row = store.get_task(task_id_of(task.message_id))
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
        store.set_meta(f"discord_superseded:{task.message_id}", "1")
        self.client.delete_message(channel, task.message_id)
        store.set_meta(f"discord_superseded:{task.message_id}", "")

    # --- delivery ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            self._deliver.clear()
            try:
                for row in messages.due_outbox((CHANNEL,), self.core.clock.now()):
                    self._send(row)
            except DiscordUnauthorized:
                return
            except Exception:
                log.exception("discord: delivery failed; trying again shortly")
                self._stopping.wait(5)
                continue
            due = messages.next_outbox_due((CHANNEL,))
            timeout = None if due is None else max(0.0, (due - self.core.clock.now()).total_seconds())
            self._deliver.wait(timeout)

    def _disable_task_of(self, row: Outbox, error: DiscordError) -> None:
        """Missing access or permissions will not heal by retrying every run: pause the task, say why."""
        run = self.core.run(row.run_id) if row.run_id else None
        if run is None:
            return
        self.core.pause(run.task_id, by="discord")
        reason = (
            f"⏸ {run.task_id} paused: Discord refused its message ({error}); fix the permissions, then resume"
        )
        store.add_event(self.core.clock.now(), run.task_id, "paused", reason)
        messages.enqueue_message("alerts", "admins", reason, self.core.clock.now())

    def _send(self, row: Outbox) -> None:
        text = row.text or ""
        messages.mark_sending(row.id)
        try:
            channel = self.client.open_dm(row.address[3:]) if row.address.startswith("dm:") else row.address
            for index, part in enumerate(split_text(text, SPLIT)):
                self.client.create_message(channel, part, nonce=f"o{row.id}p{index}")
        except DiscordForbidden as error:
            messages.mark_failed(row.id, str(error))
            log.error("discord: message %d refused: %s", row.id, error)
            self._disable_task_of(row, error)
            return
        except Exception as error:  # the nonce makes the retry safe
            messages.postpone(row.id, self.core.clock.now() + messages.backoff(row.attempts + 1), str(error))
            if isinstance(error, DiscordUnauthorized):
                raise
            log.warning("discord: message %d not delivered yet: %s", row.id, error)
            return
        messages.mark_sent(row.id, self.core.clock.now())
