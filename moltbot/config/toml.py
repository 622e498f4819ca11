"""Reading one ``[section]`` of moltbot.toml: typed keys, problems with their line numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from moltbot.config.errors import ConfigProblem, unknown_name

__all__ = ["Section", "toml_line"]


def toml_line(text: str, section: str, key: str | None) -> int | None:
    """The line of ``key`` inside ``[section]`` (of the header, without a key): tomllib keeps none."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header := re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped):
            current = header[1]
            if key is None and current == section:
                return number
        elif current == section and key and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return None


class Section:
    """One table of the file, and the problems found in it."""

    def __init__(self, name: str, body: dict[str, Any], path: Path, text: str) -> None:
        self.name, self.body, self.path, self.text = name, body, path, text
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str | None, message: str) -> None:
        field = f"{self.name}.{key}" if key else self.name
        # A key the file lacks (a required one) is pointed at by its table's header.
        line = toml_line(self.text, self.name, key) or toml_line(self.text, self.name, None)
        self.problems.append(ConfigProblem(self.path, line, field, message))

    def note(self, key: str, message: str) -> str:
        """A warning about ``key``, placed as a problem would be (``moltbot check`` prints it)."""
        field = f"{self.name}.{key}"
        line = toml_line(self.text, self.name, key) or toml_line(self.text, self.name, None)
        return str(ConfigProblem(self.path, line, field, f"warning: {message}"))

    def read(
        self, types: dict[str, tuple[type, ...]], minimum: dict[str, float] | None = None
    ) -> dict[str, Any]:
        """The known keys of the right type; numbers must be positive (or at least their ``minimum``).
        Every other key is a problem, with the closest known name."""
        values: dict[str, Any] = {}
        for key, value in self.body.items():
            wanted = types.get(key)
            if wanted is None:
                self.problem(key, unknown_name(key, types))
            elif not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
                self.problem(key, f"expected {' or '.join(t.__name__ for t in wanted)}, got {value!r}")
            elif isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
                low = (minimum or {}).get(key)
                if low is None or value < low:
                    self.problem(key, f"must be positive, got {value!r}")
                else:
                    values[key] = value
            else:
                values[key] = value
        return values
