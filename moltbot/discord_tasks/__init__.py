"""Tasks kept as messages in a Discord "Tasks Channel" (the Unified Discord Tool's format).

message.py reads and writes one task message, tasks.py makes it a task of the
core, client.py speaks Discord's REST API within its rate limits, bridge.py
syncs the channel and delivers, actions.py is what a task's run does. The core
never imports any of it.
"""
