"""Configuration problems: each names its file, line and field, and unknown names get a suggestion.

Loading collects every problem before raising one ``ConfigError``, so a run of
``moltbot check`` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["ConfigError", "ConfigProblem", "unknown_name"]


class ConfigProblem(NamedTuple):
    file: Path
    line: int | None
    field: str | None
    message: str
    column: int | None = None  # syntax errors know it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        where += f":{self.column}" if self.line and self.column else ""
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        # In file order, whichever check found them first (a file's own problems before its lines').
        self.problems = sorted(problems, key=lambda problem: (str(problem.file), problem.line or 0))
        super().__init__("\n".join(str(problem) for problem in self.problems))


def unknown_name(name: str, known: Iterable[str], what: str = "field") -> str:
    """``unknown field 'schdule' (did you mean 'schedule'?)``."""
    import difflib  # only when something is wrong

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {name!r}{hint}"
