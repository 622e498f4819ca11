"""The peer in bench_signal.py: signalbot (PyPI) answering ``status`` with the same text moltbot sends.

Usage: python signalbot_peer.py GATEWAY_HOST:PORT BOT_NUMBER MOLTBOT_HOME
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from signalbot import Config, DataMessageContext, DataMessageHandler, SendMessage, SignalBot, text_triggered

from handlers import format as fmt
from moltbot.config.home import Home
from moltbot.core import Core


class Status(DataMessageHandler):  # type: ignore[misc]
    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core

    @text_triggered("status")  # type: ignore[misc]
    async def handle_data_message(self, context: DataMessageContext) -> None:
        text = fmt.status(self.core.task_states(), datetime.now(UTC), True)
        await context.send(SendMessage(text=text))


def main() -> None:
    service, number, home = sys.argv[1:4]
    core = Core(Home(Path(home)))
    core.open()
    bot = SignalBot(Config(phone_number=number, signal_service=service, logging_level=logging.WARNING))
    bot.register(Status(core))
    bot.start()


if __name__ == "__main__":
    main()
