"""Reading one entry of tasks.json: typed fields, problems with their line and field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from moltbot.config.errors import ConfigProblem
from moltbot.config.spec import under_tasks

__all__ = ["TaskReader"]


class TaskReader:
    """One task entry (``entry``, at ``tasks[index]``), and the problems found in it."""

    def __init__(
        self,
        path: Path,
        lines: dict[Any, int],
        index: int,
        entry: dict[str, Any],
        tasks_dir: Path,
        task_user: str | None = None,
    ) -> None:
        self.path, self.lines, self.index, self.entry = path, lines, index, entry
        self.tasks_dir = tasks_dir
        self.task_user = task_user  # [daemon] task_user ("" unset; None: not known here)
        self.problems: list[ConfigProblem] = []

    def problem(self, name: str | None, message: str) -> None:
        line = self.lines.get(("tasks", self.index, name)) if name else None
        line = line or self.lines.get(("tasks", self.index))
        label = f"tasks[{self.index}]" + (f".{name}" if name else "")
        task_id = self.entry.get("task_id")
        if isinstance(task_id, str):
            label += f" ({task_id})"
        self.problems.append(ConfigProblem(self.path, line, label, message))

    def get(self, name: str, kinds: tuple[type, ...], default: Any, required: bool = False) -> Any:
        """The field's value when it has one of ``kinds`` (bool only when listed), else ``default``."""
        if name not in self.entry:
            if required:
                self.problem(None, f"missing required field {name!r}")
            return default
        value = self.entry[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            self.problem(name, f"expected {expected}, got {json.dumps(value)}")
            return default
        return value

    def refuse(self, names: tuple[str, ...], why: str) -> None:
        """Fields this task's kind has no use for."""
        for name in names:
            if name in self.entry:
                self.problem(name, why)

    def check_path(self, name: str, value: str, executable: bool) -> None:
        """A script, playbook or inventory: under tasks/ when relative, and there."""
        path = under_tasks(value, self.tasks_dir)
        what = name.replace("script_path", "script")
        if not Path(value).is_absolute() and not path.resolve().is_relative_to(self.tasks_dir.resolve()):
            self.problem(
                name,
                f"{value!r} resolves outside {self.tasks_dir}; give an absolute path to use one elsewhere",
            )
            return
        if not (path.is_file() or (name == "inventory" and path.is_dir())):
            self.problem(name, f"{what} not found: {path}")
        elif executable and not os.access(path, os.X_OK):
            self.problem(name, f"{what} is not executable: {path} (chmod +x it)")
