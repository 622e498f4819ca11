"""The chat transports the settings configure, built for the daemon (which starts and stops them).

The one place that knows which transports exist: the daemon and the core do
not. Each transport adds its outbox channel to the daemon's ``Delivery``.
"""

from __future__ import annotations

from moltbot.bridges import CannotStart, OfferSpecs, Transport
from moltbot.config.settings import Settings
from moltbot.core.api import Core
from moltbot.core.delivery import Delivery

__all__ = ["build_transport"]


def build_transport(
    section: str, settings: Settings, core: Core, delivery: Delivery, offer_specs: OfferSpecs
) -> Transport:
    """The transport of ``section`` ("signal", "discord"), configured in ``settings``; CannotStart
    says why it cannot be built."""
    if section == "signal" and settings.signal is not None:
        from moltbot.signal_chat.bridge import SignalBridge

        return SignalBridge(core, settings.signal, delivery, settings.ollama)
    if section == "discord" and settings.discord is not None:
        if not settings.discord.token:
            raise CannotStart("DISCORD_BOT_TOKEN is not given (README: Security model)")
        from moltbot.discord_tasks.bridge import DiscordBridge

        return DiscordBridge(core, settings.discord, delivery, lambda specs: offer_specs("discord", specs))
    raise CannotStart(f"[{section}] is not configured")
