"""Line numbers for JSON paths, so config errors can say "tasks.json:14 field x".

The stdlib parser keeps no positions, so this walks the text once with the
stdlib's own scanners and records where each member and element starts.
It runs only on text that ``json.loads`` already accepted.
"""

from __future__ import annotations

import bisect
import json
from json.decoder import scanstring  # type: ignore[attr-defined]  # real, but not in typeshed

__all__ = ["Path", "line_map"]

Path = tuple[str | int, ...]
_WHITESPACE = " \t\n\r"
_decoder = json.JSONDecoder()


def line_map(text: str) -> dict[Path, int]:
    """Map every path (keys and list indexes) to the 1-based line where it starts."""
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    lines: dict[Path, int] = {}
    _value(text, _skip(text, 0), (), lines, starts)
    return lines


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _line(starts: list[int], index: int) -> int:
    return bisect.bisect_right(starts, index)  # counting from the top each time was quadratic


def _value(text: str, index: int, path: Path, lines: dict[Path, int], starts: list[int]) -> int:
    """Record positions inside the value at ``index``; return the index after it."""
    lines.setdefault(path, _line(starts, index))
    char = text[index]
    if char == "{":
        index = _skip(text, index + 1)
        if text[index] == "}":
            return index + 1
        while True:
            key_start = index
            key, index = scanstring(text, index + 1)
            lines[(*path, key)] = _line(starts, key_start)
            index = _skip(text, index)  # at ':'
            index = _value(text, _skip(text, index + 1), (*path, key), lines, starts)
            index = _skip(text, index)
            if text[index] == "}":
                return index + 1
            index = _skip(text, index + 1)  # past ','
    if char == "[":
        index = _skip(text, index + 1)
        if text[index] == "]":
            return index + 1
        position = 0
        while True:
            index = _value(text, index, (*path, position), lines, starts)
            index = _skip(text, index)
            if text[index] == "]":
                return index + 1
            index = _skip(text, index + 1)
            position += 1
    _, end = _decoder.raw_decode(text, index)
    return end
