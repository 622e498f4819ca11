"""The task commands: run, run-all, logs, history, pause, resume, stop, next (status and tasks: ``overview``).

Their JSON shapes are the original scheduler's (supersets of them). Imports
are deferred to the command that needs them: ``moltbot status`` must answer
in well under a second on a small home server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from moltbot.cli.common import EXIT_FAILED, EXIT_OK, fail, print_json, ready_core, user, zone_for_people
from moltbot.core import Core, Run, Task, UnknownTask
from moltbot.local_times import done, stamped

__all__ = [
    "cmd_history",
    "cmd_logs",
    "cmd_next",
    "cmd_pause",
    "cmd_resume",
    "cmd_run",
    "cmd_run_all",
    "cmd_stop",
    "run_result",
]


def run_result(run: Run) -> dict[str, Any]:
    """The original `run` JSON shape, for a finished run (playbook runs add their ``hosts``)."""
    result: dict[str, Any] = {
        "task_id": run.task_id,
        "run_id": run.id,
        "success": run.status == "success",
        "status": run.status,
        "exit_code": run.exit_code,
        "duration": run.duration or 0.0,
        "message": run.message,
        "stdout": run.stdout_tail or "",
        "stderr": run.stderr_tail or "",
    }
    if run.recap:
        result["hosts"] = [host._asdict() for host in run.hosts]
    return result


def cmd_run(args: argparse.Namespace) -> int:
    core = ready_core(args)
    try:
        run = _run_one(core, args.task, announce=not args.json)
    except UnknownTask as exc:
        return fail(exc)
    except RuntimeError as exc:
        return fail(exc, EXIT_FAILED)
    result = run_result(run)
    if args.json:
        print_json(result)
    else:
        _print_run(result)
    return EXIT_OK if result["success"] else EXIT_FAILED


_ENDED = {"success": "succeeded in", "failed": "failed after", "timeout": "timed out after",
          "interrupted": "interrupted after"}  # fmt: skip


def _print_run(result: dict[str, Any]) -> None:
    """``✗ backup (run 2): interrupted after 4.6 s: stopped on request``: each thing once."""
    from moltbot.durations import lasted
    from moltbot.run_history import why

    mark = "✓" if result["success"] else "✗"
    status = result["status"]
    ended = f"{_ENDED[status]} {lasted(result['duration'])}" if status in _ENDED else status
    reason = why(status, result["message"])
    print(f"{mark} {result['task_id']} (run {result['run_id']}): {ended}" + (f": {reason}" if reason else ""))
    for stream in ("stdout", "stderr"):
        if result[stream].strip():
            print(f"--- {stream} (last lines) ---")
            print(result[stream].rstrip())


def _run_one(core: Core, name: str, announce: bool) -> Run:
    """Run a task now: handed to the daemon when one runs, else in the foreground.

    Raises RuntimeError when the run cannot be carried out to its end here.
    """
    by = f"cli:{user()}"
    # An occurrence waiting for the admins' approval: the owner running it here is the yes.
    approved = core.questions.approve_by_run(core.resolve(name).task_id, by, None)
    if core.daemon_pid() is None:
        from moltbot.core.foreground import run_in_foreground  # the runner: only when it runs here

        return run_in_foreground(core, name, by, approved.run_id if approved else None)
    if approved is not None and approved.run_id is not None:
        queued = core.run(approved.run_id)
        assert queued is not None
    else:
        queued = core.request_run(name, "manual", requested_by=by)
    if queued.status == "skipped":
        return queued
    try:  # from the announcement on: a Ctrl-C as soon as it is read must get the answer below
        if announce:
            print(f"run {queued.id} of {queued.task_id} handed to the daemon; waiting...", file=sys.stderr)
        run = core.wait_for_run(queued.id)
    except KeyboardInterrupt:  # Ctrl-C stops the waiting, not the run
        stop = f"moltbot stop {queued.task_id}"
        print(
            f"\nrun {queued.id} of {queued.task_id} goes on in the daemon; {stop} stops it", file=sys.stderr
        )
        raise
    if run.active:
        raise RuntimeError(
            f"the daemon stopped before run {run.id} finished; it is recorded and resumes (or runs) "
            "when the daemon is back"
        )
    return run


def cmd_run_all(args: argparse.Namespace) -> int:
    """Run every enabled, unpaused task once now, in priority order."""
    core = ready_core(args)
    tasks = [task for task in core.task_states() if task.enabled and not task.paused_by]
    results = []
    failed = False
    for task in tasks:
        try:
            run = _run_one(core, task.task_id, announce=not args.json)
        except RuntimeError as exc:
            print(f"moltbot: {task.task_id}: {exc}", file=sys.stderr)
            failed = True
            continue
        results.append(run_result(run))
        if not args.json:
            _print_run(results[-1])
    if args.json:
        print_json(results)
    return EXIT_OK if not failed and all(result["success"] for result in results) else EXIT_FAILED


def cmd_logs(args: argparse.Namespace) -> int:
    core = ready_core(args)
    try:
        events = core.logs(args.task, args.lines)
    except UnknownTask as exc:
        return fail(exc)
    if args.json:
        print_json(
            [
                {
                    "timestamp": e.timestamp.isoformat(),
                    "task_id": e.task_id,
                    "action": e.action,
                    "message": e.message,
                }
                for e in events
            ]
        )
        return EXIT_OK
    zone = zone_for_people(core)
    for event in events:
        print(f"[{stamped(event.timestamp, zone)}] {event.task_id}: {event.text}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """A task's last runs at a glance, the lines the phone gets (``--json``: each run, and the sums)."""
    from moltbot.run_history import summary_lines

    core = ready_core(args)
    try:
        history = core.history(args.task, args.count)
    except UnknownTask as exc:
        return fail(exc)
    if args.json:
        print_json(history.as_json())
    else:
        print("\n".join(summary_lines(history, core.clock.now())))
    return EXIT_OK


