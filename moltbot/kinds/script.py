"""``script`` tasks (the default kind): the run is the task's own executable, started directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moltbot.config.home import Home
from moltbot.config.reader import TaskReader
from moltbot.config.spec import TaskSpec, under_tasks
from moltbot.kinds.base import TaskKind, read_user

__all__ = ["SCRIPT"]


class ScriptKind(TaskKind):
    name = "script"
    fields = ("script_path", "args", "user")
    as_task_user = True
    reads_definition = False  # its process is the script itself

    def read(self, reader: TaskReader) -> None:
        script = reader.get("script_path", (str,), "", required=True)
        args = reader.get("args", (list,), [])
        if not all(isinstance(arg, str) for arg in args):
            reader.problem("args", "expected a list of strings")
        if script:
            reader.check_path("script_path", script, executable=True)
        read_user(reader)

    def command(self, spec: TaskSpec, home: Home) -> list[str]:
        """Its shebang decides the interpreter; never through a shell."""
        return [str(under_tasks(spec.raw["script_path"], home.tasks_dir)), *spec.raw.get("args", [])]

    def describe(self, definition: Mapping[str, Any]) -> str:
        return str(definition.get("script_path"))


SCRIPT = ScriptKind()
