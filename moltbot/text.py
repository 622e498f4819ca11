"""Cutting a long text into chat-sized parts, at line ends where possible.

Signal counts UTF-8 bytes (2000), Discord characters (2000): ``in_bytes``
chooses the measure.
"""

from __future__ import annotations

__all__ = ["split_text"]


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
