"""A run as the store records it and the core hands it out (see records.py: why NamedTuples)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

__all__ = ["ACTIVE_RUN_STATES", "RAN_RUN_STATES", "TERMINAL_RUN_STATES", "HostRecap", "Run"]

TERMINAL_RUN_STATES = ("success", "failed", "timeout", "interrupted", "skipped", "missed")
RAN_RUN_STATES = TERMINAL_RUN_STATES[:4]  # ended after running: not skipped, not missed
ACTIVE_RUN_STATES = ("queued", "running")


class HostRecap(NamedTuple):
    """One host's line of a playbook run's PLAY RECAP, and its last failure's message."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    message: str = ""

    @property
    def outcome(self) -> str:
        """The worst thing that happened to the host: unreachable, failed, changed or ok."""
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


class Run(NamedTuple):
    """One attempt (or one recorded non-attempt: skipped, missed)."""

    id: int
    task_id: str
    status: str  # queued running success failed timeout interrupted skipped missed
    trigger: str  # schedule | manual | remote | retry | resume | recovery
    requested_by: str | None
    attempt: int
    scheduled_for: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    message: str | None
    stdout_tail: str | None
    stderr_tail: str | None
    log_path: str | None
    owner_pid: int | None  # the moltbot process supervising it
    stop_requested: bool
    recap: str | None  # playbook runs: the per-host recap, JSON
    node: str | None = None  # the node that started it (several nodes on PostgreSQL; else unused)

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATES

    @property
    def hosts(self) -> list[HostRecap]:
        """A playbook run's hosts (empty for other runs)."""
        if not self.recap:
            return []
        fields = HostRecap._fields
        return [
            HostRecap(**{k: v for k, v in host.items() if k in fields})
            for host in json.loads(self.recap)["hosts"]
        ]
