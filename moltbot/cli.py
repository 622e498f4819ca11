"""The ``moltbot`` command line (the original scheduler.py verbs, and more).

Imports are deferred to the command that needs them: ``moltbot status`` must
answer in well under a second on a small home server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from moltbot.scheduler import Core

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def _core(args: argparse.Namespace) -> Core:
    from moltbot.config import Home
    from moltbot.scheduler import Core

    core = Core(Home.from_env(args.home))
    core.open()
    return core


def _ready_core(args: argparse.Namespace) -> Core:
    """A core whose store reflects tasks.json (synced here when no daemon runs)."""
    core = _core(args)
    if core.daemon_pid() is None:
        core.sync_if_changed()
    return core


def _print_json(value: Any) -> None:
    # One line, no indent: json's C encoder only runs without indent, and
    # status --json on 10 000 tasks took twice as long indented. Pipe to jq.
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def _local(instant: Any, zone: Any = None) -> str:
    if instant is None:
        return "-"
    from moltbot.config import host_zone

    return str(instant.astimezone(zone or host_zone()).strftime("%Y-%m-%d %H:%M:%S %Z"))


# --- commands ------------------------------------------------------------------------------


def cmd_daemon(args: argparse.Namespace) -> int:
    import logging

    from moltbot.config import ConfigError
    from moltbot.daemon import AlreadyRunning, Daemon, DaemonLock

    _setup_logging()
    log = logging.getLogger("moltbot")
    core = _core(args)
    lock = DaemonLock(core.home.lock_path)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    try:
        try:
            specs = core.load_specs()
        except ConfigError as error:
            log.error("refusing to start: the configuration has errors:\n%s", error)
            return EXIT_CONFIG
        core.sync(specs)
        return Daemon(core, specs).serve()
    finally:
        lock.release()


def _setup_logging() -> None:
    import logging

    if os.environ.get("JOURNAL_STREAM"):
        # journald adds the time; "<N>" sets the priority of each line.
        class PriorityFormatter(logging.Formatter):
            LEVELS: ClassVar[dict[str, int]] = {
                "DEBUG": 7,
                "INFO": 6,
                "WARNING": 4,
                "ERROR": 3,
                "CRITICAL": 2,
            }

            def format(self, record: logging.LogRecord) -> str:
                return f"<{self.LEVELS.get(record.levelname, 6)}>{super().format(record)}"

        formatter: logging.Formatter = PriorityFormatter("%(name)s: %(message)s")
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MOLTBOT_LOG_LEVEL", "INFO").upper())


def _unknown(exc: Exception) -> int:
    print(f"moltbot: {exc}", file=sys.stderr)
    return EXIT_USAGE


def cmd_run(args: argparse.Namespace) -> int:
    from moltbot.scheduler import UnknownTask

    core = _ready_core(args)
    try:
        run = _run_one(core, args.task, announce=not args.json)
    except UnknownTask as exc:
        return _unknown(exc)
    except RuntimeError as exc:
        print(f"moltbot: {exc}", file=sys.stderr)
        return EXIT_FAILED
    result = core.run_result(run)
    if args.json:
        _print_json(result)
    else:
        _print_run(result)
    return EXIT_OK if result["success"] else EXIT_FAILED


def _print_run(result: dict[str, Any]) -> None:
    mark = "✓" if result["success"] else "✗"
    print(f"{mark} {result['task_id']} (run {result['run_id']}): {result['status']} - {result['message']}")
    for stream in ("stdout", "stderr"):
        if result[stream].strip():
            print(f"--- {stream} (last lines) ---")
            print(result[stream].rstrip())


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def _run_one(core: Core, name: str, announce: bool) -> Any:
    """Run a task now: handed to the daemon when one runs, else in the foreground.

    Raises RuntimeError when the run cannot be carried out to its end here.
    """
    from moltbot.store import ACTIVE_RUN_STATES

    if core.daemon_pid() is None:
        return _run_in_foreground(core, name)
    queued = core.request_run(name, "manual", requested_by=f"cli:{_user()}")
    if queued.status == "skipped":
        return queued
    if announce:
        print(f"run {queued.id} of {queued.task_id} handed to the daemon; waiting...", file=sys.stderr)
    run = core.wait_for_run(queued.id)
    if run.status in ACTIVE_RUN_STATES:
        raise RuntimeError(
            f"the daemon stopped before run {run.id} finished; it is recorded and resumes (or runs) "
            "when the daemon is back"
        )
    return run


def _run_in_foreground(core: Core, name: str) -> Any:
    """No daemon: claim the task, run it here, record it exactly like the daemon would."""
    import signal
    import threading

    from moltbot import store
    from moltbot.daemon import Executor
    from moltbot.runner import Supervisor

    task = core.resolve(name)
    spec = {spec.task_id: spec for spec in core.load_specs()}.get(task.task_id)
    if spec is None:
        raise RuntimeError(f"{task.task_id} is not in {core.home.tasks_json}")
    queued = store.enqueue_run(task.task_id, "manual", f"cli:{_user()}", core.clock.now())
    ticket, reason = store.start_queued(queued.id, core.clock.now())
    if ticket is None:
        store.skip_queued(queued.id, core.clock.now(), f"not started: {reason}")
        raise RuntimeError(f"{task.task_id} is already running")
    with Supervisor() as supervisor:
        executor = Executor(core, threading.Event(), supervisor)
        stop = lambda signum, frame: executor.cancel(task.task_id, f"{signal.Signals(signum).name} received")  # noqa: E731
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        flight = executor.launch(ticket, spec)
        executor.drain()
    return store.get_run(flight.ticket.id)


def cmd_run_all(args: argparse.Namespace) -> int:
    """Run every enabled, unpaused task once now, in priority order."""
    core = _ready_core(args)
    tasks = [task for task in core.status()["tasks"] if task["enabled"] and not task["paused_by"]]
    results = []
    failed = False
    for task in tasks:
        try:
            run = _run_one(core, task["id"], announce=not args.json)
        except RuntimeError as exc:
            print(f"moltbot: {task['id']}: {exc}", file=sys.stderr)
            failed = True
            continue
        results.append(core.run_result(run))
        if not args.json:
            _print_run(results[-1])
    if args.json:
        _print_json(results)
    return EXIT_OK if not failed and all(result["success"] for result in results) else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    core = _ready_core(args)
    if args.json:
        _print_json(core.status())
        return EXIT_OK
    from moltbot import store
    from moltbot.config import host_zone

    tasks = store.task_states()
    pid = core.daemon_pid()
    daemon = f"running (pid {pid})" if pid else "not running"
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "no tasks"
    lines = [f"moltbot daemon: {daemon} · {len(tasks)} tasks ({summary})"]
    if tasks:
        zone = host_zone()
        rows = [("TASK", "STATUS", "LAST RUN", "RESULT", "NEXT RUN", "RUNS", "ERRORS")]
        for task in tasks:
            # isoformat, not strftime: three times faster, and status lists every task.
            last = task.last_run.astimezone(zone).isoformat(" ", "seconds")[:19] if task.last_run else "-"
            nxt = task.next_run.astimezone(zone).isoformat(" ", "seconds")[:19] if task.next_run else "-"
            state = task.status + (f" ({task.paused_by})" if task.paused_by else "")
            result = task.last_status or "-"
            runs, errors = str(task.run_count), str(task.error_count)
            rows.append(
                (task.task_id, state, last, result, nxt if task.enabled else "disabled", runs, errors)
            )
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
        template = "  ".join(f"{{:{width}}}" for width in widths)
        lines += [template.format(*row).rstrip() for row in rows]
        lines.append(f"(times in {zone.key})")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from moltbot.scheduler import UnknownTask

    core = _ready_core(args)
    try:
        events = core.logs(args.task, args.lines)
    except UnknownTask as exc:
        return _unknown(exc)
    if args.json:
        _print_json(
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
    for event in events:
        print(f"[{_local(event.timestamp)}] {event.task_id}: {event.action} - {event.message}")
    return EXIT_OK


def _simple(
    action: Callable[[Core, str], Any], describe: Callable[[Any], str]
) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from moltbot.scheduler import UnknownTask

        core = _ready_core(args)
        try:
            result = action(core, args.task)
        except UnknownTask as exc:
            return _unknown(exc)
        print(describe(result))
        return EXIT_OK

    return command


def _describe_pause(task: Any) -> str:
    extra = " (its current run continues; `moltbot stop` ends it)" if task.current_run_id else ""
    return f"Task {task.task_id} paused{extra}"


def _describe_resume(task: Any) -> str:
    return f"Task {task.task_id} resumed; next run {_local(task.next_run)}"


cmd_pause = _simple(lambda core, name: core.pause(name), _describe_pause)
cmd_resume = _simple(lambda core, name: core.resume(name), _describe_resume)


def cmd_stop(args: argparse.Namespace) -> int:
    from moltbot.scheduler import UnknownTask

    core = _ready_core(args)
    try:
        run = core.request_stop(args.task)
    except UnknownTask as exc:
        return _unknown(exc)
    if run is None:
        print(f"{args.task} is not running")
        return EXIT_FAILED
    print(f"stopping run {run.id} of {run.task_id}")
    return EXIT_OK


def cmd_next(args: argparse.Namespace) -> int:
    from moltbot.scheduler import UnknownTask

    core = _ready_core(args)
    try:
        task = core.resolve(args.task)
        instants = core.next_runs(args.task, args.count)
    except UnknownTask as exc:
        return _unknown(exc)
    if args.json:
        _print_json([instant.isoformat() for instant in instants])
        return EXIT_OK
    zone = core.zone_of(task)
    if not instants:
        reason = "paused" if task.paused_by else "disabled" if not task.enabled else "no further runs"
        print(f"{task.task_id}: {reason}")
    for instant in instants:
        print(f"{_local(instant, zone)} ({zone.key})")
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from moltbot import store
    from moltbot.config import split_schedule_key

    _ready_core(args)

    tasks = store.list_tasks()
    listing = []
    for task in tasks:
        spec = task.spec()
        schedule_text, zone = split_schedule_key(task.schedule_key)
        listing.append(
            {
                "task_id": task.task_id,
                "name": task.name,
                "schedule": schedule_text,
                "timezone": zone,
                "enabled": task.enabled,
                "priority": task.priority,
                "script_path": spec.get("script_path"),
                "runs": _what_it_runs(spec),
                "description": spec.get("description", ""),
            }
        )
    if args.json:
        _print_json(listing)
        return EXIT_OK
    for item in listing:
        state = "" if item["enabled"] else " [disabled]"
        print(
            f"{item['task_id']}{state}: {item['name']} - {item['schedule']} ({item['timezone']}), "
            f"priority {item['priority']}, runs {item['runs']}"
        )
    return EXIT_OK


def _what_it_runs(spec: dict[str, Any]) -> str:
    """A task's process in words: its script, its playbook, or moltbot's own action."""
    if spec.get("kind") == "playbook":
        return f"ansible-playbook -i {spec.get('inventory')} {spec.get('playbook')}"
    if spec.get("kind") == "llm":
        return "a prompt for the model"
    return str(spec.get("script_path") or "a Discord task action")


def cmd_check(args: argparse.Namespace) -> int:
    from moltbot.config import ConfigError, Home, load_settings, load_tasks

    home = Home.from_env(args.home)
    home.ensure()
    try:
        settings = load_settings(home.settings_toml)
        specs = load_tasks(home.tasks_json, home.tasks_dir, settings.timezone)
    except ConfigError as error:
        print(error, file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{home.tasks_json}: {len(specs)} tasks OK; {home.settings_toml}: OK")
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate, then have the daemon pick up tasks.json (SIGHUP); without one, sync the store."""
    import signal

    code = cmd_check(args)
    if code != EXIT_OK:
        return code
    core = _core(args)
    pid = core.daemon_pid()
    if pid and pid > 0:
        os.kill(pid, signal.SIGHUP)
        print(f"reload sent to the daemon (pid {pid})")
    else:
        result = core.sync(core.load_specs())
        print(f"no daemon running; store synced (added {len(result.added)}, changed {len(result.changed)}, "
              f"removed {len(result.removed)})")  # fmt: skip
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace) -> int:
    task_id = args.task or os.environ.get("MOLTBOT_TASK_ID")
    if not task_id:
        print("moltbot: no task: run inside a moltbot task or pass --task", file=sys.stderr)
        return EXIT_USAGE
    core = _core(args)
    run_id = os.environ.get("MOLTBOT_RUN_ID")
    if args.action == "save":
        try:
            data = json.loads(args.data)
        except (TypeError, json.JSONDecodeError) as exc:
            print(f"moltbot: checkpoint save needs a JSON argument: {exc}", file=sys.stderr)
            return EXIT_USAGE
        core.save_checkpoint(task_id, data, int(run_id) if run_id and run_id.isdigit() else None)
    elif args.action == "load":
        data = core.load_checkpoint(task_id)
        if data is None:
            return EXIT_FAILED
        print(json.dumps(data))
    else:
        core.clear_checkpoint(task_id)
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    """Messages not delivered yet, and those given up (refused, or possibly delivered)."""
    from moltbot.store import messages

    _core(args)
    rows = messages.pending_outbox()
    if args.json:
        _print_json(
            [
                {
                    "id": row.id,
                    "channel": row.channel,
                    "address": row.address,
                    "status": row.status,
                    "attempts": row.attempts,
                    "created_at": row.created_at.isoformat(),
                    "next_attempt": row.due_at.isoformat() if row.status == "pending" else None,
                    "error": row.last_error,
                    "text": row.text,
                    "run_id": row.run_id,
                }
                for row in rows
            ]
        )
        return EXIT_OK
    if not rows:
        print("outbox: nothing waiting")
        return EXIT_OK
    for row in rows:
        what = (row.text or f"result of run {row.run_id}").splitlines()[0][:60]
        error = f" ({row.last_error})" if row.last_error else ""
        print(f"{row.id:>6} {row.status:<8} {row.channel}:{row.address} tries {row.attempts}: {what}{error}")
    return EXIT_OK


