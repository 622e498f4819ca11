"""kill -9 of the daemon at seeded moments: while it starts, a few ms around due instants, anywhere.

One home, one tasks config, many lives of the daemon: each trial starts it
(recovering what the previous one left), kills it, and the next begins. After
the last, a daemon settles everything and stops cleanly; then the store and
the scripts' own files must agree that nothing ran twice and nothing was lost.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Env, wait_until
from tests.faults.harness import (
    CRASHED,
    Incarnation,
    check_nothing_lost_nothing_twice,
    count_runs,
    processes_of_home,
    read_lines,
    read_next_runs,
    read_runs,
    recording_script,
    sleep_until,
    wait_for_orphans_to_go,
)

pytestmark = [pytest.mark.slow, pytest.mark.both_backends]  # and on PostgreSQL (tests/pg.py)

TRIALS = 32
ONE_SHOTS = 12
ONE_SHOT_SPACING = timedelta(seconds=2.5)
NEAR = 0.005  # "within a few ms" of a due instant, either side


def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(
    env: Env, fault_rng: random.Random, lives: Callable[[str], Incarnation]
) -> None:
    executions = env.home.root / "executions.log"
    env.script("quick.sh", recording_script(executions))
    env.script("long.sh", recording_script(executions, "sleep 1.5\n"))
    env.script("oneshot.sh", recording_script(executions, "sleep 0.3\n"))
    first = datetime.now(UTC) + timedelta(seconds=2)
    one_shots = {f"once-{i:02d}": first + i * ONE_SHOT_SPACING for i in range(ONE_SHOTS)}
    recurring = {"tick": ("quick.sh", "every 1s"), "tock": ("quick.sh", "every 3s"),
                 "long": ("long.sh", "every 2s")}  # fmt: skip
    env.write_tasks(
        *[{"task_id": task, "script_path": script, "schedule": every}
          for task, (script, every) in recurring.items()],
        *[{"task_id": task, "script_path": "oneshot.sh", "schedule": f"at {at.isoformat()}"}
          for task, at in one_shots.items()],
    )  # fmt: skip

    moments = []
    for trial in range(TRIALS):
        daemon = lives(str(trial))
        # Every random number is drawn up front, so a seed replays the same choices.
        draws = tuple(fault_rng.random() for _ in range(4))
        moments.append(_kill(env, daemon, draws, trial))

    final = lives("final")
    final.wait_ready()
    wait_for_orphans_to_go(env, final.pid, "processes of the runs the last kill interrupted")
    since = datetime.now(UTC)

    def settled() -> bool:
        runs = read_runs(env).values()
        ticked = any(
            r.task_id == "tick"
            and r.status == "success"
            and datetime.fromisoformat(r.started_at or "") > since
            for r in runs
        )
        return ticked and not any(r.status == "queued" for r in runs)

    wait_until(settled, what="the recovery runs to run and the schedule to go on")
    assert final.stop() == 0
    wait_until(lambda: not processes_of_home(env), timeout=5, what="no process of any run after a clean stop")

    runs, lines = read_runs(env), read_lines(executions)
    kinds = Counter(moment.split(":")[0] for moment in moments)
    crashed = sum(CRASHED in (r.message or "") for r in runs.values())
    once = sum(line.event == "start" and line.task_id in one_shots for line in lines)
    print(f"{TRIALS} kills {dict(kinds)}; {len(lines)} lines ({once} one-shot starts), {len(runs)} runs, "
          f"{crashed} cut by a kill")  # fmt: skip
    problems = check_nothing_lost_nothing_twice(runs, lines, set(one_shots), set(recurring))
    tracebacks = [str(d) for d in env.home.root.glob("daemon-*.log") if "Traceback" in d.read_text()]
    problems += [f"{log} has a traceback" for log in tracebacks]
    assert not problems, "\n".join([*problems, "kill moments:", *moments])


def _kill(env: Env, daemon: Incarnation, draws: tuple[float, ...], trial: int) -> str:
    """Kill -9 ``daemon`` at the moment the draws choose; say which moment it was."""
    roll, delay, offset, pick = draws
    if roll < 0.15:  # while it starts: imports, the lock, recovery, the first claims
        after = delay * 0.4
        sleep_until(daemon.spawned + after)
        daemon.kill()
        return f"starting: trial {trial}, {after * 1000:.0f} ms after its spawn"
    if roll < 0.3:  # the moment recovery has settled the first run a kill left behind
        before = _crashed(env)
        deadline = time.monotonic() + 15
        while not (recovered := _crashed(env) > before) and not daemon.ready():
            assert time.monotonic() < deadline, f"trial {trial}: the daemon neither recovered nor started"
            time.sleep(0.0005)  # polling hard: the moment lasts milliseconds
        daemon.kill()
        return f"recovering: trial {trial}, {'just after recovery' if recovered else 'nothing to recover'}"
    daemon.wait_ready()
    # What the previous life left running is gone before this one schedules on.
    wait_for_orphans_to_go(env, daemon.pid, f"trial {trial}: processes of the runs a kill interrupted")
    if roll < 0.65:  # around a due instant (claimed 1 ms ahead, then spawned)
        now = datetime.now(UTC)
        upcoming = sorted(
            (datetime.fromisoformat(at), task_id)
            for task_id, at in read_next_runs(env).items()
            if now + timedelta(milliseconds=20) < datetime.fromisoformat(at) < now + timedelta(seconds=3)
        )
        if upcoming:
            due, task_id = upcoming[int(pick * len(upcoming))]
            shift = (offset * 2 - 1) * NEAR
            target = due + timedelta(seconds=shift)
            sleep_until(time.monotonic() + (target - datetime.now(UTC)).total_seconds())
            daemon.kill()
            return f"due: trial {trial}, {shift * 1000:+.1f} ms from {task_id}'s {due:%H:%M:%S.%f}"
    after = delay * 2.0
    sleep_until(time.monotonic() + after)
    daemon.kill()
    return f"anywhere: trial {trial}, {after * 1000:.0f} ms after it was ready"


def _crashed(env: Env) -> int:
    return count_runs(env, f"message LIKE '%{CRASHED}%'")
