"""Who may read what moltbot writes: moltbot's own files are private, a task's files are its owner's.

The database holds every command, reply and run output (and playbooks' ``extra_vars``), the logs
every run's output. Started by hand from a shell with umask 022, all of it would be world-readable,
so every moltbot command sets umask 077 before it touches anything: files 0600, folders 0700.

A task's process gets back the umask moltbot was started with (the shell's, or the unit's
``UMask=``): what a task writes is its owner's business, as it would be under cron. moltbot's own
actions (``moltbot <kind>-action``) are moltbot commands, private again, but hand the starting
umask on to what they run (``ansible-playbook``).
"""

from __future__ import annotations

import os

__all__ = ["PRIVATE_UMASK", "go_private", "task_umask"]

PRIVATE_UMASK = 0o077
_started_with: int | None = None


def go_private() -> None:
    """Make everything created from now on private; remember the umask moltbot was started with."""
    global _started_with
    previous = os.umask(PRIVATE_UMASK)
    if _started_with is None:
        _started_with = previous


def task_umask() -> int:
    """The umask a task's process starts with (``subprocess``'s ``umask=``; -1: leave it as it is,
    when moltbot never went private, as in a test that runs a task in its own process)."""
    return -1 if _started_with is None else _started_with
