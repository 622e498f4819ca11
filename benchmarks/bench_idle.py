"""Idle cost: resident memory and CPU of a daemon with nothing due.

The peer is the original scheduler's idle loop shape (wake every second to
check a flag), run as a bare Python process in the same window.

Usage: python benchmarks/bench_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from harness import MoltbotHome


def threads(pid: int) -> list[Path]:
    return list(Path(f"/proc/{pid}/task").iterdir())


def cpu_seconds(pid: int) -> float:
    """On-CPU time of all threads, in nanoseconds from schedstat (ticks are too coarse here)."""
    return sum(int((t / "schedstat").read_text().split()[0]) for t in threads(pid)) / 1e9


def wakeups(pid: int) -> int:
    """Voluntary context switches of all threads: how often the process slept and woke."""
    total = 0
    for thread in threads(pid):
        for line in (thread / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PEER = "import time\nwhile True:\n    time.sleep(1)\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    tasks = [
        {"task_id": "hourly", "script_path": "probe.sh", "schedule": "every 1h", "args": ["/dev/null"]},
        {
            "task_id": "nightly",
            "script_path": "probe.sh",
            "schedule": "daily at 03:30",
            "args": ["/dev/null"],
        },
    ]
    with MoltbotHome(tasks) as home:
        home.start()
        peer = subprocess.Popen([sys.executable, "-c", PEER])
        try:
            measure(home, peer, args.seconds)
        finally:
            peer.kill()
            peer.wait()


def measure(home: MoltbotHome, peer: subprocess.Popen[bytes], seconds: float) -> None:
    time.sleep(2)  # let start-up settle before the window opens
    pids = {"moltbot": home.process.pid, "1s-poll loop": peer.pid}  # type: ignore[union-attr]
    before = {name: (cpu_seconds(pid), wakeups(pid)) for name, pid in pids.items()}
    time.sleep(seconds)
    after = {name: (cpu_seconds(pid), wakeups(pid)) for name, pid in pids.items()}
    print(f"== idle over {seconds:.0f} s ==")
    for name, pid in pids.items():
        share = (after[name][0] - before[name][0]) / seconds * 100
        woke = after[name][1] - before[name][1]
        print(f"{name:14s} RSS {rss_mb(pid):6.1f} MB  CPU {share:7.4f} % of a core  wake-ups {woke}")


if __name__ == "__main__":
    main()
