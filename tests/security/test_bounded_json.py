"""The bounded parser's depth scan agrees with the real nesting of any JSON value, strings included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moltbot.bounded_json import UnsafeJson, loads

# Strings full of what could fool a scan: brackets, quotes, backslashes.
tricky_text = st.text(alphabet='[]{}"\\ax\n', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(values, st.integers(min_value=0, max_value=6))
def test_a_value_is_parsed_exactly_when_it_nests_no_deeper_than_allowed(value: Any, limit: int) -> None:
    text = json.dumps(value)
    if depth(value) <= limit:
        assert loads(text, max_bytes=10**6, max_depth=limit) == value
    else:
        with pytest.raises(UnsafeJson, match=f"nested deeper than {limit} levels"):
            loads(text, max_bytes=10**6, max_depth=limit)


def test_the_size_is_checked_in_bytes_before_anything_else() -> None:
    assert loads(b'"\xc3\xa4"', max_bytes=4) == "ä"
    with pytest.raises(UnsafeJson, match="6 bytes, over the 5 allowed"):
        loads('"ää"', max_bytes=5)  # 4 characters, but 6 bytes
