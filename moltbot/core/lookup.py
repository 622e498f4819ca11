"""Finding a task by what a person typed: its id or its name, the owner's tasks first."""

from __future__ import annotations

import difflib

from moltbot import store
from moltbot.records import Task

__all__ = ["UNREAD", "AmbiguousTask", "UnknownTask", "resolve_task"]

UNREAD = "tasks.json changed since the daemon read it: moltbot reload"


class UnknownTask(LookupError):
    """No task by that name; ``suggestion`` is the closest one, if any."""

    def __init__(self, name: str, suggestion: str | None, unread: bool = False) -> None:
        self.name, self.suggestion = name, suggestion
        # tasks.json changed since the daemon read it: a task just added is not known before a reload.
        self.unread = unread
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        if unread:
            hint += f"; {UNREAD}"
        super().__init__(f"unknown task {name!r}{hint}")


class AmbiguousTask(UnknownTask):
    """More than one task of the same rank goes by that name; ``candidates`` are their ids."""

    def __init__(self, name: str, candidates: list[str]) -> None:
        super().__init__(name, None)
        self.candidates = candidates
        self.args = (f"{name!r} names {len(candidates)} tasks: {', '.join(candidates)}; use the id",)


def resolve_task(name: str) -> Task:
    """A task by id or (case-insensitive) name, the owner's first, for every front.

    An exact id beats an id in another case, which beats a name; among names,
    tasks.json's beat the Discord channel's (whoever may post there cannot take
    over ``run:backup``). Two of the same rank are AmbiguousTask, naming both;
    none is UnknownTask, suggesting the closest."""
    from moltbot.config.spec import task_source  # here: `moltbot status` needs no config parsing

    task = store.get_task(name)
    if task is not None and not task.removed:
        return task
    tasks = store.list_tasks()
    lowered = name.lower()
    named = [t for t in tasks if t.name.lower() == lowered]
    ranks = (
        [t for t in tasks if t.task_id.lower() == lowered],
        [t for t in named if task_source(t.task_id) == "config"],
        [t for t in named if task_source(t.task_id) != "config"],
    )
    for found in ranks:
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousTask(name, sorted(t.task_id for t in found))
    names = [t.task_id for t in tasks] + [t.name for t in tasks]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(lowered, [n.lower() for n in names], n=1, cutoff=0.5)
    suggestion = None
    if close:
        match = next(t for t in tasks if close[0] in (t.task_id, t.name, t.task_id.lower(), t.name.lower()))
        suggestion = match.task_id
    raise UnknownTask(name, suggestion)
