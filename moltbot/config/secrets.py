"""Secrets (tokens, keys): from a file rather than the environment, and handed on as a path.

For a secret ``NAME`` (``DISCORD_BOT_TOKEN``, ``LETTA_API_KEY``), in this order:

1. ``NAME_FILE``: the path of a file holding it (a trailing newline is dropped);
2. ``$CREDENTIALS_DIRECTORY/NAME``: a systemd credential (``LoadCredential=NAME:/etc/...`` in the
   unit), readable by the service's user only, and never in anyone's environment;
3. ``NAME`` itself, the old way: any process that may read the daemon's environment sees it (the
   daemon is non-dumpable, but a helper it passes it to is readable for the moment it starts).

A helper that needs a secret gets the same reference the daemon has (``NAME_FILE``, pointing into
the credentials when that is where it is), never the value copied into its environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["SECRETS", "SecretError", "secret", "secret_files", "secret_reference"]

SECRETS = ("DISCORD_BOT_TOKEN", "LETTA_API_KEY", "MOLTBOT_DATABASE_PASSWORD")
_MAX_BYTES = 64 * 1024  # a token or a key; a path given by mistake (a big file) is not read whole


class SecretError(Exception):
    """A secret's file is named but cannot be read: the message names the variable and the path, never
    any content."""


def _file_of(name: str, environ: Mapping[str, str]) -> tuple[str, Path] | None:
    """Where ``name`` is to be read from, and the variable that said so."""
    if environ.get(f"{name}_FILE"):
        return f"{name}_FILE", Path(environ[f"{name}_FILE"])
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / name).exists():
        return "CREDENTIALS_DIRECTORY", Path(credentials) / name
    return None


def secret(name: str, environ: Mapping[str, str]) -> str:
    """The secret's value ("" when it is given nowhere); SecretError when its file cannot be read."""
    found = _file_of(name, environ)
    if found is None:
        return environ.get(name, "")
    variable, path = found
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_BYTES:
        raise SecretError(f"{variable}: {path} is over {_MAX_BYTES} bytes: not a {name}")
    return raw.decode(errors="replace").rstrip("\r\n")


def secret_reference(name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What a helper needing ``name`` is given: the file's path when the daemon has one, else the
    variable as the daemon got it (nothing when it has none)."""
    found = _file_of(name, environ)
    if found is not None:
        return {f"{name}_FILE": str(found[1])}
    return {name: environ[name]} if environ.get(name) else {}


def secret_files(environ: Mapping[str, str]) -> list[Path]:
    """The files the secrets are read from (a task user must not be able to read them)."""
    return [found[1] for name in SECRETS if (found := _file_of(name, environ)) is not None]
