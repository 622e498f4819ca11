"""A configuration file that does not parse: where (line and column) and, for the usual mistakes, what
to write instead. The parsers say what they expected; a newcomer needs to hear what they wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

from moltbot.config.errors import ConfigProblem

__all__ = ["json_syntax_problem", "toml_syntax_problem"]

_BARE_WORD = re.compile(r"[A-Za-z_][\w./:+-]*")


def json_syntax_problem(path: Path, text: str, error: json.JSONDecodeError) -> ConfigProblem:
    hint = _json_hint(text, error)
    message = f"invalid JSON: {error.msg}" + (f"; {hint}" if hint else "")
    return ConfigProblem(path, error.lineno, None, message, error.colno)


def _json_hint(text: str, error: json.JSONDecodeError) -> str:
    at = text[error.pos : error.pos + 1]
    before = text[: error.pos].rstrip()
    if at in "]}" and at and before.endswith(","):
        return f"a comma before {at!r}: JSON allows none after the last item"
    if at == "'":
        return "JSON strings take double quotes, not single ones"
    word = _BARE_WORD.match(text, error.pos)
    if word and word[0] not in ("true", "false", "null"):
        return f'text needs double quotes: "{word[0]}"'
    if error.msg.startswith("Expecting ',' delimiter"):
        return "a comma is missing before this"
    return ""


def toml_syntax_problem(path: Path, text: str, error: Exception) -> ConfigProblem:
    """From tomllib's message, which ends "(at line L, column C)" (said once here, in front)."""
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(error))
    if found is None:
        return ConfigProblem(path, None, None, f"invalid TOML: {error}")
    line, column = int(found[1]), int(found[2])
    reason = str(error)[: found.start()]
    hint = _toml_hint(text.splitlines()[line - 1] if line <= len(text.splitlines()) else "", column)
    return ConfigProblem(path, line, None, f"invalid TOML: {reason}" + (f"; {hint}" if hint else ""), column)


def _toml_hint(line: str, column: int) -> str:
    rest = line[column - 1 :]
    if rest.startswith(","):
        return "a comma after a value: TOML has them only inside [ ] and { }"
    word = _BARE_WORD.match(rest)
    if word and word[0] not in ("true", "false", "inf", "nan"):
        return f'text needs quotes: "{word[0]}"'
    return ""
