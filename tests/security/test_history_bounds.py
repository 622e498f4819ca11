"""``history`` (#14) is bounded: how many runs it reads (``-n``), and the failure reason it shows,
whatever a task wrote to stderr (one line, printable, ``REASON_CHARS`` at most)."""

from __future__ import annotations

from moltbot.run_history import MAX_RUNS, REASON_CHARS
from tests.conftest import Env


def test_the_count_of_runs_is_bounded_before_anything_is_read(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    refusals = ((str(MAX_RUNS + 1), f"at most {MAX_RUNS}"), ("0", "at least 1"), ("9" * 40, "at most"))
    for count, why in refusals:
        refused = env.cli("history", "job", "-n", count)
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
    assert env.cli("history", "job", "-n", str(MAX_RUNS), check=True).stdout == "job has not run yet\n"


def test_a_flood_on_stderr_is_one_short_line_in_history(env: Env) -> None:
    # 50 000 characters on one line, a terminal's "clear screen" on it.
    env.script("noisy.sh", "printf '\\033[2J' >&2\nhead -c 50000 /dev/zero | tr '\\0' x >&2\nexit 1\n")
    env.write_tasks({"task_id": "noisy", "script_path": "noisy.sh", "schedule": "daily at 03:00"})
    assert env.cli("run", "noisy").returncode == 1
    lines = env.cli("history", "noisy", check=True).stdout.splitlines()
    assert len(lines) == 5, lines
    failure = lines[-1]
    assert failure.startswith("last failure ") and failure.endswith("…"), failure
    assert failure.isprintable(), "no control character reaches a terminal or a phone"
    reason = failure.partition("): ")[2]
    assert len(reason) == REASON_CHARS, len(reason)
