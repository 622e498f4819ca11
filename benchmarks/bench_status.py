"""`moltbot status` wall time on a big store: 10 000 tasks, 1 000 000 runs.

The peer is the Python interpreter starting and exiting (`python -c pass`),
the floor of any Python command; the ratio shows what status itself costs.

Usage: python benchmarks/bench_status.py [--tasks 10000] [--runs 1000000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from harness import MoltbotHome


def build(home: MoltbotHome, task_count: int, run_count: int) -> None:
    from moltbot import store
    from moltbot.config.home import Home
    from moltbot.core import Core

    tasks = [
        {"task_id": f"task-{i:05d}", "script_path": "probe.sh", "schedule": f"every {5 + i % 120}m"}
        for i in range(task_count)
    ]
    (home.root / "config" / "tasks.json").write_text(json.dumps({"tasks": tasks}))
    core = Core(Home(home.root))
    core.open()
    core.sync(core.load_specs())
    start = datetime.now(UTC) - timedelta(days=20)
    batch = []
    for index in range(run_count):
        at = store.to_db(start + timedelta(seconds=index))
        task_id = f"task-{index % task_count:05d}"
        batch.append((task_id, "success", "schedule", 1, at, at, at, at, "ok", 0))
        if len(batch) == 50_000 or index == run_count - 1:
            with store.write_transaction():
                store.connection().executemany(
                    "INSERT INTO run (task_id, status, trigger, attempt, scheduled_for, queued_at, "
                    "started_at, finished_at, message, stop_requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch,
                )
            batch.clear()


def timed(command: list[str], env: dict[str, str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with MoltbotHome([]) as home:
        run(home, args)


def run(home: MoltbotHome, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    build(home, args.tasks, args.runs)
    print(f"built {args.tasks} tasks and {args.runs} runs in {time.perf_counter() - began:.0f} s")
    env = home.env
    moltbot = [sys.executable, "-m", "moltbot"]
    subprocess.run([*moltbot, "status"], env=env, stdout=subprocess.DEVNULL, check=True)  # warm the cache
    results = {"python -c pass": [], "moltbot status": [], "moltbot status --json": []}
    for _ in range(args.repeat):  # interleaved, one of each per round
        results["python -c pass"] += timed([sys.executable, "-c", "pass"], env, 1)
        results["moltbot status"] += timed([*moltbot, "status"], env, 1)
        results["moltbot status --json"] += timed([*moltbot, "status", "--json"], env, 1)
    floor = statistics.median(results["python -c pass"])
    print(f"== status wall time, median of {args.repeat} ==")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:24s} {median * 1000:7.1f} ms  ({median / floor:4.1f}x python start-up)")


if __name__ == "__main__":
    main()
