"""A run's process, from outside: the environment it gets, and finding it again after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moltbot.task_users import Identity

__all__ = ["kill_runs_as", "minimal_environment", "processes_of_run", "signal_processes", "venv_first"]

_PASSED_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR")


def venv_first(path: str) -> str:
    """A task's PATH: moltbot's venv bin first, so scripts find `moltbot` (checkpoints) and its
    Python (``#!/usr/bin/env python3``), and playbook tasks the venv's ansible-playbook."""
    return f"{Path(sys.executable).parent}{os.pathsep}{path}"


def minimal_environment(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A cron-like environment: a few basics from ``base``, then ``extra``.

    The daemon's own environment may hold secrets (gateway tokens); tasks see
    only what their definition gives them.
    """
    source = os.environ if base is None else base
    env = {name: source[name] for name in _PASSED_THROUGH if name in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra)
    return env


def processes_of_run(home: Path, run_id: int) -> list[int]:
    """Every process still running for ``run_id`` of the moltbot at ``home``.

    Found by the environment the runner gave the run (children inherit it),
    so this needs nothing written at start-up and also finds processes that
    left the run's process group. Used after a crash and for foreground runs.
    """
    markers = (f"MOLTBOT_RUN_ID={run_id}\0".encode(), f"MOLTBOT_HOME={home}\0".encode())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                content = environ.read()
        except OSError:
            continue  # gone, or not ours to read
        if all(b"\0" + marker in b"\0" + content for marker in markers):
            found.append(int(entry.name))
    return found


def signal_processes(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_runs_as(who: Identity, home: Path, run_ids: list[int]) -> None:
    """Kill the processes of ``run_ids`` that run as ``who``: by a helper running as that user, since
    the daemon may not read another user's /proc/PID/environ (nor see its processes under the unit's
    ProtectProc=invisible)."""
    argv = [sys.executable, "-m", "moltbot.processes", str(home), *map(str, run_ids)]
    subprocess.run(
        argv,
        env=minimal_environment({}),
        cwd="/",
        user=who.uid,
        group=who.gid,
        extra_groups=list(who.groups),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


if __name__ == "__main__":  # the helper of kill_runs_as: python -m moltbot.processes HOME RUN_ID...
    for run_id in sys.argv[2:]:
        signal_processes(processes_of_run(Path(sys.argv[1]), int(run_id)), signal.SIGKILL)
