"""Signal, through the signal-cli-rest-api gateway: the transport in front of handlers/.

gateway.py talks to the gateway, receiver.py receives, envelopes.py says what
a frame means, bridge.py authorizes and answers, delivery.py sends the outbox.
The core (moltbot.scheduler, moltbot.store) knows nothing of any of it.
"""
