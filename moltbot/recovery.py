"""What the daemon does before it schedules anything: settle what the last daemon left behind.

- Runs a crash (kill -9, power loss) left ``running`` are recorded as
  interrupted, and every process still carrying the run's ``MOLTBOT_HOME``
  and ``MOLTBOT_RUN_ID`` is killed (nobody supervises it any more): those of
  the task users by a helper running as each (only a process of the same
  user may read another's environment; the daemon may not). What such a run
  left in its folder (its checkpoint) is kept (``run_dirs.py``). The
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
from datetime import datetime
from pathlib import Path

from moltbot import run_dirs, store
from moltbot.config.home import Home
from moltbot.config.spec import TaskSpec
from moltbot.processes import kill_processes_of_run, kill_runs_as
from moltbot.records import Watcher
from moltbot.relay import unanswered_notifications
from moltbot.task_users import UnknownUser, identity_of, users_of

__all__ = ["recover", "replan_interrupted", "resume_elsewhere", "settle_lost_session"]

log = logging.getLogger(__name__)


def recover(home: Home, specs: dict[str, TaskSpec], now: datetime, task_user: str = "") -> None:
    # All in one transaction, orphans killed before it commits: a daemon killed in the middle
    # of recovering leaves every run still `running` (the next start does it all again; killing
    # twice is harmless). Committed step by step, such a kill left runs marked interrupted whose
    # processes nobody would kill and whose re-run or resume was never queued.
    with store.write_transaction():
        abandoned = store.recover_abandoned_runs(now)
        if task_user and abandoned:
            for name in sorted(users_of(task_user, specs.values())):
                try:
                    kill_runs_as(identity_of(name), home.root, [run.id for run in abandoned])
                except (UnknownUser, OSError) as exc:
                    log.warning("could not look for the runs' processes as %s: %s", name, exc)
        left = run_dirs.left_behind(home.runs_dir)
        for run in abandoned:
            spec = specs.get(run.task_id)
            if run.id in left and spec is not None:
                _take_leftovers(run.id, spec, left[run.id], task_user, now)
            orphans = kill_processes_of_run(home.root, run.id)
            log.warning(
                "run %d of %s was left running by a crashed daemon: interrupted, %d processes killed",
                run.id,
                run.task_id,
                orphans,
            )
            replan_interrupted(run, spec, now)
        for task in store.tasks_paused_by("shutdown"):
            store.resume_task(task.task_id, task.next_run, now, "resumed after the daemon restarted")
            last = store.last_finished_run(task.task_id)
            if last is not None and last.status == "interrupted" and task.task_id in specs:
                store.enqueue_run(
                    task.task_id, "resume", None, now, occurrence=last.scheduled_for, attempt=last.attempt + 1
                )
    for folder in left.values():  # after the commit that kept their checkpoints
        run_dirs.remove(folder)


def settle_lost_session(
    session: int, lost_node: str, node: str, specs: dict[str, TaskSpec], now: datetime
) -> None:
    """PostgreSQL: another node's session whose lease ran out (it died, or is cut off and has
    killed its runs itself: cluster.py): its runs are interrupted and re-planned here."""
    with store.write_transaction():
        for run in store.settle_session(session, node, lost_node, now) or []:
            log.warning(
                "run %d of %s was left by node %s (lease lost): interrupted", run.id, run.task_id, lost_node
            )
            replan_interrupted(run, specs.get(run.task_id), now)


def resume_elsewhere(run: store.RunTicket, now: datetime) -> None:
    """PostgreSQL, a node stopping cleanly: the run its shutdown interrupted is queued again (with
    its checkpoint) for the nodes still up, rather than its task paused until this one is back."""
    task = store.get_task(run.task_id)
    if task is None or task.paused_by is not None or not task.enabled:
        return  # paused by its user (or disabled) meanwhile: that outlives the shutdown, as on one box
    store.enqueue_run(run.task_id, "resume", None, now, occurrence=run.scheduled_for, attempt=run.attempt + 1)
    store.wake_nodes()


def replan_interrupted(run: store.RunTicket, spec: TaskSpec | None, now: datetime) -> None:
    """An interrupted run's task's ``missed`` policy: run it again, or not (a one-shot never)."""
    if spec and spec.schedule.one_shot:
        # At most once by design: the crash may have come after it did its work.
        store.enqueue_message(
            Watcher(store.ALERTS, store.ADMINS),
            f"one-shot {run.task_id} was interrupted by a crash (run {run.id}) and will not run again; "
            f"run:{run.task_id} to run it now",
            now,
        )
    elif spec and spec.missed != "skip":
        store.enqueue_run(
            run.task_id, "recovery", None, now, occurrence=run.scheduled_for, attempt=run.attempt + 1
        )


def _take_leftovers(run_id: int, spec: TaskSpec, folder: Path, task_user: str, now: datetime) -> None:
    """What a run as the task user left before the crash, which its end never came to take: its
    checkpoint, and the notifications for the admins the daemon had not taken yet."""
    try:
        who = identity_of(str(spec.raw.get("user") or task_user))
    except UnknownUser:
        return
    leftovers = run_dirs.collect(folder, who.uid)
    if leftovers.checkpoint is not None:
        store.save_checkpoint(spec.task_id, leftovers.checkpoint, run_id, now)
    elif leftovers.cleared:
        store.clear_checkpoint(spec.task_id)
    for text in unanswered_notifications(folder, who.uid):
        admins = Watcher(store.ALERTS, store.ADMINS)
        store.enqueue_message(admins, f"{spec.task_id}: {text} (run {run_id})", now)
