"""What one attempt came to: the runner's verdict, recorded by the store (``finish_run``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["INTERNAL_ERROR", "RunResult"]

INTERNAL_ERROR = "internal error in moltbot (see its log)"


@dataclass(frozen=True)
class RunResult:
    status: str  # success | failed | timeout | interrupted
    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    message: str
    stdout_tail: str
    stderr_tail: str
    log_path: Path | None  # None: the run printed nothing, so no file was made
