"""One-shots that have run: done, whatever started their run (their instant, or someone by hand
before it), so every front shows them as done rather than due (``Core.task_states``, ``Core.done_at``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from moltbot import store
from moltbot.records import Task, TaskState

__all__ = ["ONE_SHOT_PREFIXES", "done_at", "is_one_shot"]

# How every one-shot form of the grammar (moltbot/schedules/grammar.py: `at …`, `in …`, the Discord
# tool's `in_N_…`, `today_at_…`, `tomorrow_at_…`, `on_date`) begins, and no recurring one does;
# tests/test_status_truth.py holds the two together. Read from the text, not parsed: status asks
# this of every task that ran, and the schedules package alone costs it ~20 ms of imports.
ONE_SHOT_PREFIXES = ("at ", "in ", "in_", "today_at_", "tomorrow_at_", "on_date")


def is_one_shot(schedule_key: str) -> bool:
    """Whether a stored schedule (text @ zone, parsed when it was stored) fires once."""
    text = schedule_key.rpartition("@")[0]
    return " ".join(text.split()).lower().startswith(ONE_SHOT_PREFIXES)


def done_at(tasks: Sequence[Task | TaskState]) -> dict[str, datetime]:
    """The one-shots of ``tasks`` that are done, and when each last ran (from the run history)."""
    one_shots = {
        task.task_id: task.last_run
        for task in tasks
        # Only the end of a run that ran sets last_status (a skipped or missed one never does).
        if task.last_status is not None
        and task.current_run_id is None  # a run, or a retry, still under way
        and task.paused_by != "shutdown"  # its interrupted run resumes at the next start
        and is_one_shot(task.schedule_key)
    }
    if not one_shots:
        return {}
    ran = store.last_ran(list(one_shots))
    # Runs older than log_retention_days are pruned; the task's row still says when it last ran.
    found = {task_id: ran.get(task_id) or last_run for task_id, last_run in one_shots.items()}
    return {task_id: instant for task_id, instant in found.items() if instant is not None}
