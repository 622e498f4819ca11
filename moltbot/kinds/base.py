"""What a task kind is: its fields in tasks.json, its process, and (for moltbot's own kinds) its action.

A task's run is always a process in its own group, supervised by the runner
(timeout, log, stop, retries, alerts). A ``script`` task's process is its
script; the other kinds run ``moltbot <kind>-action TASK``, whose ``act``
does the kind's work in that process and reports through an
``ActionContext`` (the core API, seen from inside a run).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol

from moltbot.clock import Clock, SystemClock
from moltbot.config.home import Home
from moltbot.config.reader import TaskReader
from moltbot.config.secrets import secret_reference
from moltbot.config.settings import Settings
from moltbot.config.spec import TaskSpec
from moltbot.records import Watcher

__all__ = ["ActionContext", "RunDirContext", "TaskKind", "read_user"]


class ActionContext(Protocol):
    """What a kind's action may do: read the settings, deliver messages, keep a run's recap."""

    home: Home
    clock: Clock

    @property
    def settings(self) -> Settings: ...

    def post(self, watcher: Watcher, text: str, run_id: int | None = None) -> int: ...

    def alert(self, text: str) -> None: ...

    def set_run_recap(self, run_id: int, recap: str) -> None: ...


class RunDirContext:
    """An action running as the task user (a playbook's): it may not open the database, so what it
    keeps for the run (the recap) goes to its run's folder, which the daemon takes at the run's end."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.clock: Clock = SystemClock()

    @property
    def settings(self) -> Settings:
        return Settings()  # config/ is not the task user's to read; a playbook's action reads none

    def post(self, watcher: Watcher, text: str, run_id: int | None = None) -> int:
        raise RuntimeError("an action running as the task user cannot send messages")

    def alert(self, text: str) -> None:
        raise RuntimeError("an action running as the task user cannot send alerts")

    def set_run_recap(self, run_id: int, recap: str) -> None:
        from moltbot import run_dirs

        run_dirs.leave(run_dirs.RECAP, recap)


class TaskKind:
    """A kind whose run is moltbot's own action (subclasses override what differs)."""

    name = ""
    fields: tuple[
        str, ...
    ] = ()  # the fields tasks.json entries of this kind may have, beyond the common ones
    # Variables of the daemon's environment this kind's process receives (no other task sees them):
    # what its action needs to read its tables of moltbot.toml (``settings``) and reach its services.
    passed_environment: tuple[str, ...] = ()
    # Secrets its action needs, handed on as the daemon has them: a file's path, or the variable.
    passed_secrets: tuple[str, ...] = ()
    # The integrations of moltbot.toml its action reads (others are not read, so need no variables).
    settings: tuple[str, ...] = ()
    # Its run executes the owner's code (a script, a playbook): with ``[daemon] task_user`` it runs as
    # that user, or as the task's own ``user`` (task_users.py). moltbot's own actions that need the
    # database and the agents' keys (llm, discord) run as the daemon's user.
    as_task_user = False
    # Its action reads the task's definition: from the store, or, as the task user, its run's folder.
    reads_definition = True
    # Its process may queue chat messages (the daemon then wakes the senders when a run ends).
    posts_messages = False

    def read(self, reader: TaskReader) -> None:
        """Check this kind's fields of a tasks.json entry (problems go to ``reader``)."""

    def command(self, spec: TaskSpec, home: Home) -> list[str]:
        """The run's argv."""
        # -P: the run's working directory is tasks/, and `python -m` would put it first on
        # sys.path, so a tasks/argparse.py (anyone's who may write there) would be imported into
        # moltbot in place of the standard library's.
        return [sys.executable, "-P", "-m", "moltbot", f"{self.name}-action", spec.task_id]

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """What the run gets of the daemon's environment, beyond the minimal one every run gets."""
        passed = {name: environ[name] for name in self.passed_environment if name in environ}
        for name in self.passed_secrets:
            passed.update(secret_reference(name, environ))
        return passed

    def describe(self, definition: Mapping[str, Any]) -> str:
        """What a run of this task does, in a few words (``moltbot tasks``)."""
        return f"moltbot's {self.name} action"

    def act(self, context: ActionContext, definition: Mapping[str, Any]) -> int:
        """The action, in the run's own process: its exit code is the run's."""
        raise NotImplementedError(f"{self.name} tasks have no action of moltbot's own")


def read_user(reader: TaskReader) -> None:
    """``user``: who the run runs as instead of ``[daemon] task_user`` (which it needs)."""
    from moltbot.config.users import unfit_task_user

    name = reader.get("user", (str,), "")
    if not name:
        return
    if reader.task_user == "":
        reader.problem(
            "user", "needs [daemon] task_user in moltbot.toml (without it tasks run as the daemon's user)"
        )
    why = unfit_task_user(name)
    if why is not None:
        reader.problem("user", why + (" (README: Security model, privileged tasks)" if "root" in why else ""))
