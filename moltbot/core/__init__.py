"""The core: what the CLI, the chat handlers and the transports call, and all they may call.

Transports (``moltbot/signal_chat``, ``moltbot/discord_tasks``) and handlers
(``handlers/``) import from here and from ``moltbot.records``, never from the
store. The rest is imported by module where it is used: ``core/outbox.py``
(what a transport's delivery channel implements) and ``core/delivery.py``
(where it registers it), ``core/planning.py`` and ``core/lock.py`` (the daemon's);
``core/one_shots.py`` is the API's (which one-shots are done).
"""

from moltbot.core.api import AmbiguousTask, Core, UnknownTask, database_locked
from moltbot.core.chat import ReceivedCommand, Reply, Request
from moltbot.core.lookup import UNREAD
from moltbot.records import (
    ChannelHealth,
    Event,
    HealthReport,
    HostRecap,
    Node,
    OutboxMessage,
    PingHealth,
    Question,
    Run,
    Task,
    TaskState,
    ThreadHealth,
    Watcher,
)

__all__ = [
    "UNREAD",
    "AmbiguousTask",
    "ChannelHealth",
    "Core",
    "Event",
    "HealthReport",
    "HostRecap",
    "Node",
    "OutboxMessage",
    "PingHealth",
    "Question",
    "ReceivedCommand",
    "Reply",
    "Request",
    "Run",
    "Task",
    "TaskState",
    "ThreadHealth",
    "UnknownTask",
    "Watcher",
    "database_locked",
]
