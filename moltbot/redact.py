"""Credentials in URLs masked wherever moltbot shows one: its log, status, doctor, chat answers.

A gateway or agent behind a reverse proxy with basic auth is configured as
``http://user:password@host``; what moltbot writes says ``http://***@host``.
"""

from __future__ import annotations

import re

__all__ = ["masked_url", "redact_urls"]

# scheme://userinfo@ : the userinfo stops at the first "/", "?", "#" or blank (then it is a path,
# a query or prose, not credentials).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]+@")


def redact_urls(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


def masked_url(url: str) -> str:
    """A URL that is its own secret (a monitor's ping URL: its UUID or key is the password), shown
    as its host and the last 4 characters: ``https://hc-ping.com/…9f3a``; enough to tell two apart."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    tail = url.rstrip("/")[-4:] if "/" in rest.rstrip("/") else ""
    return f"{scheme}://{host}/…{tail}" if tail else f"{scheme}://{host}"
