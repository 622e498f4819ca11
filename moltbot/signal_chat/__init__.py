"""Signal, through the signal-cli-rest-api gateway: the transport in front of handlers/.

gateway.py talks to the gateway, receiver.py receives, envelopes.py says what
a frame means, bridge.py authorizes and hands commands to the core with their
handler, delivery.py is Signal's side of the core's outbox. The core
(``moltbot.core``) knows nothing of any of it; it knows only the core.
"""
