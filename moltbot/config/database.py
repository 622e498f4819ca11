"""Which database a home uses, and this node's name: ``[daemon] database`` and ``[daemon] node``.

The default is the SQLite file in data/ (one box). A ``postgresql://`` URL lets several daemons on
different machines ("nodes") share one database (#15). The URL is read alone, like the time zone
(config/zone.py): every CLI command opens the database, and ``status`` must stay fast.

The password never comes from moltbot.toml (a file readable by the daemon's group, copied to every
node, shown in diffs): only from ``MOLTBOT_DATABASE_PASSWORD`` as a secret (config/secrets.py:
``_FILE``, a systemd credential, or the variable), or from ``MOLTBOT_DATABASE_URL`` itself.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit

from moltbot.config.home import Home
from moltbot.config.zone import daemon_table

__all__ = [
    "DATABASE_URL_VARIABLE",
    "PASSWORD_SECRET",
    "PostgresTarget",
    "database_target",
    "database_url_problem",
    "node_name",
    "node_name_problem",
    "redacted",
    "without_password",
]

DATABASE_URL_VARIABLE = "MOLTBOT_DATABASE_URL"
PASSWORD_SECRET = "MOLTBOT_DATABASE_PASSWORD"
_SCHEMES = ("postgresql", "postgres")
_MAX_NODE_CHARS = 63  # a host name's label: it is shown in every reply that names a node


@dataclass(frozen=True)
class PostgresTarget:
    """A PostgreSQL database, as libpq takes it; ``password`` is read when connecting, never shown."""

    url: str  # as configured; a password in it only when it came from the environment
    password: str = ""

    def __str__(self) -> str:
        return redacted(self.url)

    def connect_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"dsn": self.url}
        if self.password:
            arguments["password"] = self.password
        return arguments


# libpq takes these from a URL's query string too: a password there is a password in the file.
_SECRET_PARAMETERS = ("password", "passfile", "sslpassword")


def _secret_parameters(parts: SplitResult) -> list[str]:
    names = parse_qs(parts.query, keep_blank_values=True)
    return [name for name in names if name.lower() in _SECRET_PARAMETERS]


def redacted(url: str) -> str:
    """``url`` without its password, in the user part or the query (for logs, errors and ``status``)."""
    try:
        parts = urlsplit(url)
        hidden = parts.password is not None or _secret_parameters(parts)
    except ValueError:
        return "(an unreadable URL)"
    if not hidden:
        return url
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}")
    query = [
        (name, "***" if name.lower() in _SECRET_PARAMETERS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return parts._replace(query=urlencode(query, safe="*")).geturl()


def without_password(url: str) -> str:
    """``url`` with its password and secret parameters left out (what a helper may be handed)."""
    parts = urlsplit(url)
    if parts.password is not None:
        user = f"{parts.username}@" if parts.username else ""
        parts = parts._replace(netloc=user + parts.netloc.rsplit("@", 1)[1])
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SECRET_PARAMETERS
    ]
    return parts._replace(query=urlencode(query)).geturl()


def database_url_problem(value: str, password_allowed: bool = False) -> str | None:
    """Why ``value`` is not a usable postgresql:// URL (None: it is one)."""
    from moltbot.config.urls import split_url

    parts = split_url(value)
    if isinstance(parts, str):
        return parts
    if parts.scheme not in _SCHEMES:
        example = "postgresql://moltbot@db.lan:5432/moltbot"
        return f"expected a postgresql:// URL such as {example}, got {redacted(value)!r}"
    if not unquote(parts.path.lstrip("/")):
        return "names no database: add it after the host (postgresql://moltbot@db.lan:5432/moltbot)"
    if (parts.password is not None or _secret_parameters(parts)) and not password_allowed:
        return (
            f"has a password: give it as the secret {PASSWORD_SECRET} ({PASSWORD_SECRET}_FILE or a systemd "
            "credential), not in moltbot.toml"
        )
    return None


def node_name_problem(value: str) -> str | None:
    if not value or len(value) > _MAX_NODE_CHARS:
        return f"expected 1 to {_MAX_NODE_CHARS} characters, got {len(value)}"
    if not all(char.isalnum() or char in "-_." for char in value):
        return f"use letters, digits, '-', '_' and '.' only (a host name), got {value!r}"
    return None


def database_target(home: Home, environ: Mapping[str, str] | None = None) -> Path | PostgresTarget:
    """The home's database: the SQLite file, or PostgreSQL when a URL is configured.

    Raises ValueError naming the variable or the field when the URL is not usable (a password in
    moltbot.toml included), and SecretError when the password's file cannot be read."""
    environ = os.environ if environ is None else environ
    url = environ.get(DATABASE_URL_VARIABLE, "")
    where = DATABASE_URL_VARIABLE
    if not url:
        configured = (daemon_table(home.settings_toml) or {}).get("database", "")
        url = configured if isinstance(configured, str) else ""
        where = f"{home.settings_toml}: [daemon] database"
    if not url:
        return home.db_path
    problem = database_url_problem(url, password_allowed=where == DATABASE_URL_VARIABLE)
    if problem is not None:
        raise ValueError(f"{where}: {problem}")
    from moltbot.config.secrets import secret

    return PostgresTarget(url, secret(PASSWORD_SECRET, environ))


def node_name(home: Home) -> str:
    """``[daemon] node``, else this host's name: recorded on the runs this daemon claims."""
    configured = (daemon_table(home.settings_toml) or {}).get("node")
    if isinstance(configured, str) and node_name_problem(configured) is None:
        return configured
    return socket.gethostname().split(".")[0] or "localhost"
