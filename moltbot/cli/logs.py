"""The daemon's logging: to stderr, which journald picks up (with each line's priority).

moltbot's own loggers (``moltbot.*``, ``handlers.*``) log at ``MOLTBOT_LOG_LEVEL`` (INFO); the
libraries' stay at WARNING: the HTTP client logs every request's URL at INFO, credentials
included. Every line, tracebacks too, has the userinfo of its URLs masked (``redact.py``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar

from moltbot.redact import redact_urls

__all__ = ["OWN_LOGGERS", "daemon_logger"]

OWN_LOGGERS = ("moltbot", "handlers")


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


class _JournalFormatter(_RedactingFormatter):
    """journald adds the time; "<N>" sets the priority of each line."""

    LEVELS: ClassVar[dict[str, int]] = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.LEVELS.get(record.levelname, 6)}>{super().format(record)}"


def daemon_logger() -> logging.Logger:
    """Log lines to stderr (journald's priorities under systemd); the daemon's own logger."""
    if os.environ.get("JOURNAL_STREAM"):
        formatter: logging.Formatter = _JournalFormatter("%(name)s: %(message)s")
    else:
        formatter = _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # every library's logger
    level = os.environ.get("MOLTBOT_LOG_LEVEL", "INFO").upper()
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return logging.getLogger("moltbot")
