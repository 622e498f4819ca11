"""Tasks kept as messages in a Discord "Tasks Channel" (the Unified Discord Tool's format).

message.py reads and writes one task message. The Discord client, the channel
sync and the actions follow (issue 4); the core never imports any of it.
"""
