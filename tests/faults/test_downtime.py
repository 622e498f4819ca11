"""Downtime with each ``missed`` policy: every occurrence of the gap is accounted for exactly once,
either run (once) or recorded as missed, and the task scripts' own files agree with the store."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from moltbot import store
from tests.conftest import Env, wait_until

POLICIES = ("skip", "once", "all")


def test_downtime_accounts_for_every_occurrence_once_under_each_policy(env: Env, start_daemon) -> None:  # type: ignore[no-untyped-def]
    for policy in POLICIES:
        env.script(f"{policy}.sh", f"echo $MOLTBOT_RUN_ID >> {policy}.txt\n")
    env.write_tasks(
        *(
            {"task_id": policy, "script_path": f"{policy}.sh", "schedule": "every 1m", "missed": policy}
            for policy in POLICIES
        ),
        settings="[daemon]\nmax_catchup_runs = 4\n",
    )
    env.cli("status", check=True)  # registers the tasks
    env.db()
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=6, seconds=30)
    gap = [began + timedelta(minutes=minute) for minute in range(7)]  # 7 occurrences passed meanwhile
    with store.write_transaction():
        store.connection().execute(
            "UPDATE task SET next_run = ?, anchor = ?",
            (store.to_db(began), store.to_db(began - timedelta(minutes=1))),
        )
    daemon = start_daemon()
    expected_runs = {"skip": 0, "once": 1, "all": 4}
    executed = lambda policy: [  # noqa: E731
        run
        for run in store.recent_runs(policy, 100)
        if run.started_at is not None and run.scheduled_for in gap
    ]
    wait_until(
        lambda: all(
            len([run for run in executed(policy) if run.finished_at]) == count
            for policy, count in expected_runs.items()
        ),
        what="the policies applied",
    )
    assert daemon.stop() == 0
    db = sqlite3.connect(env.home.db_path)
    for policy, count in expected_runs.items():
        rows = db.execute(
            "SELECT scheduled_for, status FROM run WHERE task_id = ? AND scheduled_for IS NOT NULL", (policy,)
        ).fetchall()
        in_gap = [(store.from_db(at), status) for at, status in rows if store.from_db(at) in gap]
        assert sorted(at for at, _ in in_gap) == gap, policy  # each occurrence once: run or missed
        ran = sorted(at for at, status in in_gap if status not in ("missed", "skipped"))
        assert ran == gap[len(gap) - count :], policy  # the latest ones (all: oldest first, capped)
        lines = (env.home.tasks_dir / f"{policy}.txt").read_text().split() if count else []
        ids = {
            run_id
            for (run_id,) in db.execute(
                "SELECT id FROM run WHERE task_id = ? AND started_at IS NOT NULL", (policy,)
            )
        }
        assert set(map(int, lines)) <= ids and len(lines) == len(set(lines)), policy