def cmd_discord_action(args: argparse.Namespace) -> int:
    """A Discord task's run (the daemon starts it): queue its message; print what it says."""
    from moltbot.discord_tasks.actions import ActionError, perform

    core = _core(args)
    settings = core.settings.discord
    task = core.definition(args.task)
    if settings is None or not task:
        print(f"moltbot: {args.task} is not a Discord task, or [discord] is not configured", file=sys.stderr)
        return EXIT_USAGE
    try:
        address, text = perform(task, settings, core.settings.ollama, core.clock.now(), core.settings.letta)
    except Exception as exc:  # ActionError, or the agent's own error: the run fails with the reason
        reason = str(exc) if isinstance(exc, ActionError) else f"agent unavailable: {exc}"
        print(f"moltbot: {reason}", file=sys.stderr)
        return EXIT_FAILED
    print(f"→ {address}: {text}")
    return EXIT_OK


def cmd_llm_action(args: argparse.Namespace) -> int:
    """An llm task's run (the daemon starts it): ask the model, print and deliver the answer."""
    from moltbot.agents.ollama import OllamaClient
    from moltbot.store import messages

    core = _core(args)
    task, ollama = core.definition(args.task), core.settings.ollama
    if not task.get("prompt"):
        print(f"moltbot: {args.task} is not an llm task", file=sys.stderr)
        return EXIT_USAGE
    if ollama is None:
        print("moltbot: agent unavailable: no [ollama] section in moltbot.toml", file=sys.stderr)
        return EXIT_FAILED
    try:
        with OllamaClient(ollama.host, task.get("model") or ollama.model, ollama.timeout_seconds) as client:
            answer = client.chat([{"role": "user", "content": task["prompt"]}]).content.strip()
    except Exception as exc:  # AgentUnavailable names the cause
        print(f"moltbot: agent unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(answer)
    target = str(task.get("deliver_to") or "")
    if target == "signal:admins":
        messages.enqueue_message("alerts", "admins", answer, core.clock.now())
    elif target.startswith("discord:"):
        messages.enqueue_message("discord", target.split(":", 1)[1], answer, core.clock.now())
    return EXIT_OK


def cmd_playbook_action(args: argparse.Namespace) -> int:
    """A playbook task's run (the daemon starts it): ansible-playbook, then keep its recap on the run."""
    from moltbot import playbooks, store

    core = _core(args)
    task = core.definition(args.task)
    if task.get("kind") != "playbook":
        print(f"moltbot: {args.task} is not a playbook task", file=sys.stderr)
        return EXIT_USAGE
    try:
        code, recap = playbooks.run(task, core.home.tasks_dir, os.environ)
    except playbooks.PlaybookError as exc:
        print(f"moltbot: {exc}", file=sys.stderr)
        return EXIT_FAILED
    run_id = os.environ.get("MOLTBOT_RUN_ID")
    if recap is not None and run_id:
        store.set_run_recap(int(run_id), recap)
    return code


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check everything moltbot depends on, in order; print a fix for each failure."""
    from moltbot.config import Home
    from moltbot.doctor import run_checks

    checks = run_checks(Home.from_env(args.home))
    failed = any(not check.ok and check.required for check in checks)
    if args.json:
        _print_json({"ok": not failed, "checks": [check.__dict__ for check in checks]})
    else:
        for check in checks:
            print(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
            if not check.ok and check.fix:
                print(f"    fix: {check.fix}")
    return EXIT_FAILED if failed else EXIT_OK


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moltbot", description="moltbot: a careful task scheduler.")
    parser.add_argument("--home", help="MOLTBOT_HOME (default: $MOLTBOT_HOME or ~/moltbot-system)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        task: str | None = None,
        json_flag: bool = False,
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        if task == "required":
            command.add_argument("task", help="task id or name")
        elif task == "optional":
            command.add_argument("task", nargs="?", help="task id or name")
        if json_flag:
            command.add_argument("--json", action="store_true", help="machine-readable output")
        command.set_defaults(handler=handler)
        return command

    add("daemon", cmd_daemon, "run the scheduler in the foreground (systemd runs this)")
    add("run", cmd_run, "run a task now and wait for its result", "required", True)
    add("run-all", cmd_run_all, "run every enabled task once now, in priority order", json_flag=True)
    add("status", cmd_status, "show the daemon and every task", json_flag=True)
    logs = add("logs", cmd_logs, "show recent task events", "optional", True)
    logs.add_argument("-n", "--lines", type=int, default=20, help="how many (default 20)")
    add("pause", cmd_pause, "stop scheduling a task (a current run continues)", "required")
    add("resume", cmd_resume, "schedule a paused task again", "required")
    add("stop", cmd_stop, "terminate a task's current run", "required")
    nxt = add("next", cmd_next, "show upcoming run times", "required", True)
    nxt.add_argument("-n", "--count", type=int, default=5, help="how many (default 5)")
    add("tasks", cmd_tasks, "list task definitions", json_flag=True)
    add("check", cmd_check, "validate tasks.json and moltbot.toml")
    add(
        "doctor",
        cmd_doctor,
        "check config, database and every configured service; print fixes",
        json_flag=True,
    )
    add("outbox", cmd_outbox, "list chat messages not delivered yet (or given up)", json_flag=True)
    add(
        "discord-action",
        cmd_discord_action,
        "(run by the daemon) perform a Discord task's action",
        "required",
    )
    add("llm-action", cmd_llm_action, "(run by the daemon) ask the model an llm task's prompt", "required")
    add("playbook-action", cmd_playbook_action, "(run by the daemon) run a playbook task", "required")
    add("reload", cmd_reload, "validate, then make the daemon reload tasks.json (SIGHUP)")
    checkpoint = add("checkpoint", cmd_checkpoint, "save, load or clear the running task's checkpoint")
    checkpoint.add_argument("action", choices=["save", "load", "clear"])
    checkpoint.add_argument("data", nargs="?", help="JSON to save")
    checkpoint.add_argument("--task", help="task id (default: $MOLTBOT_TASK_ID)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear line rather than a traceback for operational errors
        from moltbot.config import ConfigError

        if isinstance(exc, ConfigError):
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        raise
    return code


if __name__ == "__main__":
    sys.exit(main())
