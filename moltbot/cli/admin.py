"""Running and looking after moltbot: daemon, check, reload, checkpoint, outbox, doctor."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from moltbot.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, core, print_json
from moltbot.config.errors import ConfigError
from moltbot.config.home import Home, HomeError

if TYPE_CHECKING:
    from moltbot.config.settings import Settings
    from moltbot.config.spec import TaskSpec
    from moltbot.core import Core
    from moltbot.records import ReloadOutcome

__all__ = ["cmd_check", "cmd_checkpoint", "cmd_daemon", "cmd_doctor", "cmd_outbox", "cmd_reload"]


def cmd_daemon(args: argparse.Namespace) -> int:
    from moltbot.cli.logs import daemon_logger
    from moltbot.cluster import node_name_taken
    from moltbot.core import database_identity
    from moltbot.core.lock import AlreadyRunning, DaemonLock
    from moltbot.daemon import Daemon
    from moltbot.privileges import keep_capabilities_to_self, undumpable
    from moltbot.transports import build_transport

    # First, before any thread or child exists (capabilities are per thread, inherited by both):
    # no same-user process may read our environment (the secrets) or memory, and no child inherits
    # the capabilities the unit grants us to start tasks as the task user.
    undumpable()
    keep_capabilities_to_self()
    log = daemon_logger()
    made_now = not Home.from_env(args.home).tasks_json.exists()  # the first start lays the home out
    try:
        opened = core(args)
    except HomeError as error:
        log.error("refusing to start: %s", error)
        return EXIT_CONFIG
    log.info("moltbot home %s%s", opened.home.root, " (made now, with the bundled example tasks)" * made_now)
    lock = DaemonLock(opened.home.lock_path)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    try:
        database_identity.record(opened.home, os.getpid())  # a CLI opening another file says so
        try:
            specs = opened.load_specs()
        except ConfigError as error:
            log.error("refusing to start: the configuration has errors:\n%s", error)
            return EXIT_CONFIG
        checked = _keep_tasks_apart(opened, specs)
        if checked is None:
            return EXIT_CONFIG
        taken = node_name_taken(opened)
        if taken is not None:
            log.error("refusing to start: %s", taken)
            return EXIT_CONFIG
        opened.sync(specs)
        daemon = Daemon(opened, specs, build_transport)
        daemon.executor.checked_users = checked
        return daemon.serve()
    finally:
        database_identity.forget(opened.home)
        lock.release()


def _keep_tasks_apart(opened: Core, specs: list[TaskSpec]) -> set[str] | None:
    """With ``[daemon] task_user``: the users tasks run as, once nothing of theirs can reach what it
    must not (task_users.py); None (logged) when something could."""
    import logging

    task_user = opened.settings.task_user
    if not task_user:
        return set()
    from moltbot.task_users import prepare, users_of

    names = users_of(task_user, specs)
    problems = prepare(opened.home, names)
    if problems:
        logging.getLogger("moltbot").error(
            "refusing to start: tasks would not be kept apart from the daemon:\n  %s\n"
            "fix: MOLTBOT_HOME, config/ and tasks/ belong to root and are not writable by others; the "
            "secrets' files are the daemon's alone (README: Security model)",
            "\n  ".join(problems),
        )
        return None
    return names


def cmd_check(args: argparse.Namespace) -> int:
    home = Home.from_env(args.home)
    checked = _validate(args)
    if isinstance(checked, int):
        return checked
    settings, specs = checked
    for warning in settings.signal.warnings if settings.signal else ():
        print(warning, file=sys.stderr)
    settings_state = "OK" if home.settings_toml.exists() else "not present (defaults)"
    print(f"{home.tasks_json}: {len(specs)} tasks OK; {home.settings_toml}: {settings_state}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> tuple[Settings, list[TaskSpec]] | int:
    """moltbot.toml and tasks.json read and checked; the exit code (problems on stderr) if broken."""
    from moltbot.config.settings import load_settings
    from moltbot.config.tasks import load_tasks

    home = Home.from_env(args.home)
    home.ensure()
    try:
        settings = load_settings(home.settings_toml)
        specs = load_tasks(home.tasks_json, home.tasks_dir, settings.timezone, settings.task_user)
        specs = core(args).load_specs()  # again, with the history: a one-shot whose time is past
    except ConfigError as error:
        print(error, file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found", file=sys.stderr)
        return EXIT_CONFIG
    return settings, specs


# How long `moltbot reload` waits for the daemon to say what its reload did: both files are read
# and each changed chat bridge stopped (a send under way may take its gateway timeout) and started.
RELOAD_ANSWER_SECONDS = 30.0


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate, then have the daemon reload (SIGHUP) and print what it did; without one, sync."""
    import signal

    checked = _validate(args)
    if isinstance(checked, int):
        return checked
    opened = core(args)
    pid = opened.daemon_pid()
    if not pid or pid < 0:
        result = opened.sync(opened.load_specs())
        print(f"no daemon running; store synced (added {len(result.added)}, changed {len(result.changed)}, "
              f"removed {len(result.removed)})")  # fmt: skip
        return EXIT_OK
    last = opened.last_reload()
    os.kill(pid, signal.SIGHUP)
    outcome = _newer_reload(opened, last.number if last else 0)
    if outcome is None:
        waited = f"{RELOAD_ANSWER_SECONDS:g} s"
        print(f"moltbot: the daemon (pid {pid}) did not answer the reload within {waited}; its log says "
              "what it did (journalctl -u moltbot)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    print(outcome.text, file=sys.stdout if outcome.ok else sys.stderr)
    return EXIT_OK if outcome.ok else EXIT_CONFIG


def _newer_reload(opened: Core, after: int) -> ReloadOutcome | None:
    """The daemon's reload outcome numbered after ``after``, once it is recorded (None: not in time)."""
    import time

    deadline = time.monotonic() + RELOAD_ANSWER_SECONDS
    while time.monotonic() < deadline:
        outcome = opened.last_reload()
        if outcome is not None and outcome.number > after:
            return outcome
        time.sleep(0.05)
    return None


def cmd_checkpoint(args: argparse.Namespace) -> int:
    task_id = args.task or os.environ.get("MOLTBOT_TASK_ID")
    if not task_id:
        print("moltbot: no task: run inside a moltbot task or pass --task", file=sys.stderr)
        return EXIT_USAGE
    if os.environ.get("MOLTBOT_RUN_DIR") and task_id == os.environ.get("MOLTBOT_TASK_ID"):
        return _checkpoint_of_this_run(args)
    opened = core(args)
    run_id = os.environ.get("MOLTBOT_RUN_ID")
    if args.action == "save":
        data = _json_argument(args.data)
        if data is _NOT_JSON:
            return EXIT_USAGE
        opened.save_checkpoint(task_id, data, int(run_id) if run_id and run_id.isdigit() else None)
    elif args.action == "load":
        data = opened.load_checkpoint(task_id)
        if data is None:  # exit 1 lets a script tell "none" from a saved null; stderr tells a person
            print(f"moltbot checkpoint: no checkpoint saved for {task_id}", file=sys.stderr)
            return EXIT_FAILED
        print(json.dumps(data))
    else:
        opened.clear_checkpoint(task_id)
    return EXIT_OK


_NOT_JSON = object()


def _json_argument(text: str | None) -> Any:
    """``checkpoint save``'s argument, parsed; ``_NOT_JSON`` (said on stderr) when it is not JSON."""
    try:
        return json.loads(text)  # type: ignore[arg-type]  # None: the TypeError below
    except (TypeError, json.JSONDecodeError) as exc:
        print(f"moltbot: checkpoint save needs a JSON argument: {exc}", file=sys.stderr)
        return _NOT_JSON


def _checkpoint_of_this_run(args: argparse.Namespace) -> int:
    """A run as the task user keeps its checkpoint in its own folder; the daemon stores it at its end."""
    from moltbot import run_dirs

    if args.action == "save":
        data = _json_argument(args.data)
        if data is _NOT_JSON:
            return EXIT_USAGE
        run_dirs.save(data)
    elif args.action == "load":
        data = run_dirs.load()
        if data is None:
            return EXIT_FAILED
        print(json.dumps(data))
    else:
        run_dirs.clear()
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    """Messages not delivered yet, and those given up (refused, or possibly delivered)."""
    messages = core(args).chat.pending()
    if args.json:
        print_json(
            [
                {
                    "id": message.id,
                    "channel": message.channel,
                    "address": message.address,
                    "status": message.status,
                    "attempts": message.attempts,
                    "created_at": message.created_at.isoformat(),
                    "next_attempt": message.due_at.isoformat() if message.status == "pending" else None,
                    "error": message.last_error,
                    "text": message.text,
                    "run_id": message.run_id,
                }
                for message in messages
            ]
        )
        return EXIT_OK
    if not messages:
        print("outbox: nothing waiting")
        return EXIT_OK
    for message in messages:
        what = (message.text or f"result of run {message.run_id}").splitlines()[0][:60]
        error = f" ({message.last_error})" if message.last_error else ""
        where = f"{message.channel}:{message.address}"
        print(f"{message.id:>6} {message.status:<8} {where} tries {message.attempts}: {what}{error}")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check everything moltbot depends on, in order; print a fix for each failure."""
    from moltbot.doctor import run_checks

    checks = run_checks(Home.from_env(args.home))
    failed = any(not check.ok and check.required for check in checks)
    if args.json:
        print_json({"ok": not failed, "checks": [check.__dict__ for check in checks]})
    else:
        for check in checks:
            mark = "✓" if check.ok else "✗" if check.required else "!"  # !: a warning, doctor still exits 0
            print(f"{mark} {check.name}: {check.detail}")
            if not check.ok and check.fix:
                print(f"    fix: {check.fix}")
    return EXIT_FAILED if failed else EXIT_OK
