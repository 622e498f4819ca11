"""The structure ARCHITECTURE.md describes, checked: one-way imports, no cycles, small modules.

Imports are read with ``ast`` from the source, every one of them: at the top,
inside functions, under ``TYPE_CHECKING``; importing ``a.b.c`` also imports
the packages ``a.b`` and ``a``, and that counts too (except a module's own
packages, which are already being imported when it is).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("moltbot", "handlers")
# Transports and handlers reach the store only through the core API (moltbot.core).
FRONTS = ("moltbot/signal_chat", "moltbot/discord_tasks", "handlers", "moltbot/cli")
STORE_MODULES = ("moltbot.store", "peewee", "playhouse", "sqlite3")
# Small enough to read in one sitting; a longer module says here why it is one piece.
MAX_LINES = 400
LONGER: dict[str, str] = {}  # path -> why it is one piece


def modules() -> dict[str, Path]:
    """Every module of the project, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "ansible_callbacks" in path.parts:  # loaded by ansible-playbook, not imported
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported_names(path: Path, name: str) -> Iterator[str]:
    """Every module name ``path`` imports, as written (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target in imported_names(path, name):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # the module, and the packages it is in
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != name and prefix not in own_packages:
                    graph[name].add(prefix)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for following in sorted(graph[node]):
            if state.get(following) == 1:
                return [*path[path.index(following) :], following]
            if following not in state and (cycle := visit(following)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "moltbot.store.schema" in graph["moltbot.store.database"]  # inside a function
    assert "moltbot.schedules" in graph["moltbot.config.spec"]  # under TYPE_CHECKING
    assert "moltbot.core" in graph["handlers.commands"]  # and the package a module is in
    assert "moltbot.core.api" in graph["moltbot.core"]  # a package's own re-exports
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_anywhere() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_transports_handlers_and_the_cli_never_touch_the_store() -> None:
    known = modules()
    offenders = []
    for name, path in known.items():
        if not str(path.relative_to(ROOT)).startswith(FRONTS):
            continue
        for target in imported_names(path, name):
            if target.startswith(STORE_MODULES):
                offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    assert offenders == []


def test_the_core_knows_no_transport_and_no_handler() -> None:
    graph = import_graph()
    core = [name for name in graph if name.startswith(("moltbot.core", "moltbot.store", "moltbot.records"))]
    offenders = [
        f"{name} imports {target}"
        for name in core
        for target in graph[name]
        if target.startswith(("moltbot.signal_chat", "moltbot.discord_tasks", "handlers", "moltbot.cli"))
    ]
    assert offenders == []


def test_modules_are_small_enough_to_read_in_one_sitting() -> None:
    too_long = []
    for path in modules().values():
        relative = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and relative not in LONGER:
            too_long.append(f"{relative}: {lines} lines")
    assert too_long == []
