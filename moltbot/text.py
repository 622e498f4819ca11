"""Text for chat: long texts cut into chat-sized parts, and text from outside quoted as such.

Signal counts UTF-8 bytes (2000), Discord characters (2000): ``in_bytes``
chooses the measure.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["quoted", "shown_output", "split_text"]

_SPACES = re.compile(r"\s+")
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?")  # CSI, OSC, or ESC x
QUOTE_LIMIT = 120  # characters of someone else's text in one of moltbot's messages


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` (someone else's words) as one line between “ and ”, at most ``limit`` characters.

    So it can never pass for moltbot's own words: no line break to start a line of its
    own, no quote mark of its kind to end the quote early, no control or format
    character (a right-to-left override would reorder what the reader sees)."""
    visible = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    flat = _SPACES.sub(" ", visible.replace("“", '"').replace("”", '"')).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"“{flat}”"


def shown_output(text: str) -> str:
    """A task's output as a phone may show it: its lines kept, but no terminal escape sequence
    (colours, titles) and no control or format character (a right-to-left override would
    reorder what the reader sees; a carriage return hides what came before it)."""
    plain = _ESCAPES.sub("", text).replace("\r\n", "\n")
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else "" for ch in plain)


def split_text(text: str, limit: int, in_bytes: bool = False) -> list[str]:
    """Parts of at most ``limit`` bytes or characters; a line longer than that is cut inside."""

    def size(part: str) -> int:
        return len(part.encode()) if in_bytes else len(part)

    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while size(line) > limit:  # one line longer than a part
            head = line.encode()[:limit].decode(errors="ignore") if in_bytes else line[:limit]
            if current:
                parts.append(current)
                current = ""
            parts.append(head)
            line = line[len(head) :]
        if size(current + line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current or not parts:
        parts.append(current)
    return [part.rstrip("\n") for part in parts]