def _on_task(
    action: Callable[[Core, str], Task], describe: Callable[[Core, Task], str]
) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        core = ready_core(args)
        try:
            task = action(core, args.task)
        except UnknownTask as exc:
            return fail(exc)
        print(describe(core, task))
        return EXIT_OK

    return command


def _describe_pause(core: Core, task: Task) -> str:
    extra = " (its current run continues; `moltbot stop` ends it)" if task.current_run_id else ""
    return f"Task {task.task_id} paused{extra}"


def _describe_resume(core: Core, task: Task) -> str:
    following = stamped(task.next_run, zone_for_people(core)) if task.next_run else "-"
    return f"Task {task.task_id} resumed; next run {following}"


cmd_pause = _on_task(lambda core, name: core.pause(name), _describe_pause)


def cmd_resume(args: argparse.Namespace) -> int:
    core = ready_core(args)
    try:
        was_paused = bool(core.resolve(args.task).paused_by)
        task = core.resume(args.task)
    except UnknownTask as exc:
        return fail(exc)
    if not was_paused:
        following = stamped(task.next_run, zone_for_people(core)) if task.next_run else "-"
        print(f"Task {task.task_id} is not paused; next run {following}")
    else:
        print(_describe_resume(core, task))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    core = ready_core(args)
    try:
        run = core.request_stop(args.task)
    except UnknownTask as exc:
        return fail(exc)
    if run is None:
        print(f"{args.task} is not running")
        return EXIT_FAILED
    print(f"stopping run {run.id} of {run.task_id}")
    return EXIT_OK


def cmd_next(args: argparse.Namespace) -> int:
    core = ready_core(args)
    try:
        task = core.resolve(args.task)
        instants = core.next_runs(args.task, args.count)
    except UnknownTask as exc:
        return fail(exc)
    if args.json:
        print_json([instant.isoformat() for instant in instants])
        return EXIT_OK
    zone = core.zone_of(task)
    if not instants:
        print(f"{task.task_id}: {_why_no_runs(core, task)}")
    for instant in instants:
        print(f"{stamped(instant, zone)} ({zone.key})")
    if instants and task.chain:
        print(f"{task.task_id} also runs {task.chain}")
    return EXIT_OK


def _why_no_runs(core: Core, task: Task) -> str:
    done_at = core.done_at(task)
    if done_at is not None:
        return done(done_at, zone_for_people(core))
    if task.paused_by:
        return "paused"
    return "disabled" if not task.enabled else task.chain or "no further runs"
