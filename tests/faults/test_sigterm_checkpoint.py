"""SIGTERM (systemctl stop) at seeded moments during checkpointing tasks; each start resumes them.

Two tasks work through numbered items, appending ``item <n> <run id> <pid>``
and saving the next item as their checkpoint, until the test says enough
(a file), then clear it. ``careful.py`` finishes the item in hand when
SIGTERM comes (a Python task with a handler): every item exactly once.
``plain.sh`` has no handler, so SIGTERM ends it between an item and its
checkpoint at worst: every item at least once, and only the item a stop cut
short done again, first thing after the resume.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from itertools import groupby, pairwise
from pathlib import Path

import pytest

from tests.conftest import Env, wait_until
from tests.faults.harness import Incarnation, read_runs, sleep_until

pytestmark = pytest.mark.slow

STOPS = 4
SHUTTING_DOWN = "interrupted: the daemon is shutting down"

CAREFUL = """#!/usr/bin/env python3
import os, signal, time
from moltbot import checkpoint

stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
item = checkpoint.load() or 0
while not stopping and not os.path.exists({enough!r}):
    with open({log!r}, "a") as log:
        log.write(f"item {{item}} {{os.environ['MOLTBOT_RUN_ID']}} {{os.getpid()}}\\n")
    item += 1
    checkpoint.save(item)
    time.sleep(0.03)
if not stopping:
    checkpoint.clear()
"""

PLAIN = """#!/bin/sh
i=$(echo "${{MOLTBOT_CHECKPOINT:-0}}" | tr -dc 0-9)
i=${{i:-0}}
while [ ! -e {enough} ]; do
  echo "item $i $MOLTBOT_RUN_ID $$" >> {log}
  i=$((i+1))
  moltbot checkpoint save "$i"
done
moltbot checkpoint clear
"""


def test_sigterm_during_checkpointing_tasks_resumes_from_the_checkpoint(
    env: Env, fault_rng: random.Random, lives: Callable[[str], Incarnation]
) -> None:
    logs = {"careful": env.home.root / "careful.items", "plain": env.home.root / "plain.items"}
    enough = env.home.root / "enough"
    env.script("careful.py", CAREFUL.format(enough=str(enough), log=str(logs["careful"])))
    env.script("plain.sh", PLAIN.format(enough=enough, log=logs["plain"]))
    env.write_tasks(
        {"task_id": "careful", "script_path": "careful.py", "schedule": "in 1 seconds"},
        {"task_id": "plain", "script_path": "plain.sh", "schedule": "in 1 seconds"},
    )
    moments = []
    for stop in range(STOPS + 1):
        daemon = lives(str(stop))
        daemon.wait_ready()
        # Both at work in this life (started on schedule, or resumed) before it ends.
        done = {task: len(_items(log)) for task, log in logs.items()}
        wait_until(lambda done=done: all(len(_items(logs[task])) > count for task, count in done.items()),
                   what="both tasks to make progress")  # fmt: skip
        if stop == STOPS:
            break
        after = fault_rng.uniform(0, 0.5)
        sleep_until(time.monotonic() + after)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(30) == 0, daemon.output()
        moments.append(f"stop {stop}: {after * 1000:.0f} ms after they worked")
    enough.touch()
    wait_until(lambda: all(_ended(env, task) for task in logs), what="both tasks to finish")
    assert daemon.stop() == 0

    runs = sorted(read_runs(env).values(), key=lambda run: run.id)
    print("; ".join(moments))
    for task, log in logs.items():
        mine = [run for run in runs if run.task_id == task and run.started_at]
        *stopped, last = mine
        assert [run.trigger for run in mine] == ["schedule"] + ["resume"] * len(stopped), mine
        assert all(run.status == "interrupted" and SHUTTING_DOWN in (run.message or "") for run in stopped), (
            mine
        )
        assert last.status == "success", last
        items = _items(log)
        by_run = [
            (run_id, [item for item, _ in group]) for run_id, group in groupby(items, key=lambda i: i[1])
        ]
        assert [run_id for run_id, _ in by_run] == [run.id for run in mine], "each run's items, in run order"
        numbers = [item for item, _ in items]
        assert sorted(set(numbers)) == list(range(max(numbers) + 1)), f"{task}: an item lost"
        if task == "careful":
            assert numbers == list(range(len(numbers))), "each item exactly once, in order"
        else:
            for (_, before), (_, after_stop) in pairwise(by_run):
                # Resumed at the checkpoint: the next item, or the one the stop cut short.
                assert after_stop[0] in (before[-1], before[-1] + 1), (before, after_stop)
                assert after_stop == list(range(after_stop[0], after_stop[0] + len(after_stop)))
        assert _checkpoint(env, task) is None, "cleared at the end"


def _items(log: Path) -> list[tuple[int, int]]:
    """(item, run id) per line."""
    if not log.exists():
        return []
    return [(int(fields[1]), int(fields[2])) for fields in map(str.split, log.read_text().splitlines())]


def _ended(env: Env, task: str) -> bool:
    return any(run.task_id == task and run.status == "success" for run in read_runs(env).values())


def _checkpoint(env: Env, task: str) -> str | None:
    with closing(sqlite3.connect(env.home.db_path)) as conn:
        row = conn.execute("SELECT data FROM checkpoint WHERE task_id = ?", (task,)).fetchone()
    return None if row is None else str(row[0])
