"""JSON from outside moltbot, refused before it is parsed when it is too big or nested too deep.

The stdlib's parser recurses once per level of nesting: a frame nested a few
thousand levels deep raises RecursionError (and on some builds exhausts the
C stack), and nothing bounds its size. So the size is checked first, then
the depth, by a scan that never recurses: strings are cut out (a bracket
inside one does not nest), the brackets left become +1/-1 steps, and their
running sum is the depth. Only then does ``json.loads`` see the text.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "UnsafeJson", "loads"]

# Deeper than anything the services moltbot talks to send (a Signal envelope nests ~7 levels),
# and far below the stdlib parser's own limit.
MAX_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
# As signed bytes: an opening bracket is one level in (+1), a closing one out (0xff = -1).
_STEPS = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff"})


class UnsafeJson(ValueError):
    """Refused without parsing it: bigger or deeper than allowed."""


def loads(data: str | bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads``, after checking size and depth; UnsafeJson (or the parser's ValueError)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode())
    if size > max_bytes:
        raise UnsafeJson(f"{size} bytes, over the {max_bytes} allowed")
    text = data.decode() if isinstance(data, bytes) else data
    if _deeper_than(text, max_depth):
        raise UnsafeJson(f"nested deeper than {max_depth} levels")
    return json.loads(text)


def _deeper_than(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False  # too few brackets to nest that deep: the common case, at C speed
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    steps = array("b", brackets.translate(_STEPS).encode("latin-1"))
    return max(accumulate(steps), default=0) > limit
