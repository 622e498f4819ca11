"""The chat bridges' lifecycle: built from their moltbot.toml sections, started, stopped, closed.

The daemon knows no transport: ``moltbot/transports.py`` builds them (the
factory is handed in), and each adds its delivery channel to the daemon's
``Delivery``. They start before delivery (their channels are known by then),
stop receiving before delivery stops, and are closed last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from moltbot.config.spec import TaskSpec
from moltbot.core.api import Core
from moltbot.core.delivery import Delivery

__all__ = ["Bridges", "OfferSpecs", "Transport", "TransportFactory"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A chat transport the daemon starts, stops (receiving) and, once delivery stopped, closes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


# A source's task specs handed to the loop (a channel sync, from its own thread).
OfferSpecs = Callable[[str, list[TaskSpec]], None]
# Builds the transports the settings configure.
TransportFactory = Callable[[Core, Delivery, OfferSpecs], list[Transport]]


class Bridges:
    def __init__(self, core: Core, delivery: Delivery, factory: TransportFactory | None, offer: OfferSpecs):
        self.core = core
        self.delivery = delivery
        self._factory = factory
        self._offer = offer
        self.transports: list[Transport] = []

    def start(self) -> None:
        """The chat transports, then delivery (their channels are known by then)."""
        if self._factory is not None:
            self.transports = self._factory(self.core, self.delivery, self._offer)
        for transport in self.transports:
            transport.start()
        self.delivery.start()

    def stop(self) -> None:
        """Receiving stops; delivery goes on (the runs' results are still to be queued)."""
        for transport in self.transports:
            transport.stop()

    def close(self) -> None:
        """After delivery stopped: what they hold (HTTP clients) is let go."""
        for transport in self.transports:
            transport.close()
