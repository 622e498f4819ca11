"""A URL moltbot calls as given (a monitor's ping URL): checked before it is ever used."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["MAX_URL_CHARS", "http_url_problem", "split_url"]

MAX_URL_CHARS = 2048


def split_url(value: str) -> SplitResult | str:
    """``value``'s parts, or why it is no URL at all (too long, blanks or control characters, a port
    that is not a number)."""
    if len(value) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS} characters"
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError as exc:
        return f"not a URL ({exc})"
    return parts


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL with a host, without blanks (None: it is one)."""
    if not value:
        return "expected an http(s) URL, got an empty string"
    parts = split_url(value)
    if isinstance(parts, str):
        return parts
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http(s) URL such as https://hc-ping.com/<uuid>, got {value!r}"
    if parts.fragment:
        return "a ping URL has no '#' part"
    return None
