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

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def unknown_name(name: str, known: Iterable[str], what: str = "field") -> str:
    """``unknown field 'schdule' (did you mean 'schedule'?)``."""
    import difflib  # only when something is wrong

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {name!r}{hint}"
