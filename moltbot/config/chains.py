"""Chains in tasks.json: a task's ``after`` and ``after_failure`` read, then checked across tasks.

An entry's own lists are read with it (``read_chain``); whether each names a
task of the file, and whether the chains loop, is known only once every entry
is read (``check_chains``). A cycle is reported once, on the task of the
cycle that comes first in the file, at the field holding the edge into it.
"""

from __future__ import annotations

from collections.abc import Sequence

from moltbot.config.errors import unknown_name
from moltbot.config.reader import TaskReader
from moltbot.config.spec import DISCORD_PREFIX, TASK_ID_PATTERN

__all__ = ["CHAIN_FIELDS", "check_chains", "read_chain"]

CHAIN_FIELDS = ("after", "after_failure")  # run after each success / each final failure of any of them


def read_chain(reader: TaskReader, field: str) -> tuple[str, ...]:
    """One of the entry's lists: task ids, each once, never the task itself."""
    if field not in reader.entry:
        return ()
    value = reader.entry[field]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        import json

        reader.problem(field, f"expected a list of task ids, got {json.dumps(value)[:80]}")
        return ()
    ids: list[str] = []
    for item in value:
        if item.startswith(DISCORD_PREFIX):
            reader.problem(
                field, f"{item!r}: Discord Tasks-Channel tasks cannot be chained to or from tasks.json's"
            )
        elif not TASK_ID_PATTERN.fullmatch(item):
            reader.problem(field, f"{item[:80]!r} is not a task id")
        elif item == reader.entry.get("task_id"):
            reader.problem(field, "a task cannot run after itself")
        elif item not in ids:
            ids.append(item)
    return tuple(ids)


def check_chains(readers: Sequence[tuple[TaskReader, dict[str, tuple[str, ...]]]]) -> None:
    """Every id named exists in the file; no chain comes back to where it began."""
    known = {reader.entry["task_id"] for reader, _ in readers if isinstance(reader.entry.get("task_id"), str)}
    edges: dict[str, list[tuple[str, str]]] = {}  # upstream -> [(downstream, field)]
    order: dict[str, int] = {}
    for reader, chains in readers:
        task_id = reader.entry.get("task_id")
        if not isinstance(task_id, str):
            continue
        order.setdefault(task_id, reader.index)
        for field, upstreams in chains.items():
            for upstream in upstreams:
                if upstream in known:
                    edges.setdefault(upstream, []).append((task_id, field))
                else:
                    reader.problem(field, unknown_name(upstream, sorted(known), "task"))
    by_id = {reader.entry.get("task_id"): reader for reader, _ in readers}
    for cycle, field in _cycles(edges, order):
        by_id[cycle[0]].problem(field, "cycle: " + " → ".join([*cycle, cycle[0]]) + " (a chain must end)")


def _cycles(edges: dict[str, list[tuple[str, str]]], order: dict[str, int]) -> list[tuple[list[str], str]]:
    """Each cycle once, from its task first in the file, with the field of the edge closing it."""
    found: dict[frozenset[str], tuple[list[str], str]] = {}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def record(downstream: str, field: str) -> None:
        cycle = path[path.index(downstream) :]
        first = min(range(len(cycle)), key=lambda i: order.get(cycle[i], 0))
        rotated = cycle[first:] + cycle[:first]
        found.setdefault(frozenset(cycle), (rotated, _field_into(edges, rotated[-1], rotated[0]) or field))

    def visit(root: str) -> None:  # depth first, without recursion (a long chain is no stack overflow)
        stack = [(root, iter(edges.get(root, [])))]
        state[root] = 1
        path.append(root)
        while stack:
            node, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(step[0]) == 1:
                record(*step)
            elif step[0] not in state:
                state[step[0]] = 1
                path.append(step[0])
                stack.append((step[0], iter(edges.get(step[0], []))))

    for node in sorted(edges, key=lambda task_id: order.get(task_id, 0)):
        if node not in state:
            visit(node)
    return sorted(found.values(), key=lambda item: order.get(item[0][0], 0))


def _field_into(edges: dict[str, list[tuple[str, str]]], upstream: str, downstream: str) -> str | None:
    return next((field for target, field in edges.get(upstream, []) if target == downstream), None)
