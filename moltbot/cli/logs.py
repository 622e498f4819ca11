"""The daemon's logging: to stderr, which journald picks up (with each line's priority)."""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar

__all__ = ["daemon_logger"]


class _JournalFormatter(logging.Formatter):
    """journald adds the time; "<N>" sets the priority of each line."""

    LEVELS: ClassVar[dict[str, int]] = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.LEVELS.get(record.levelname, 6)}>{super().format(record)}"


def daemon_logger() -> logging.Logger:
    """Log lines to stderr (journald's priorities under systemd); the daemon's own logger."""
    if os.environ.get("JOURNAL_STREAM"):
        formatter: logging.Formatter = _JournalFormatter("%(name)s: %(message)s")
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MOLTBOT_LOG_LEVEL", "INFO").upper())
    return logging.getLogger("moltbot")
