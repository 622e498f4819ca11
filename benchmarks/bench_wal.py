"""WAL size under sustained load: the daemon's checkpoint policy against the old one.

Two workloads, each run by a real daemon under both policies, one after the other:

- runs: tasks every second (the probe, output to /dev/null) until ``--runs``
  runs succeeded;
- commands: ``status`` sent over Signal (tests/fake_gateway.py, the real wire
  protocol) one at a time, each waited for until its answer reached
  ``POST /v2/send``, as in bench_signal.py.

"passive only" is the policy before issue #11 (passive checkpoints every 200
commits, nothing more), run by the same code with its limits out of reach;
"restart" is the daemon's policy as shipped. While a workload runs, this
process reads the database every 0.25 s (another process's reader, as
``moltbot status`` is) and samples the WAL file's size every 10 ms. Figures and
what they mean: benchmarks/README.md.
The cost side, per policy: run lateness (started_at - scheduled_for, from the
run table; with every task due at the same instant each second it is mostly
the queue behind the 4 workers, so a stall shows in the tail) and the command
round trip.

Usage: python benchmarks/bench_wal.py [--runs 100000] [--commands 10000] [--tasks 400]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_signal import OWNER, OWNER_UUID, wait_connected  # noqa: E402
from harness import MoltbotHome, percentiles  # noqa: E402

from moltbot.wal_checkpoints import RESTART_ABOVE  # noqa: E402
from tests.fake_gateway import BOT, FakeGateway, text_frame  # noqa: E402

MB = 1024 * 1024
# The old policy: the same daemon, with limits no WAL reaches.
PASSIVE_ONLY = [
    "-c",
    "import sys\nfrom moltbot import wal_checkpoints\nfrom moltbot.cli import main\n"
    f"wal_checkpoints.RESTART_ABOVE = wal_checkpoints.TRUNCATE_ABOVE = {sys.maxsize}\n"
    "sys.exit(main(['daemon']))\n",
]
POLICIES: dict[str, list[str] | None] = {
    "passive only": PASSIVE_ONLY,
    f"restart > {RESTART_ABOVE // MB} MB": None,
}


class WalWatch:
    """Samples the WAL's size and reads ``progress`` from the database, until stopped."""

    def __init__(self, home: MoltbotHome, progress: str) -> None:
        self.wal = home.root / "data" / "moltbot.db-wal"
        self.db = sqlite3.connect(home.root / "data" / "moltbot.db", check_same_thread=False)
        self.progress_sql = progress
        self.done = 0
        self.max_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def size(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def _sample(self) -> None:
        next_read = 0.0
        while not self._stop.is_set():
            self.max_bytes = max(self.max_bytes, self.size())
            if time.monotonic() >= next_read:
                self.done = self.db.execute(self.progress_sql).fetchone()[0]
                next_read = time.monotonic() + 0.25
            self._stop.wait(0.01)

    def check(self, home: MoltbotHome) -> None:
        """Fail rather than wait forever when the sampler or the daemon died."""
        if not self._thread.is_alive():
            raise RuntimeError("the sampler died (see its traceback above)")
        if home.process is None or home.process.poll() is not None:
            raise RuntimeError("the daemon exited")

    def stop(self) -> int:
        """The WAL's size now (the daemon still running); sampling ends."""
        self._stop.set()
        self._thread.join()
        self.max_bytes = max(self.max_bytes, self.size())
        return self.size()

    def close(self) -> None:
        self.db.close()


def runs_workload(launcher: list[str] | None, runs: int, tasks: int) -> dict[str, Any]:
    task = {"script_path": "probe.sh", "schedule": "every 1s", "args": ["/dev/null"]}
    with MoltbotHome([{"task_id": f"t{i:03d}", **task} for i in range(tasks)]) as home:
        home.start(launcher)
        watch = WalWatch(home, "SELECT count(*) FROM run WHERE status = 'success'")
        started = time.monotonic()
        while watch.done < runs:
            watch.check(home)
            time.sleep(0.1)
        seconds = time.monotonic() - started
        at_end = watch.stop()
        rows = watch.db.execute(
            "SELECT scheduled_for, started_at FROM run WHERE status = 'success' ORDER BY id LIMIT ?",
            (runs,),
        ).fetchall()
        db_bytes = (home.root / "data" / "moltbot.db").stat().st_size
        watch.close()
        home.stop()
    late = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in rows]
    return {"max": watch.max_bytes, "end": at_end, "db": db_bytes, "seconds": seconds, "cost": late}


def commands_workload(launcher: list[str] | None, commands: int) -> dict[str, Any]:
    gateway = FakeGateway()
    gateway.start()
    task = {"script_path": "probe.sh", "schedule": "daily at 03:00", "args": ["/dev/null"]}
    with MoltbotHome([{"task_id": f"task-{i:02d}", **task} for i in range(30)]) as home:
        settings = home.root / "config" / "moltbot.toml"
        settings.write_text(
            settings.read_text()
            + f'\n[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["{OWNER_UUID}"]\n'
        )
        home.start(launcher)
        assert home.process is not None
        wait_connected(gateway, home.process)
        watch = WalWatch(home, "SELECT count(*) FROM inbox")
        started = time.monotonic()
        trips = round_trips(gateway, commands)
        seconds = time.monotonic() - started
        at_end = watch.stop()
        db_bytes = (home.root / "data" / "moltbot.db").stat().st_size
        watch.close()
        home.stop()
    gateway.stop()
    return {"max": watch.max_bytes, "end": at_end, "db": db_bytes, "seconds": seconds, "cost": trips}


def round_trips(
    gateway: FakeGateway, count: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    timings = []
    stamp = int(time.time() * 1000)
    for index in range(count):
        before = len(gateway.sent)
        started = clock()
        assert gateway.push(text_frame(OWNER_UUID, "status", stamp + index, OWNER)), "no socket"
        gateway.wait_for_sent(before + 1, timeout=30)
        timings.append(gateway.sent_times[before] - started)
    return timings


def report(title: str, cost: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n== {title} ==")
    for name, result in results.items():
        stats = percentiles(result["cost"])
        print(
            f"{name:16s} WAL max {result['max'] / MB:8.1f} MB  at end {result['end'] / MB:8.1f} MB"
            f"  (db {result['db'] / MB:5.1f} MB, {result['seconds']:4.0f} s)"
            f"  {cost} p50 {stats['p50'] * 1000:6.2f} ms  p99 {stats['p99'] * 1000:6.2f} ms"
            f"  max {stats['max'] * 1000:7.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=400, help="tasks every second in the runs workload")
    parser.add_argument("--reverse", action="store_true", help="the current policy first (order effects)")
    args = parser.parse_args()
    policies = dict(reversed(POLICIES.items())) if args.reverse else POLICIES
    runs, commands = {}, {}
    if args.runs:
        runs = {name: runs_workload(launcher, args.runs, args.tasks) for name, launcher in policies.items()}
        report(f"{args.runs} runs ({args.tasks} tasks due each second, 4 workers)", "lateness", runs)
    if args.commands:
        commands = {name: commands_workload(launcher, args.commands) for name, launcher in policies.items()}
        report(f"{args.commands} status commands over Signal, one at a time", "round trip", commands)
    summary = {
        workload: {name: {k: v for k, v in result.items() if k != "cost"} for name, result in results.items()}
        for workload, results in (("runs", runs), ("commands", commands))
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
