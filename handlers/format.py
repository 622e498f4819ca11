"""Phone-sized texts: status lines, run results (each thing said once), a run's output.

Pure functions of the core's data, so every transport shows the same thing;
clock times come from ``moltbot.local_times``, as the CLI's do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from moltbot.core import HostRecap, Node, OutboxMessage, Run, TaskState
from moltbot.durations import lasted
from moltbot.local_times import relative
from moltbot.run_history import why
from moltbot.text import shown_output

__all__ = [
    "ago",
    "finished_run",
    "in_",
    "named",
    "outbox_text",
    "output",
    "playbook_finished",
    "run_finished",
    "run_head",
    "status",
    "symbol",
    "tail",
]

SYMBOLS = {"running": "▶", "paused": "⏸", "error": "❌", "idle": "✅"}
OUTCOME = {
    "success": "ok",
    "failed": "failed",
    "timeout": "timeout",
    "interrupted": "interrupted",
    "skipped": "skipped",
    "missed": "missed",
}


def ago(moment: datetime, now: datetime) -> str:
    return relative(moment, now)


def in_(moment: datetime, now: datetime) -> str:
    """Relative, and ``now`` for a moment already past (a run about to be claimed)."""
    return relative(moment, now) if moment > now else "now"


# A person as the store records who asked (a run's requested_by): "signal:<ACI UUID or number>",
# "discord:<user id>". A CLI user ("cli:alice") is a login on the server, shown as it is.
_PERSON = re.compile(r"\b(?:signal|discord):(\+?[0-9A-Za-z][0-9A-Za-z-]{5,})")


def named(text: str, asker: str) -> str:
    """``text`` with each person in it named for a chat: "you" for the one asking (``asker``, as
    ``Request.requester``), anyone else by the last 4 characters of their id (``…4f2a``, as ping
    URLs are shown): enough to tell people apart, never a whole number or UUID to copy."""
    return _PERSON.sub(lambda match: "you" if match[0] == asker else f"…{match[1][-4:]}", text)


def symbol(task: TaskState) -> str:
    if not task.enabled:
        return "⛔"
    if task.status == "idle" and task.last_status is None:
        return "○"
    if task.status == "idle" and task.last_status == "interrupted":
        return _mark("interrupted")  # stopped: not a ✅ beside "interrupted"
    return SYMBOLS.get(task.status, "•")


def status(
    tasks: Sequence[TaskState], now: datetime, daemon_running: bool, nodes: Sequence[Node] = ()
) -> str:
    """A header with counts, then one short line per task (30 tasks fit a phone screen); with
    several nodes on one database, which are up."""
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    summary = " · ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "no tasks"
    header = f"moltbot: {len(tasks)} tasks · {summary}"
    if nodes:
        header += "\nnodes: " + " · ".join(node.name for node in nodes)
    elif not daemon_running:
        header += "\n⚠ the daemon is not running"
    lines = [header]
    for task in tasks:
        parts = [f"{symbol(task)} {task.task_id}"]
        if task.current_run_id is not None:
            parts.append(f"running (run {task.current_run_id})")
        elif task.last_status and task.last_run:
            parts.append(f"{OUTCOME.get(task.last_status, task.last_status)} {ago(task.last_run, now)}")
        if task.incidents:
            parts.append(("⏰ " if "overdue" in task.incident_note() else "") + task.incident_note())
        if task.paused_by:
            parts.append(f"paused ({task.paused_by})")
        elif task.done_at:
            parts.append("done")  # a one-shot that ran (its result and age are just before)
        elif task.next_run and task.enabled:
            parts.append(f"next {in_(task.next_run, now)}")
        elif task.chain and task.enabled:
            parts.append(task.chain)  # a chained task with no schedule of its own
        lines.append(" · ".join(parts))
    return "\n".join(lines)


def tail(text: str | None, lines: int = 8, width: int = 600) -> str:
    """The last lines of some output, short enough for a chat bubble."""
    if not text or not text.strip():
        return ""
    kept = shown_output(text).rstrip().splitlines()[-lines:]
    joined = "\n".join(kept)
    return joined[-width:]


def _mark(status: str) -> str:
    return "✅" if status == "success" else "⏹" if status == "interrupted" else "❌"


VERBS = {"success": "finished", "failed": "failed", "timeout": "timed out", "interrupted": "interrupted"}
STOPPED_ON_REQUEST = "stopped on request"


def run_head(
    task_id: str,
    run_id: int,
    status: str,
    message: str | None,
    exit_code: int | None,
    duration: float | None,
    node: str | None = None,
) -> str:
    """``✅ backup finished in 2.1 s (run 42)``, ``❌ backup failed after 2.0 s (run 42): exit code 1``,
    ``⏹ backup stopped after 29.5 s (run 23)``: the status, the duration and the reason, each once.

    Success leaves the exit code out (✅ says it was 0); a stop leaves out the SIGTERM it caused.
    Several nodes: which one ran it, ``(run 42 on nas-2)``."""
    verb, reason = VERBS.get(status, status), why(status, message)
    if status == "interrupted" and reason == STOPPED_ON_REQUEST:
        verb, reason = "stopped", ""
    took = "" if duration is None else f" {'in' if status == 'success' else 'after'} {lasted(duration)}"
    where = f" on {node}" if node else ""
    head = f"{_mark(status)} {task_id} {verb}{took} (run {run_id}{where})"
    if reason:
        head += f": {reason}"
    if status == "failed" and exit_code and exit_code > 0 and f"exit code {exit_code}" not in reason:
        head += f", exit code {exit_code}"
    return head


def run_finished(
    task_id: str,
    run_id: int,
    status: str,
    message: str | None,
    exit_code: int | None,
    duration: float | None,
    stdout: str | None,
    stderr: str | None,
    node: str | None = None,
) -> str:
    """The head (``run_head``), then the last lines of output: stderr's when it failed and said
    something there, else stdout's."""
    head = run_head(task_id, run_id, status, message, exit_code, duration, node)
    body = tail(stderr if status != "success" and tail(stderr) else stdout)
    return f"{head}\n{body}" if body else head


