"""Durations as people write them in tasks.json and on the command line: ``90s``, ``10m``, ``24h``,
``1h30m``, ``2d`` (and, where a field allows it, ``never``). One parser for every field that takes one."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "NEVER", "lasted", "parse_duration", "span", "spoken"]

NEVER = "never"
_PART = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_TEXT = 32  # bounded before it is matched
MAX_DURATION = timedelta(days=7)  # a question nobody answers for a week has no one to answer it


def parse_duration(
    text: str, at_most: timedelta | None = None, allow_never: bool = False
) -> timedelta | None:
    """``"1h30m"`` -> 1:30:00; None for ``"never"`` when ``allow_never``; ValueError (saying what is
    accepted) for anything else, for zero, and for more than ``at_most``."""
    cleaned = text.strip().lower().replace(" ", "")
    if allow_never and cleaned == NEVER:
        return None
    seconds, position = 0, 0
    if len(cleaned) <= _MAX_TEXT:
        for match in _PART.finditer(cleaned):
            if match.start() != position:
                break
            seconds += int(match[1]) * _UNITS[match[2]]
            position = match.end()
    if not cleaned or position != len(cleaned):
        never = ' or "never"' if allow_never else ""
        raise ValueError(
            f'{text[:_MAX_TEXT]!r} is not a duration: write e.g. "90s", "10m", "24h", "1h30m"{never}'
        )
    duration = timedelta(seconds=seconds)
    if duration <= timedelta(0) or (at_most is not None and duration > at_most):
        most = f" and at most {spoken(at_most)}" if at_most is not None else ""
        raise ValueError(f"{text[:_MAX_TEXT]!r} must be more than 0s{most}")
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


def span(seconds: float) -> str:
    """A stretch of time as a phone says it, to the two largest units: ``59 s``, ``5 h 50 min``,
    ``2 d 3 h`` (rounded down: "in 59 min" is never really an hour away)."""
    whole = int(abs(seconds))
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if whole >= size:
            rest = (whole % size) // smaller_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole // 60} min" if whole >= 60 else f"{whole} s"


def lasted(seconds: float) -> str:
    """How long a run took: ``29.5 s`` under a minute (tenths matter there), else as ``span``."""
    return f"{seconds:.1f} s" if seconds < 60 else span(seconds)
