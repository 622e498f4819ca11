"""Firing precision: how late does a task start, compared with its peers?

Two workloads, each run by moltbot, by APScheduler 3 (the usual in-process
Python scheduler) and by the physical floor, interleaved round by round:

- lateness: N one-shot tasks spread evenly over a few seconds; each start is
  compared with its due instant. The floor is a bare loop that sleeps until
  each due instant and spawns the probe; "floor+pipes" spawns it the way a
  supervised run must be (output pipes, own session, minimal environment).
- burst: N tasks due at one instant; the makespan is the last start minus the
  due instant. The floor spawns all probes back to back as fast as it can.

Usage: python benchmarks/bench_firing.py [--tasks 1000] [--spread 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import MoltbotHome, iso, make_probe, percentiles, read_starts, wait_for_files

from moltbot.processes import minimal_environment

LEAD = 6.0  # seconds between setting up and the first due instant (daemon start-up, registration)


def schedule_instants(count: int, spread: float, burst: bool) -> list[float]:
    first = time.time() + LEAD
    return [first] * count if burst else [first + spread * i / count for i in range(count)]


def run_floor(dues: list[float], out: Path, probe: Path, supervised: bool = False) -> None:
    """The bare loop; ``supervised``: spawning as moltbot's runner must (output
    pipes, own session, minimal environment), to tell the cost of those from
    the cost of scheduling."""
    options: dict[str, Any] = {}
    if supervised:
        options = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "start_new_session": True,
            "cwd": probe.parent,
            "env": minimal_environment({"MOLTBOT_TASK_ID": "probe"}),
        }
    children = []
    for index, due in enumerate(dues):
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        children.append(subprocess.Popen([str(probe), str(out / f"t{index}")], **options))
    for child in children:
        child.communicate()


def run_apscheduler(dues: list[float], out: Path, probe: Path, workers: int) -> None:
    from datetime import UTC, datetime

    from apscheduler.executors.pool import ThreadPoolExecutor as APExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(executors={"default": APExecutor(workers)}, timezone="UTC")
    scheduler.start()
    for index, due in enumerate(dues):
        scheduler.add_job(
            subprocess.run,
            "date",
            run_date=datetime.fromtimestamp(due, UTC),
            args=[[str(probe), str(out / f"t{index}")]],
            misfire_grace_time=None,
        )
    wait_for_files(out, len(dues), timeout=LEAD + 120, quiet_until=max(dues) + 0.05)
    scheduler.shutdown(wait=True)


def run_moltbot(dues: list[float], out: Path, workers: int) -> None:
    tasks = [
        {
            "task_id": f"t{index}",
            "script_path": "probe.sh",
            "schedule": f"at {iso(due)}",
            "args": [str(out / f"t{index}")],
        }
        for index, due in enumerate(dues)
    ]
    with MoltbotHome(tasks, workers=workers) as home:
        home.start()
        wait_for_files(out, len(dues), timeout=LEAD + 120, quiet_until=max(dues) + 0.05)


def one_round(kind: str, runner: str, count: int, spread: float, workers: int) -> list[float]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{runner}-"))
    probe = make_probe(Path(tempfile.mkdtemp(prefix="probe-")))
    dues = schedule_instants(count, spread, burst=(kind == "burst"))
    if runner == "floor":
        run_floor(dues, out, probe)
    elif runner == "floor+pipes":
        run_floor(dues, out, probe, supervised=True)
    elif runner == "apscheduler":
        run_apscheduler(dues, out, probe, workers)
    else:
        run_moltbot(dues, out, workers)
    starts = read_starts(out, [f"t{i}" for i in range(count)])
    shutil.rmtree(out, ignore_errors=True)
    return [starts[f"t{i}"] - due for i, due in enumerate(dues)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    runners = ["floor", "floor+pipes", "apscheduler", "moltbot"]
    for kind in ("lateness", "burst"):
        results: dict[str, list[float]] = {runner: [] for runner in runners}
        makespans: dict[str, list[float]] = {runner: [] for runner in runners}
        for round_index in range(args.rounds):
            shift = round_index % len(runners)
            order = runners[shift:] + runners[:shift]  # interleave
            for runner in order:
                lateness = one_round(kind, runner, args.tasks, args.spread, args.workers)
                results[runner].extend(lateness)
                makespans[runner].append(max(lateness))
        print(f"\n== {kind}: {args.tasks} tasks, {args.rounds} rounds, {args.workers} workers ==")
        if kind == "lateness":
            floor = percentiles(results["floor"])
            for runner in runners:
                stats = percentiles(results[runner])
                print(
                    f"{runner:12s} p50 {stats['p50'] * 1000:7.2f} ms  p99 {stats['p99'] * 1000:7.2f} ms  "
                    f"max {stats['max'] * 1000:7.2f} ms  p99 vs floor {stats['p99'] / floor['p99']:5.2f}x"
                )
        else:
            floor_span = min(makespans["floor"])
            for runner in runners:
                best = min(makespans[runner])
                print(f"{runner:12s} makespan best {best * 1000:8.1f} ms  vs floor {best / floor_span:5.2f}x")


if __name__ == "__main__":
    main()
