"""The daemon's delivery: an outbox worker per chat channel, and the alerts handed to the channels.

An alert is queued channel-neutral (``Chat.alert``, or a scheduled run's end),
by the daemon or by a task's own process that knows nothing of the chat
channels. Here it is handed over, in one transaction, to every channel that
takes alerts and can send (``core/outbox.py``: its worker merges what waits
together and sends it to each of its recipients). With no such channel, an
alert is written to the log, once, and not kept. A message for a channel that
is not configured (a task's ``deliver_to`` naming one) is given up, not kept
waiting forever. At start, what a crash left half-sent is given up too: it may
have been delivered.
"""

from __future__ import annotations

import logging
import threading

from moltbot import store
from moltbot.clock import Clock
from moltbot.core.health import HealthBoard
from moltbot.core.outbox import DeliveryChannel, OutboxWorker
from moltbot.records import OutboxMessage, Watcher
from moltbot.threads import Supervised

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, clock: Clock, health: HealthBoard) -> None:
        self.clock = clock
        self.health = health  # the workers' threads report to it
        self.workers: dict[str, OutboxWorker] = {}
        self._started = False
        self._wake = threading.Event()
        self._alerts = Supervised("alerts", self._one_pass, health)

    def add(self, channel: DeliveryChannel) -> OutboxWorker:
        """Deliver ``channel``'s messages (and, if it has alert recipients, the admins' alerts)."""
        worker = OutboxWorker(channel, self.clock, self.health)
        replaced = self.workers.get(channel.name)
        if replaced is not None:
            replaced.stop()
        # A new dict, in one step: the alerts' thread may be reading the old one (a reload), and the
        # channel's messages are never without a route meanwhile.
        self.workers = {**self.workers, channel.name: worker}
        if self._started:
            worker.start()
        return worker

    def pause(self, name: str) -> None:
        """A channel being restarted (reload): its sending stops, its messages wait in the outbox,
        still routed (never given up meanwhile), for the worker its new channel brings (``add``)."""
        worker = self.workers.get(name)
        if worker is not None:
            worker.stop()

    def remove(self, name: str) -> None:
        """A channel taken out of moltbot.toml: from now on its messages are given up, as at a start
        without it."""
        worker = self.workers.get(name)
        self.workers = {other: kept for other, kept in self.workers.items() if other != name}
        if worker is not None:
            worker.stop()

    @property
    def alert_channels(self) -> list[str]:
        """The channels that take alerts and can send now (not one whose token was refused)."""
        return [
            name
            for name, worker in self.workers.items()
            if worker.channel.alert_recipients() and worker.unusable is None
        ]

    def start(self) -> None:
        """After the channels are added: an alert handed over before would have gone to the log."""
        self._started = True
        for message_id in store.recover_sending():
            log.warning(
                "outbox message %d may have been delivered before a restart; not sent again", message_id
            )
        for worker in self.workers.values():
            worker.start()
        store.listen_for_outbox(self._wake.set)
        self._alerts.start()

    def stop(self) -> None:
        store.listen_for_outbox(self._wake.set, listen=False)
        self._alerts.stopping.set()
        self._wake.set()
        self._alerts.stop()
        for worker in self.workers.values():
            worker.stop()

    def _one_pass(self) -> None:
        self._wake.clear()
        self.hand_over_alerts()
        for message in store.fail_unroutable(list(self.workers)):
            log.warning(
                "outbox message %d given up: no %s channel is configured", message.id, message.channel
            )
        self._wake.wait()

    def hand_over_alerts(self) -> None:
        """One pass: every alert waiting goes to each alert channel (or to the log)."""
        now = self.clock.now()
        alerts = store.due_outbox(store.ALERTS, now, limit=500)
        if not alerts:
            return
        channels = self.alert_channels
        if not channels:
            for message in alerts:
                log.warning("alert (no chat channel can deliver it): %s", _summary(message))
        replacements = [
            (Watcher(channel, store.ADMINS), message.text, message.kind, message.run_id)
            for message in alerts
            for channel in channels
        ]
        store.hand_over([message.id for message in alerts], replacements, now)
        if len(alerts) == 500:
            self._wake.set()  # more are waiting


def _summary(message: OutboxMessage) -> str:
    if message.kind != "run-finished" or message.run_id is None:
        return message.text or ""
    run = store.get_run(message.run_id)
    if run is None:
        return f"run {message.run_id} ended"
    return f"{run.task_id} run {run.id} {run.status}: {run.message}"
