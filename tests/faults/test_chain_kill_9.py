"""kill -9 of the daemon the moment an upstream run's end is recorded: the chained run runs exactly once.

The chained run is queued in the commit that records the upstream's end
(store/chains.py), so a kill right after it finds the chained run queued,
or started and cut (recovery runs it again): never lost, never run twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import Env, wait_until
from tests.faults.harness import Incarnation, count_runs, read_runs, recording_script, wait_for_orphans_to_go

pytestmark = [pytest.mark.slow, pytest.mark.both_backends]  # and on PostgreSQL (tests/pg.py)

TRIALS = 5


def test_a_kill_right_after_the_upstream_ends_neither_loses_nor_doubles_the_chained_run(
    env: Env, lives: Callable[[str], Incarnation]
) -> None:
    executions = env.home.root / "executions.log"
    env.script("backup.sh", recording_script(executions))
    env.script("upload.sh", recording_script(executions, "sleep 0.2\n"))
    env.write_tasks(
        {"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"},
        {"task_id": "upload", "script_path": "upload.sh", "after": ["backup"]},
    )
    for trial in range(TRIALS):
        daemon = lives(str(trial))
        daemon.wait_ready()
        wait_for_orphans_to_go(env, daemon.pid, f"trial {trial}: what the last kill interrupted")
        # The run the last kill cut is run again first (else `overlap: skip` would skip the next one).
        wait_until(lambda: not _active(env), what=f"trial {trial}: the runs the last kill left")
        before = count_runs(env, "task_id = 'backup' AND status = 'success'")
        asking = subprocess.Popen([sys.executable, "-m", "moltbot", "run", "backup"], env=env.environ,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 15
        while count_runs(env, "task_id = 'backup' AND status = 'success'") == before:
            assert time.monotonic() < deadline, f"trial {trial}: backup never succeeded"
            time.sleep(0.0005)  # polling hard: the moment lasts milliseconds
        daemon.kill()
        asking.wait(30)

    final = lives("final")
    final.wait_ready()
    wait_until(lambda: not _active(env), what="the chained runs the kills left to run")
    assert final.stop() == 0
    runs = read_runs(env).values()
    backups = [r for r in runs if r.task_id == "backup" and r.status == "success"]
    uploads = [r for r in runs if r.task_id == "upload"]
    chained = [r for r in uploads if r.trigger == "after:backup"]
    summary = "\n".join(f"{r.id} {r.task_id} {r.status} {r.trigger} {r.message}" for r in runs)
    assert len(backups) == TRIALS, summary
    assert len(chained) == TRIALS, summary  # one chained run per backup: none lost, none doubled
    # Each ran to its end once: itself, or (cut by the kill) the recovery run after it.
    assert len([r for r in uploads if r.status == "success"]) == TRIALS, summary
    assert {r.status for r in uploads} <= {"success", "interrupted"}, summary


def _active(env: Env) -> bool:
    return any(run.status in ("queued", "running") for run in read_runs(env).values())
