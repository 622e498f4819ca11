"""Durations as people write them in tasks.json and on the command line: ``90s``, ``10m``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "parse_duration", "spoken"]

_PART = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=7)  # a question nobody answers for a week has no one to answer it


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> 1:30:00; ValueError (saying what is accepted) for anything else, zero or over a week."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or len(cleaned) > 32:
        raise ValueError(f"{text[:32]!r} is not a duration (write e.g. 90s, 10m, 1h, 1h30m, 2d)")
    seconds, position = 0, 0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += int(match[1]) * _UNITS[match[2]]
        position = match.end()
    if position != len(cleaned):
        raise ValueError(f"{text[:32]!r} is not a duration (write e.g. 90s, 10m, 1h, 1h30m, 2d)")
    duration = timedelta(seconds=seconds)
    if not timedelta(0) < duration <= MAX_DURATION:
        raise ValueError(f"{text[:32]!r} must be more than 0s and at most 7d")
    return duration


def spoken(duration: timedelta) -> str:
    """1:00:00 -> ``1h``, 0:10:00 -> ``10m``, 1:30:00 -> ``1h30m``."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
