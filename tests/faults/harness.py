"""What the fault cases share: a daemon that can die at any moment, and what was recorded.

Two records are compared: the store (read with sqlite3, as an operator would)
and the lines the task scripts append to a file of their own, which no crash
of the daemon can rewrite. A script's line is ``start|end <task> <run id> <pid>``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, Env, wait_until

# Statuses of runs that never executed: a script's line must never belong to one.
NOT_EXECUTED = ("queued", "skipped", "missed")
CRASHED = "crash or kill -9"  # in the message of a run a crashed daemon left running


def recording_script(log: Path, body: str = "") -> str:
    """A task that appends its start, does ``body``, then appends its end."""
    line = f'$MOLTBOT_TASK_ID $MOLTBOT_RUN_ID $$" >> {log}\n'
    return f'echo "start {line}{body}echo "end {line}'


def sleep_until(monotonic: float) -> None:
    """Until a fault's chosen moment (not a wait for the system: nothing is expected to happen)."""
    time.sleep(max(0.0, monotonic - time.monotonic()))


class Incarnation:
    """One life of ``moltbot daemon`` (with instant retries), started without waiting for it,
    so that it can be killed while it starts."""

    def __init__(self, env: Env, name: str) -> None:
        self.env = env
        self.log_path = env.home.root / f"daemon-{name}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.instant_retries", "daemon"],
                cwd=ROOT,
                env=env.environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.spawned = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text()

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.output()}")
        return "daemon started" in self.output()

    def wait_ready(self) -> None:
        wait_until(self.ready, what="the daemon to recover and start scheduling")

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.process.poll() is not None:
            raise AssertionError(f"daemon ended before it was killed:\n{self.output()}")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM: the clean stop; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@dataclass(frozen=True)
class RunRow:
    id: int
    task_id: str
    status: str
    trigger: str
    attempt: int
    scheduled_for: str | None
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    owner_pid: int | None
    message: str | None
    stdout_tail: str | None


def _query(env: Env, query: str) -> list[tuple[Any, ...]]:
    """Rows straight from the database file (or the PostgreSQL database: ``both_backends``); none
    before the first daemon created the schema."""
    if env.database is not None:
        import psycopg2

        with closing(psycopg2.connect(env.database.url, connect_timeout=5)) as pg:
            pg.autocommit = True
            with pg.cursor() as cursor:
                cursor.execute("SELECT to_regclass('run') IS NOT NULL")
                if not cursor.fetchone()[0]:
                    return []
                cursor.execute(query)
                return cursor.fetchall()
    if not env.home.db_path.exists():
        return []
    with closing(sqlite3.connect(env.home.db_path, timeout=15)) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'run'").fetchone():
            return []
        return conn.execute(query).fetchall()


def read_runs(env: Env) -> dict[int, RunRow]:
    """Every run row, by id."""
    rows = _query(
        env,
        "SELECT id, task_id, status, trigger, attempt, scheduled_for, queued_at, started_at, finished_at, "
        "owner_pid, message, stdout_tail FROM run",
    )
    return {row[0]: RunRow(*row) for row in rows}


def count_runs(env: Env, where: str) -> int:
    rows = _query(env, f"SELECT count(*) FROM run WHERE {where}")
    return int(rows[0][0]) if rows else 0


def read_next_runs(env: Env) -> dict[str, str]:
    return dict(_query(env, "SELECT task_id, next_run FROM task WHERE next_run IS NOT NULL"))


@dataclass(frozen=True)
class Line:
    event: str  # start | end
    task_id: str
    run_id: int
    pid: int


def read_lines(path: Path) -> list[Line]:
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        fields = text.split()
        assert len(fields) == 4 and fields[0] in ("start", "end"), f"{path}:{number}: torn line {text!r}"
        lines.append(Line(fields[0], fields[1], int(fields[2]), int(fields[3])))
    return lines


