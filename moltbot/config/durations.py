"""Durations as tasks.json writes them: ``"90s"``, ``"30m"``, ``"24h"``, ``"2d"``, ``"1h30m"``."""

from __future__ import annotations

import re

__all__ = ["NEVER", "parse_duration"]

NEVER = "never"
_PART = re.compile(r"(\d{1,6})\s*(d|h|m|s)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, allow_never: bool = False) -> float | None:
    """Seconds (positive); None for ``"never"`` when ``allow_never``. ValueError says what is expected."""
    cleaned = text.strip().lower()
    if allow_never and cleaned == NEVER:
        return None
    if len(cleaned) <= 40:  # bounded before it is matched
        parts = _PART.findall(cleaned)
        if parts and "".join(f"{n}{unit}" for n, unit in parts) == cleaned.replace(" ", ""):
            seconds = sum(int(n) * _SECONDS[unit] for n, unit in parts)
            if seconds > 0:
                return float(seconds)
    wanted = 'a duration like "90s", "30m", "24h", "2d" or "1h30m"' + (' or "never"' if allow_never else "")
    raise ValueError(f"expected {wanted}, got {text!r}")
