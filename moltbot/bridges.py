"""The chat bridges' lifecycle: built from their moltbot.toml sections, started, stopped, restarted.

The daemon knows no transport: ``moltbot/transports.py`` builds them (the
factory is handed in), and each adds its delivery channel to the daemon's
``Delivery``. They start before delivery (their channels are known by then),
stop receiving before delivery stops, and are closed last. On a reload, a
section added, changed or removed starts, restarts or stops its bridge alone:
its outbox rows stay in the database, routed, and the new bridge sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from moltbot.config.settings import Settings
from moltbot.config.spec import TaskSpec
from moltbot.core.api import Core
from moltbot.core.delivery import Delivery

__all__ = ["CHAT_SECTIONS", "Bridges", "CannotStart", "OfferSpecs", "Transport", "TransportFactory"]

log = logging.getLogger(__name__)

CHAT_SECTIONS = ("signal", "discord")  # moltbot.toml's sections that each have a bridge


class Transport(Protocol):
    """A chat transport the daemon starts, stops (receiving) and, once delivery stopped, closes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def settings_changed(self, settings: Settings) -> None:
        """moltbot.toml was reloaded, this transport's own section unchanged: take up what it uses
        of the others (the Signal chat's model, ``[ollama]``)."""
        ...


class CannotStart(Exception):
    """A chat section that is configured but cannot start (a missing token): why."""


# A source's task specs handed to the loop (a channel sync, from its own thread).
OfferSpecs = Callable[[str, list[TaskSpec]], None]
# Builds the transport of one chat section from the settings (raises CannotStart).
TransportFactory = Callable[[str, Settings, Core, Delivery, OfferSpecs], Transport]


class Bridges:
    def __init__(self, core: Core, delivery: Delivery, factory: TransportFactory | None, offer: OfferSpecs):
        self.core = core
        self.delivery = delivery
        self._factory = factory
        self._offer = offer
        self.running: dict[str, Transport] = {}  # by section

    def start(self, settings: Settings) -> None:
        """The chat transports, then delivery (their channels are known by then)."""
        for section in CHAT_SECTIONS:
            if getattr(settings, section) is not None:
                self._start(section, settings)
        self.delivery.start()

    def stop(self) -> None:
        """Receiving stops; delivery goes on (the runs' results are still to be queued)."""
        for transport in self.running.values():
            transport.stop()

    def close(self) -> None:
        """After delivery stopped: what they hold (HTTP clients) is let go."""
        for transport in self.running.values():
            transport.close()

    def apply(self, old: Settings, new: Settings) -> list[str]:
        """A reload: each chat section that changed is stopped and started again with ``new``; what
        was done, one phrase per section ("[signal] restarted")."""
        done = []
        for section in CHAT_SECTIONS:
            before, after = getattr(old, section), getattr(new, section)
            if before == after:
                continue
            retired = self.running.pop(section, None)
            if retired is not None:
                retired.stop()
                self.delivery.pause(section)
            if after is None:
                done.append(f"[{section}] stopped")
            elif self._start(section, new):
                done.append(f"[{section}] {'restarted' if before is not None else 'started'}")
            else:
                done.append(f"[{section}] not started (the log says why)")
            if section not in self.running:
                self.delivery.remove(section)
                self.core.health.forget_channel(section)
            if retired is not None:
                retired.close()
        for section, transport in self.running.items():
            if getattr(old, section) == getattr(new, section):
                transport.settings_changed(new)
        return done

    def _start(self, section: str, settings: Settings) -> bool:
        if self._factory is None:
            return False
        others = len(self.core.nodes()) > 1  # this node's own session is one
        if section == "signal" and settings.signal and settings.signal.linked_device and others:
            # Each node would take the others' replies, synced back to the account, for commands.
            log.error(
                "[signal] linked_device = true works on one box only: with several nodes, register the bot's "
                "own number (README: Gateway set-up); no Signal on this node"
            )
            self.core.health.channel_down(section, "linked_device with several nodes")
            return False
        try:
            transport = self._factory(section, settings, self.core, self.delivery, self._offer)
        except CannotStart as why:
            log.error("[%s] is configured but cannot start: %s; no %s", section, why, section.capitalize())
            return False
        transport.start()
        self.running[section] = transport
        return True
