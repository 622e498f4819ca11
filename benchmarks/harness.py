"""Shared pieces of the benchmarks: a probe script, a moltbot home, statistics.

Every workload spawns the same probe script, which records the instant it
started (bash's $EPOCHREALTIME, no extra process), so moltbot, its peers and
the physical floor are measured the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

PROBE = '#!/bin/bash\nprintf "%s" "$EPOCHREALTIME" > "$1"\n'


def make_probe(directory: Path) -> Path:
    probe = directory / "probe.sh"
    probe.write_text(PROBE)
    probe.chmod(0o755)
    return probe


def read_starts(out_dir: Path, names: Iterable[str]) -> dict[str, float]:
    return {name: float((out_dir / name).read_text()) for name in names}


def wait_for_files(out_dir: Path, count: int, timeout: float, quiet_until: float | None = None) -> None:
    """Wait until ``count`` probes wrote their file; not before ``quiet_until`` (a
    time.time() instant): polling a growing directory while the runner under test
    works would take CPU from it, which the floor (waiting on its children) does not."""
    if quiet_until is not None:
        time.sleep(max(0.0, quiet_until - time.time()))
    deadline = time.monotonic() + timeout
    while len(os.listdir(out_dir)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(out_dir))} of {count} probes ran")
        time.sleep(0.05)
    time.sleep(0.05)  # let the last probe finish its write


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    return {"p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1], "mean": statistics.fmean(ordered)}


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat()


class MoltbotHome:
    """A throwaway MOLTBOT_HOME running a real daemon on a given task list."""

    def __init__(
        self,
        tasks: list[dict[str, object]],
        workers: int = 4,
        daemon_toml: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="moltbot-bench-"))
        for name in ("config", "tasks", "data", "logs"):
            (self.root / name).mkdir()
        make_probe(self.root / "tasks")
        (self.root / "config" / "tasks.json").write_text(json.dumps({"tasks": tasks}))
        (self.root / "config" / "moltbot.toml").write_text(
            f'[daemon]\nworkers = {workers}\ntimezone = "UTC"\nmissed_grace_seconds = 600\n{daemon_toml}'
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._extra_env = env or {}

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MOLTBOT_HOME": str(self.root),
            "MOLTBOT_LOG_LEVEL": "WARNING",
            **self._extra_env,
        }

    def start(self, launcher: list[str] | None = None) -> None:
        """``launcher``: the python arguments that run ``moltbot daemon`` (default ``-m moltbot daemon``)."""
        arguments = launcher or ["-m", "moltbot", "daemon"]
        self.process = subprocess.Popen([sys.executable, *arguments], env=self.env)
        lock = self.root / "data" / "daemon.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip() == str(self.process.pid)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> MoltbotHome:
        return self

    def __exit__(self, *exc: object) -> None:
        """Whatever happened, no daemon and no directory are left behind."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
