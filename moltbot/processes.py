"""A run's process, from outside: the environment it gets, and finding it again after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moltbot.task_users import Identity

__all__ = [
    "kill_processes_of_run",
    "kill_runs_as",
    "minimal_environment",
    "processes_of_run",
    "signal_processes",
    "venv_first",
]

# A scan of /proc misses a process caught inside execve (its environ reads empty for a moment) or
# forked after the scan; a few scans more catch those, and a run cannot outfork SIGKILL for long.
_KILL_SCANS = 20

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
    unsettled = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        content = _environment_of(entry.name)
        if content == b"" and _may_be_inside_exec(entry.name):
            unsettled.append(entry.name)
        elif content and _carries(content, markers):
            found.append(int(entry.name))
    # Inside execve a process's environment reads empty until the new program's is laid out; look
    # again for a moment (a process whose environment really is empty costs this wait once).
    for _ in range(_EXEC_LOOKS):
        if not unsettled:
            break
        time.sleep(_EXEC_PAUSE_SECONDS)
        still = []
        for pid in unsettled:
            content = _environment_of(pid)
            if content == b"":
                still.append(pid)
            elif content and _carries(content, markers):
                found.append(int(pid))
        unsettled = still
    return sorted(found)


_EXEC_LOOKS = 25
_EXEC_PAUSE_SECONDS = 0.002
_KERNEL_THREAD = 0x00200000  # PF_KTHREAD in /proc/PID/stat's flags


def _environment_of(pid: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return environ.read()
    except OSError:
        return None  # gone, or not ours to read


def _carries(environment: bytes, markers: tuple[bytes, ...]) -> bool:
    return all(b"\0" + marker in b"\0" + environment for marker in markers)


def _may_be_inside_exec(pid: str) -> bool:
    """Not a zombie nor a kernel thread (both read as an empty environment for good)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    state, flags = fields[0], int(fields[6])
    return state not in "ZX" and not flags & _KERNEL_THREAD


def signal_processes(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_processes_of_run(home: Path, run_id: int) -> int:
    """SIGKILL every process of ``run_id``, scanning again until a scan finds none (bounded);
    returns how many were killed."""
    killed: set[int] = set()
    for _ in range(_KILL_SCANS):
        found = [pid for pid in processes_of_run(home, run_id) if pid not in killed]
        if not found:
            break
        signal_processes(found, signal.SIGKILL)
        killed.update(found)
    return len(killed)


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
        kill_processes_of_run(Path(sys.argv[1]), int(run_id))
