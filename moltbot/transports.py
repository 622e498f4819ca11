"""The chat transports the settings configure, built for the daemon (which starts and stops them).

The one place that knows which transports exist: the daemon and the core do
not. Each transport adds its outbox channel to the daemon's ``Delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from moltbot.bridges import Transport
from moltbot.config.spec import TaskSpec
from moltbot.core.api import Core
from moltbot.core.delivery import Delivery

__all__ = ["configured_transports"]

log = logging.getLogger(__name__)


def configured_transports(
    core: Core, delivery: Delivery, offer_specs: Callable[[str, list[TaskSpec]], None]
) -> list[Transport]:
    settings = core.settings
    transports: list[Transport] = []
    if settings.signal is not None:
        from moltbot.signal_chat.bridge import SignalBridge

        transports.append(SignalBridge(core, settings.signal, delivery))
    if settings.discord is not None and not settings.discord.token:
        log.error(
            "[discord] is configured but DISCORD_BOT_TOKEN is not given (README: Security model): no Discord"
        )
    elif settings.discord is not None:
        from moltbot.discord_tasks.bridge import DiscordBridge

        transports.append(
            DiscordBridge(core, settings.discord, delivery, lambda specs: offer_specs("discord", specs))
        )
    return transports
