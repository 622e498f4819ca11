"""Tasks kept as messages in a Discord "Tasks Channel" (the Unified Discord Tool's format).

message.py reads and writes one task message, tasks.py makes it a task of the
core, client.py speaks Discord's REST API within its rate limits, bridge.py
syncs the channel, delivery.py is Discord's side of the core's outbox. What a
task's run does is its kind's (``moltbot/kinds/discord.py``). The core never
imports any of it; it reaches the core only through ``moltbot.core``.
"""
