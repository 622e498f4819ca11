"""A task writing 200 MB to stdout: the daemon reads it all, keeps its memory flat, caps what it keeps."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Env, wait_until
from tests.faults.harness import Incarnation, read_runs

pytestmark = pytest.mark.slow

FLOOD_BYTES = 200_000_000
CAP = 1_048_576  # output_cap_bytes: what the run's log file keeps
TAIL = 4000  # what the store keeps of each stream (run_output.TAIL_BYTES)
MEMORY_MARGIN_KB = 50 * 1024  # far above a copy-through; far below keeping a fraction of 200 MB


def test_200_mb_of_stdout_leave_the_daemon_flat_and_the_output_capped(
    env: Env, fault_rng: random.Random, lives: Callable[[str], Incarnation]
) -> None:
    line = "flood " + "x" * fault_rng.randrange(0, 200)  # where the cap and the tail cut falls
    last = "the very last line\n"
    env.script("flood.sh", f'yes "{line}" | head -c {FLOOD_BYTES}\nprintf "\\n{last}"\n')
    env.write_tasks({"task_id": "flood", "script_path": "flood.sh", "schedule": "in 2 seconds"})
    daemon = lives("flood")
    daemon.wait_ready()
    baseline = _memory_kb(daemon.pid)
    peak_rss = baseline["VmRSS"]

    def ended() -> bool:
        nonlocal peak_rss
        peak_rss = max(peak_rss, _memory_kb(daemon.pid)["VmRSS"])
        return any(run.status not in ("queued", "running") for run in read_runs(env).values())

    wait_until(ended, timeout=60, what="the flood to be read to its end")
    after = _memory_kb(daemon.pid)
    assert daemon.stop() == 0

    (run,) = read_runs(env).values()
    hwm = f"{baseline['VmHWM']} -> {after['VmHWM']} kB"
    print(f"daemon VmHWM {hwm}, VmRSS peak seen {peak_rss} kB; {run.message}")
    assert run.status == "success", run
    assert after["VmHWM"] - baseline["VmHWM"] < MEMORY_MARGIN_KB, (baseline, after)
    assert peak_rss - baseline["VmRSS"] < MEMORY_MARGIN_KB, (baseline, peak_rss)
    # The store keeps the tail, which proves every byte was read through to the end.
    tail = run.stdout_tail or ""
    assert len(tail.encode()) <= TAIL and tail.endswith(last), tail[-200:]
    log = Path(env.home.logs_dir / "flood" / f"{run.id}.log")
    written = FLOOD_BYTES + 1 + len(last)
    notice = f"\n[moltbot] output truncated: {written - CAP} bytes over the cap were dropped\n"
    assert log.stat().st_size == CAP + len(notice)
    with open(log, "rb") as kept:
        kept.seek(CAP)
        assert kept.read().decode() == notice


def _memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in kB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}
