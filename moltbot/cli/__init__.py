"""The ``moltbot`` command line (the original scheduler.py verbs, and more).

| module | commands |
|---|---|
| ``commands`` | run, run-all, logs, history, pause, resume, stop, next |
| ``overview`` | status, tasks |
| ``admin`` | daemon, check, reload, checkpoint, outbox, doctor |
| ``talk`` | notify, ask |
| ``people`` | pair, people |
| ``actions`` | the internal ``<kind>-action`` commands a run's process is |

Everything goes through the core API (``moltbot.core``). Imports are
deferred to the command that needs them: ``moltbot status`` must answer in
well under a second on a small home server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from moltbot.cli.actions import action_command
from moltbot.cli.admin import cmd_check, cmd_checkpoint, cmd_daemon, cmd_doctor, cmd_outbox, cmd_reload
from moltbot.cli.commands import (
    cmd_history,
    cmd_logs,
    cmd_next,
    cmd_pause,
    cmd_resume,
    cmd_run,
    cmd_run_all,
    cmd_stop,
)
from moltbot.cli.common import EXIT_CONFIG, EXIT_FAILED
from moltbot.cli.migrate import cmd_migrate
from moltbot.cli.overview import cmd_status, cmd_tasks
from moltbot.cli.people import cmd_pair, cmd_people
from moltbot.cli.talk import cmd_ask, cmd_notify
from moltbot.config.errors import ConfigError
from moltbot.config.home import HomeError
from moltbot.core.database_identity import DatabaseSplit
from moltbot.file_modes import go_private
from moltbot.run_history import DEFAULT_RUNS, MAX_RUNS

__all__ = ["build_parser", "main"]


HOME_HELP = "MOLTBOT_HOME (default: $MOLTBOT_HOME or ~/moltbot-system)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moltbot", description="moltbot: a careful task scheduler.")
    parser.add_argument("--home", help=HOME_HELP)
    parser.add_argument("--version", action="version", version=f"moltbot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each command takes --home too (`moltbot status --home X`); SUPPRESS: unless given there, the
    # value given before the command (or None) stands.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS, help=HOME_HELP)

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        task: str | None = None,
        json_flag: bool = False,
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
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
    history = add("history", cmd_history, "a task's last runs at a glance", "required", True)
    history.add_argument(
        "-n", "--count", type=_runs_count, default=DEFAULT_RUNS, help=f"how many (default {DEFAULT_RUNS})"
    )
    add("pause", cmd_pause, "stop scheduling a task (a current run continues)", "required")
    add("resume", cmd_resume, "schedule a paused task again", "required")
    add("stop", cmd_stop, "terminate a task's current run", "required")
    nxt = add("next", cmd_next, "show upcoming run times", "required", True)
    nxt.add_argument("-n", "--count", type=_at_least_one, default=5, help="how many (default 5)")
    add("tasks", cmd_tasks, "list task definitions", json_flag=True)
    add("check", cmd_check, "validate tasks.json and moltbot.toml")
    add(
        "doctor",
        cmd_doctor,
        "check config, database and every configured service; print fixes",
        json_flag=True,
    )
    add("outbox", cmd_outbox, "list chat messages not delivered yet (or given up)", json_flag=True)
    add("reload", cmd_reload, "validate, then make the daemon reload tasks.json (SIGHUP)")
    checkpoint = add("checkpoint", cmd_checkpoint, "save, load or clear the running task's checkpoint")
    checkpoint.add_argument("action", choices=["save", "load", "clear"])
    checkpoint.add_argument("data", nargs="?", help="JSON to save")
    checkpoint.add_argument("--task", help="task id (default: $MOLTBOT_TASK_ID)")
    notify = add("notify", cmd_notify, "send the admins a message (inside a run: attributed to its task)")
    notify.add_argument("text", help="the message")
    ask = add("ask", cmd_ask, "ask the admins and wait: exit 0 for the first choice, 1 another, 4 no answer")
    ask.add_argument("question", help="the question")
    ask.add_argument("--timeout", default="10m", help="how long to wait (default 10m; e.g. 90s, 1h)")
    ask.add_argument("--choices", default="yes,no", help="the answers, the first is yes (default yes,no)")
    migrate = add("migrate", cmd_migrate, "copy this home's SQLite database into PostgreSQL (several nodes)")
    migrate.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user@host:5432/db (no password)"
    )
    pair = add("pair", cmd_pair, "show a one-time code; whoever sends it to the bot becomes an admin")
    pair.add_argument("--no-wait", action="store_true", help="print the code and return")
    people_help = "list who may command moltbot (remove: unpair someone)"
    people = add("people", cmd_people, people_help, json_flag=True)
    people.add_argument("action", nargs="?", choices=["remove"], help="remove a paired person")
    people.add_argument("who", nargs="?", help="their number, UUID, or the UUID's first characters")
    # The processes runs of moltbot's own kinds are: not for people, so not in --help (argparse lists
    # every command that has a help text, and shows "==SUPPRESS==" for one marked hidden).
    for kind in ("discord", "llm", "playbook"):
        action = sub.add_parser(f"{kind}-action", parents=[common])
        action.add_argument("task")
        action.set_defaults(handler=action_command(kind))
    return parser


def _at_least_one(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {count}")
    return count


def _runs_count(text: str) -> int:
    """``history -n``: 1 to ``MAX_RUNS``; past that the marks fill no screen at a glance."""
    count = _at_least_one(text)
    if count > MAX_RUNS:
        raise argparse.ArgumentTypeError(f"at most {MAX_RUNS}, not {count}")
    return count


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moltbot")
    except PackageNotFoundError:  # a checkout not installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    go_private()  # before anything is created: the home, the database, its WAL, the logs
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, rather than at exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `moltbot logs | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141  # as a shell reports a command killed by SIGPIPE
    except ConfigError as exc:  # a clear message rather than a traceback
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except HomeError as exc:  # MOLTBOT_HOME cannot be laid out: as bad as a broken config
        print(f"moltbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DatabaseSplit as exc:  # it would silently talk to another database than the daemon's
        print(f"moltbot: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code
