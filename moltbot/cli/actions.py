"""The internal commands the daemon starts as a run's process for moltbot's own task kinds.

``moltbot llm-action TASK``, ``playbook-action TASK``, ``discord-action
TASK``: each reads the task's definition from the store and hands it to its
kind's ``act`` (``moltbot/kinds/``), whose exit code is the run's. It reads
only its kind's tables of moltbot.toml: its environment holds only their
variables (``TaskKind.passed_environment``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from moltbot.cli.common import EXIT_USAGE

__all__ = ["action_command"]


def action_command(kind_name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        import signal

        from moltbot import run_dirs
        from moltbot.config.home import Home
        from moltbot.config.settings import load_settings
        from moltbot.core import Core
        from moltbot.kinds import RunDirContext, kind_of, kind_of_definition
        from moltbot.privileges import die_with_parent, undumpable

        # A helper may hold what the daemon handed it (an agent's key): like the daemon, no same-user
        # process (a task) may read its environment or memory. Non-dumpable, crash recovery cannot find
        # it by its environment either, so it ends with the daemon that started it.
        undumpable()
        die_with_parent(signal.SIGKILL)

        home = Home.from_env(args.home)
        if os.environ.get(run_dirs.RUN_DIR_ENV):  # as the task user: no database, no moltbot.toml
            return kind_of(kind_name).act(RunDirContext(home), run_dirs.definition())
        opened = Core(home, settings=load_settings(home.settings_toml, only=kind_of(kind_name).settings))
        opened.open()
        definition = opened.definition(args.task)
        kind = kind_of_definition(definition) if definition else None
        if kind is None or kind.name != kind_name:
            print(f"moltbot: {args.task} is not a {kind_name} task", file=sys.stderr)
            return EXIT_USAGE
        return kind.act(opened, definition)

    command.__doc__ = f"A {kind_name} task's run (the daemon starts it)."
    return command