def processes_of_home(env: Env) -> dict[int, int]:
    """pid -> run id of every live process carrying this home's run environment (as recovery finds them)."""
    home = f"MOLTBOT_HOME={env.home.root}".encode()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue  # gone, or a zombie
        run_ids = [v.split(b"=", 1)[1] for v in variables if v.startswith(b"MOLTBOT_RUN_ID=")]
        if home in variables and run_ids:
            found[int(entry.name)] = int(run_ids[0])
    return found


def wait_for_orphans_to_go(env: Env, owner: int, what: str) -> None:
    """Every process of a run not owned by the daemon ``owner`` is gone within a second (what
    SIGKILL takes to land on a loaded machine; shorter than the long task, so an orphan nobody
    killed is still there to be seen)."""

    def orphans() -> dict[int, RunRow | None]:
        processes = processes_of_home(env)  # first: a run started after this is in the rows read next
        runs = read_runs(env)
        return {
            pid: runs.get(run_id)
            for pid, run_id in processes.items()
            if run_id not in runs or runs[run_id].owner_pid != owner
        }

    try:
        wait_until(lambda: not orphans(), timeout=1, what=what)
    except AssertionError as timed_out:
        raise AssertionError(f"{what}: left behind (pid: run) {orphans()}") from timed_out


def check_nothing_lost_nothing_twice(
    runs: dict[int, RunRow], lines: list[Line], one_shots: set[str], rerun_after_crash: set[str]
) -> list[str]:
    """The invariants a crash must never break; the violations found (empty: none)."""
    problems = []
    starts = [line for line in lines if line.event == "start"]
    ends = {line.run_id: line for line in lines if line.event == "end"}
    for run_id, count in Counter(line.run_id for line in starts).items():
        if count > 1:
            problems.append(f"run {run_id} executed {count} times")
    for line in starts:
        row = runs.get(line.run_id)
        if row is None or row.task_id != line.task_id or row.status in NOT_EXECUTED or not row.started_at:
            problems.append(f"execution {line} has no started run row of its own: {row}")
    started_lines = {line.run_id for line in starts}
    for run_id, end in ends.items():
        if run_id not in started_lines:
            problems.append(f"run {run_id} ended without starting: {end}")
    for row in runs.values():
        if row.status == "success" and (row.id not in started_lines or row.id not in ends):
            problems.append(f"run {row.id} recorded as a success its script did not complete: {row}")
        if row.status == "running":
            problems.append(f"run {row.id} still running after a clean stop: {row}")
    # Occurrences: a scheduled occurrence (and its retries) runs once, whatever a crash's
    # recovery re-runs (those are other occurrences or attempts, by design).
    occurrences = Counter(
        (row.task_id, row.scheduled_for, row.attempt)
        for row in runs.values()
        if row.trigger in ("schedule", "retry") and row.started_at and row.status not in NOT_EXECUTED
    )
    problems += [f"occurrence {key} ran {count} times" for key, count in occurrences.items() if count > 1]
    executed = Counter(line.task_id for line in starts)
    rows = Counter(row.task_id for row in runs.values() if row.started_at and row.status not in NOT_EXECUTED)
    for task_id in one_shots:
        if executed[task_id] > 1 or rows[task_id] > 1:
            problems.append(f"one-shot {task_id} ran {executed[task_id]} times ({rows[task_id]} rows)")
    # Nothing lost: each run a crash interrupted is run again exactly once (policy "once").
    for task_id in rerun_after_crash:
        crashed = [r.id for r in runs.values() if r.task_id == task_id and CRASHED in (r.message or "")]
        reruns = [r.id for r in runs.values() if r.task_id == task_id and r.trigger == "recovery"]
        if len(crashed) != len(reruns):
            # Recovery settles a crashed run and queues its re-run at one instant: which went without?
            queued = {r.queued_at for r in runs.values() if r.id in reruns}
            alone = [r for r in runs.values() if r.id in crashed and r.finished_at not in queued]
            problems.append(
                f"{task_id}: {len(crashed)} runs interrupted by a crash, {len(reruns)} re-runs; "
                f"interrupted with no re-run queued by the same recovery: {alone}"
            )
    return problems
