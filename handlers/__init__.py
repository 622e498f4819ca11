"""Chat-command front (installed as ``moltbot.handlers``).

Transport (Signal, Discord) -> handlers (parse, authorize, format) -> the core
API in ``moltbot.scheduler``. Handlers never touch the store directly. The
command registry arrives with the Signal integration.
"""
