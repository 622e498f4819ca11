"""A task's last runs at a glance (``history``): marks, a sparkline of durations, the success rate,
the median duration, the last failure's reason. Pure: the core hands the runs in, chat and CLI
show the same lines."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from moltbot.durations import lasted
from moltbot.local_times import relative
from moltbot.records import Run

__all__ = [
    "DEFAULT_RUNS",
    "MARKS",
    "MAX_RUNS",
    "RunHistory",
    "sparkline",
    "summary_lines",
    "why",
]

DEFAULT_RUNS = 20  # a phone's width of marks
MAX_RUNS = 200  # what `-n` may ask for: beyond it the marks no longer fit a screen, nor a glance
MARKS = {
    "success": "✅",
    "failed": "❌",
    "timeout": "⏱",
    "interrupted": "⏹",
    "skipped": "⏭",
    "missed": "💤",
    "queued": "⏳",
    "running": "⏳",
}
BARS = "▁▂▃▄▅▆▇█"
# The runs the success rate counts: those that ended on their own. A run stopped on request, or
# never started (skipped, missed), says nothing about whether the task works.
ENDED_ON_THEIR_OWN = ("success", "failed", "timeout")
FAILURES = ("failed", "timeout")
REASON_CHARS = 120  # the last failure's reason: one line on a phone

_SUCCEEDED = re.compile(r"^succeeded in \d+(?:\.\d+)?s(?:; )?")
_TIMED_OUT = re.compile(r"^timed out after (\d+(?:\.\d+)?)s \(took [^)]*\)")
_AFTER = re.compile(r" after \d+(?:\.\d+)?s\b")


def why(status: str, message: str | None) -> str:
    """A run's message without what its status and duration say already: ``exit code 1 after
    2.0s`` -> ``exit code 1``, ``interrupted: stopped on request after 29.5s`` -> ``stopped on
    request``. The runner writes the long form, for logs and ``moltbot run``; a reply shows the
    status and the duration once, beside this."""
    text = (message or "").strip()
    if text.startswith(f"{status}: "):
        text = text[len(status) + 2 :]
    text = _SUCCEEDED.sub("", text, count=1)
    text = _TIMED_OUT.sub(lambda match: f"the limit is {match[1]} s", text, count=1)
    return _AFTER.sub("", text, count=1)


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, lowest to highest as ▁ to █; equal values sit in the middle."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[3] * len(values)
    top = len(BARS) - 1
    return "".join(BARS[round((value - low) / (high - low) * top)] for value in values)


class RunHistory(NamedTuple):
    """A task's latest runs, oldest first, and what they add up to."""

    task_id: str
    runs: tuple[Run, ...]

    @classmethod
    def of(cls, task_id: str, newest_first: Sequence[Run]) -> RunHistory:
        return cls(task_id, tuple(reversed(newest_first)))

    @property
    def marks(self) -> str:
        return "".join(MARKS.get(run.status, "•") for run in self.runs)

    @property
    def durations(self) -> list[float]:
        """Of the runs that ran and ended, oldest first."""
        return [run.duration for run in self.runs if run.duration is not None and not run.active]

    @property
    def counted(self) -> list[Run]:
        return [run for run in self.runs if run.status in ENDED_ON_THEIR_OWN]

    @property
    def successes(self) -> int:
        return sum(1 for run in self.counted if run.status == "success")

    @property
    def success_rate(self) -> float | None:
        return self.successes / len(self.counted) if self.counted else None

    @property
    def median_duration(self) -> float | None:
        import statistics  # 5 ms to import: not for every command line that builds its parser

        durations = self.durations
        return statistics.median(durations) if durations else None

    @property
    def last_failure(self) -> Run | None:
        return next((run for run in reversed(self.runs) if run.status in FAILURES), None)

    def failure_reason(self, run: Run, with_output: bool = True) -> str:
        """Why ``run`` failed, on one bounded line: its reason, then (``with_output``: for those
        who may read the output) stderr's last line if any."""
        reason = why(run.status, run.message) or run.status
        said = [line.strip() for line in (run.stderr_tail or "").splitlines() if line.strip()]
        if said and with_output:
            reason += f" · {said[-1]}"
        # One printable line, whatever the task wrote: no escape sequence reaches a terminal.
        reason = "".join(char for char in " ".join(reason.split()) if char.isprintable())
        return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"

    def as_json(self) -> dict[str, Any]:
        failure = self.last_failure
        return {
            "task_id": self.task_id,
            "runs": [
                {
                    "run_id": run.id,
                    "status": run.status,
                    "started_at": run.started_at.isoformat() if run.started_at else None,
                    "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                    "duration": run.duration,
                }
                for run in self.runs
            ],
            "succeeded": self.successes,
            "counted": len(self.counted),
            "success_rate": self.success_rate,
            "median_duration": self.median_duration,
            "last_failure": None
            if failure is None
            else {
                "run_id": failure.id,
                "status": failure.status,
                "finished_at": failure.finished_at.isoformat() if failure.finished_at else None,
                "reason": self.failure_reason(failure),
            },
        }


def summary_lines(history: RunHistory, now: datetime, with_output: bool = True) -> list[str]:
    """A few phone-sized lines: which runs, their marks, durations, success rate, last failure
    (``with_output`` False: without the line of stderr, for a viewer, who may not read output)."""
    if not history.runs:
        return [f"{history.task_id} has not run yet"]
    count = len(history.runs)
    lines = [
        f"{history.task_id}: the last {count} run{'' if count == 1 else 's'}, oldest first",
        history.marks,
    ]
    median = history.median_duration
    if median is not None:
        lines.append(f"durations {sparkline(history.durations)} · median {lasted(median)}")
    rate = history.success_rate
    if rate is not None:
        lines.append(f"{history.successes} of {len(history.counted)} succeeded ({rate:.0%})")
    nodes = Counter(run.node for run in history.runs if run.node)  # several nodes (PostgreSQL) only
    if nodes:
        lines.append("ran on " + ", ".join(f"{node} ({count})" for node, count in sorted(nodes.items())))
    failure = history.last_failure
    if failure is None:
        lines.append("no failure among them")
    else:
        when = relative(failure.finished_at, now) if failure.finished_at else "?"
        lines.append(
            f"last failure {when} (run {failure.id}{f' on {failure.node}' if failure.node else ''}): "
            f"{history.failure_reason(failure, with_output)}"
        )
    return lines
