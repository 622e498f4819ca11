"""Checkpoints for Python tasks: resume where an interrupted run left off.

Inside a task run by moltbot::

    from moltbot import checkpoint
    state = checkpoint.load() or {"next_item": 0}
    ...
    checkpoint.save({"next_item": i})
    ...
    checkpoint.clear()   # finished: the next run starts fresh

A checkpoint survives until the task clears it, so it can also carry state
from one run to the next (a cursor, a last-seen id). Shell tasks use
``moltbot checkpoint save|load|clear``. The task and run come from
MOLTBOT_TASK_ID / MOLTBOT_RUN_ID, which the runner sets. A run as the task
user may not open the database: it keeps its checkpoint in its own folder
(MOLTBOT_RUN_DIR, ``run_dirs.py``), which the daemon saves when the run ends.
"""

from __future__ import annotations

import os
from typing import Any

from moltbot import run_dirs
from moltbot.config.home import Home
from moltbot.core import Core

__all__ = ["clear", "load", "save"]


def _core() -> tuple[Core, str, int | None]:
    task_id = os.environ.get("MOLTBOT_TASK_ID")
    if not task_id:
        raise RuntimeError("not running under moltbot: MOLTBOT_TASK_ID is not set")
    run_id = os.environ.get("MOLTBOT_RUN_ID")
    core = Core(Home.from_env())
    core.open()
    return core, task_id, int(run_id) if run_id and run_id.isdigit() else None


def load() -> Any:
    """The task's current checkpoint (any JSON value), or None."""
    if os.environ.get(run_dirs.RUN_DIR_ENV):
        return run_dirs.load()
    core, task_id, _ = _core()
    return core.load_checkpoint(task_id)


def save(data: Any) -> None:
    """Replace the task's checkpoint with ``data`` (anything JSON can hold)."""
    if os.environ.get(run_dirs.RUN_DIR_ENV):
        return run_dirs.save(data)
    core, task_id, run_id = _core()
    core.save_checkpoint(task_id, data, run_id)


def clear() -> None:
    if os.environ.get(run_dirs.RUN_DIR_ENV):
        return run_dirs.clear()
    core, task_id, _ = _core()
    core.clear_checkpoint(task_id)
