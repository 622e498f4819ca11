"""What the daemon does before it schedules anything: settle what the last daemon left behind.

- Runs a crash (kill -9, power loss) left ``running`` are recorded as
  interrupted, and every process still carrying the run's ``MOLTBOT_HOME``
  and ``MOLTBOT_RUN_ID`` is killed (nobody supervises it any more). The
  task's ``missed`` policy decides: ``once``/``all`` run it again (trigger
  ``recovery``), ``skip`` waits for the next occurrence; a one-shot never
  runs twice, and the admins are told so. It is one transaction, the
  processes killed before it commits: a crash during recovery leaves it all
  to do again.
- Tasks a clean shutdown paused are resumed, and the run the shutdown
  interrupted is started again (trigger ``resume``) with its checkpoint.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from pathlib import Path

from moltbot import store
from moltbot.config.spec import TaskSpec
from moltbot.processes import processes_of_run, signal_processes
from moltbot.records import Watcher

__all__ = ["recover"]

log = logging.getLogger(__name__)


def recover(home_root: Path, specs: dict[str, TaskSpec], now: datetime) -> None:
    # All in one transaction, orphans killed before it commits: a daemon killed in the middle
    # of recovering leaves every run still `running` (the next start does it all again; killing
    # twice is harmless). Committed step by step, such a kill left runs marked interrupted whose
    # processes nobody would kill and whose re-run or resume was never queued.
    with store.write_transaction():
        for run in store.recover_abandoned_runs(now):
            spec = specs.get(run.task_id)
            orphans = processes_of_run(home_root, run.id)
            signal_processes(orphans, signal.SIGKILL)
            log.warning(
                "run %d of %s was left running by a crashed daemon: interrupted, %d processes killed",
                run.id,
                run.task_id,
                len(orphans),
            )
            if spec and spec.schedule.one_shot:
                # At most once by design: the crash may have come after it did its work.
                store.enqueue_message(
                    Watcher(store.ALERTS, store.ADMINS),
                    f"one-shot {run.task_id} was interrupted by a crash (run {run.id}) and will not run "
                    f"again; run:{run.task_id} to run it now",
                    now,
                )
            elif spec and spec.missed != "skip":
                store.enqueue_run(
                    run.task_id, "recovery", None, now, occurrence=run.scheduled_for, attempt=run.attempt + 1
                )
        for task in store.tasks_paused_by("shutdown"):
            store.resume_task(task.task_id, task.next_run, now, "resumed after the daemon restarted")
            last = store.last_finished_run(task.task_id)
            if last is not None and last.status == "interrupted" and task.task_id in specs:
                store.enqueue_run(
                    task.task_id, "resume", None, now, occurrence=last.scheduled_for, attempt=last.attempt + 1
                )