def output(run: Run) -> str:
    """``output:TASK``: the run's result, then the tails of stdout and stderr, each labelled (as
    ``moltbot run`` prints them), each bounded by ``tail``."""
    if run.hosts:
        lines = [playbook_finished(run.task_id, run.id, run.status, run.duration, run.hosts)]
    else:
        lines = [
            run_head(run.task_id, run.id, run.status, run.message, run.exit_code, run.duration, run.node)
        ]
    for label, text in (("stdout", run.stdout_tail), ("stderr", run.stderr_tail)):
        shown = tail(text)
        if shown:
            lines += [f"{label}:", shown]
    if len(lines) == 1:
        lines.append("(no output)")
    return "\n".join(lines)


HOST_MARKS = {"ok": "✓", "changed": "✓", "failed": "✗", "unreachable": "⚠"}
HOST_LINES = 15  # a handful of machines fit; more get a count
OUTCOMES = ("ok", "changed", "failed", "unreachable")  # the order a summary names them in


def outcome_counts(hosts: Sequence[HostRecap]) -> dict[str, int]:
    """How many hosts ended in each outcome, in OUTCOMES order, zeros left out."""
    counts = {outcome: sum(1 for host in hosts if host.outcome == outcome) for outcome in OUTCOMES}
    return {outcome: count for outcome, count in counts.items() if count}


def playbook_finished(
    task_id: str, run_id: int, status: str, duration: float | None, hosts: Sequence[HostRecap]
) -> str:
    """``patch-all ✅ 4 hosts: 3 ok, 1 changed``, then a line per host (why, for failed ones)."""
    mark = _mark(status)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in outcome_counts(hosts).items())
    took = f", {lasted(duration)}" if duration is not None else ""
    plural = "" if len(hosts) == 1 else "s"
    lines = [f"{task_id} {mark} {len(hosts)} host{plural}: {counts} (run {run_id}{took})"]
    for host in hosts[:HOST_LINES]:
        detail = f" ({host.changed})" if host.outcome == "changed" else ""
        why = f": {host.message}" if host.message and host.outcome in ("failed", "unreachable") else ""
        lines.append(f"{HOST_MARKS[host.outcome]} {host.host} {host.outcome}{detail}{why}")
    if len(hosts) > HOST_LINES:
        lines.append(f"… and {len(hosts) - HOST_LINES} more")
    return "\n".join(lines)


def finished_run(run: Run) -> str:
    hosts = run.hosts
    if hosts:
        return playbook_finished(run.task_id, run.id, run.status, run.duration, hosts)
    return run_finished(
        run.task_id,
        run.id,
        run.status,
        run.message,
        run.exit_code,
        run.duration,
        run.stdout_tail,
        run.stderr_tail,
        run.node,
    )


def outbox_text(message: OutboxMessage, run: Run | None) -> str:
    """What an outbox message says: its text, or the result of the run it is about (a scheduled
    run's, for the admins, marked as such); ``run`` None: pruned since."""
    if message.kind != "run-finished" or message.run_id is None:
        return message.text or ""
    if run is None:
        return f"run {message.run_id} ended (pruned since)"
    text = finished_run(run)
    if not message.is_alert:
        return text
    if run.status in ("failed", "timeout"):  # what to do next, on a line of its own
        return f"⚠ scheduled run: {text}\noutput:{run.task_id} for the output, run:{run.task_id} to try again"
    return f"scheduled run: {text}"  # notify "always": a success is news, not a warning
