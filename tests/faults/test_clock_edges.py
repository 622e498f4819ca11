"""The daemon itself (in-process, its clock injected) walked across both DST changes, with a restart
inside each: every wall time of each schedule runs once; no duplicate, no gap.

The expected instants come from the documented rule's small reference
(tests/test_schedule_dst.py: ``fires_at``), not from the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.core import Core
from moltbot.daemon import Daemon
from tests.conftest import Env
from tests.test_schedule_dst import fires_at

BERLIN = ZoneInfo("Europe/Berlin")
SCHEDULES = {  # task id: (schedule text, the same as cron for the reference)
    "hourly": ("hourly", "0 * * * *"),
    "halfhour": ("*/30 2 * * *", "*/30 2 * * *"),
    "nightly": ("daily at 02:30", "30 2 * * *"),
}


def drive(daemon: Daemon) -> None:
    daemon.step()
    while daemon.executor.busy() or daemon._claimed:
        daemon.wait(5)
        daemon.step()


def expected(cron: str, start: datetime, end: datetime) -> list[datetime]:
    found, instant = [], start.replace(second=0) + timedelta(minutes=1)
    while instant <= end:
        if fires_at(cron, BERLIN, instant):
            found.append(instant)
        instant += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    ("start", "restart_at"),
    [
        (
            datetime(2027, 10, 30, 22, 0, 30, tzinfo=UTC),
            datetime(2027, 10, 31, 1, 10, tzinfo=UTC),
        ),  # fall back
        (
            datetime(2027, 3, 27, 22, 0, 30, tzinfo=UTC),
            datetime(2027, 3, 28, 1, 5, tzinfo=UTC),
        ),  # spring forward
    ],
    ids=["fall-back", "spring-forward"],
)
def test_each_wall_time_runs_once_across_a_dst_change_and_a_restart(
    env: Env, start: datetime, restart_at: datetime
) -> None:
    for task_id in SCHEDULES:
        env.script(f"{task_id}.sh", f"echo $MOLTBOT_RUN_ID >> {task_id}.txt\n")
    env.write_tasks(
        *(
            {
                "task_id": task_id,
                "script_path": f"{task_id}.sh",
                "schedule": text,
                "timezone": "Europe/Berlin",
            }
            for task_id, (text, _) in SCHEDULES.items()
        )
    )
    end = start + timedelta(hours=6)
    clock = FakeClock(start)
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    restarted = False
    daemon = Daemon(core, core.load_specs())
    try:
        while True:
            drive(daemon)
            due = store.earliest_next_run()
            if not restarted and (due is None or due > restart_at):
                daemon.stopping.set()
                daemon.shutdown()  # a clean restart inside the changed hour
                clock.set(restart_at)
                daemon = Daemon(core, core.load_specs())
                daemon.startup()
                restarted = True
                continue
            if due is None or due > end:
                break
            clock.set(due + timedelta(milliseconds=100))  # the loop wakes at the due instant
    finally:
        daemon.stopping.set()
        daemon.shutdown()
    for task_id, (_, cron) in SCHEDULES.items():
        executed = [run for run in store.recent_runs(task_id, 1000) if run.started_at is not None]
        occurrences = sorted(run.scheduled_for for run in executed if run.scheduled_for is not None)
        assert occurrences == expected(cron, start, end), task_id  # each once, none missing
        lines = (env.home.tasks_dir / f"{task_id}.txt").read_text().split()
        assert sorted(map(int, lines)) == sorted(run.id for run in executed), task_id  # ran as recorded
