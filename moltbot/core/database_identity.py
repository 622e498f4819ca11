"""Which database file the running daemon has open, recorded beside its lock (``data/daemon.db-id``).

Deleting or replacing ``data/moltbot.db`` under a running daemon does not reach it: it keeps the
file it opened, and a CLI would open (or create) another one and talk past it. So the daemon
records its file's identity (device and inode) where a replaced database cannot take it along,
and every command that opens the store while a daemon runs, and ``doctor``, compare it with the
file they would open, and say so when they differ.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from moltbot import store
from moltbot.config.home import Home

__all__ = ["DatabaseSplit", "OpenedDatabase", "forget", "record", "split"]

log = logging.getLogger(__name__)
_MAX_BYTES = 128  # "pid dev inode": what else is there was not written by a daemon


class DatabaseSplit(Exception):
    """The running daemon's database is not the file this process would open: what, and the fix."""


def _path(home: Home) -> Path:
    return home.data_dir / "daemon.db-id"


class OpenedDatabase:
    """The daemon's own side: the file it opened, and whether the path still leads to it. When
    not (deleted, or replaced by a copy), going on would split the daemon itself: a thread that
    connects anew opens the file at the path, the others keep the old one. So its loop stops
    (exit 1; systemd restarts the unit, and the new start opens the file now there). One stat."""

    def __init__(self, home: Home) -> None:
        self.path = home.db_path
        self._identity: tuple[int, int] | None = None  # PostgreSQL: no file to watch
        if not store.is_postgresql():
            opened = os.stat(self.path)
            self._identity = (opened.st_dev, opened.st_ino)

    def replaced(self) -> bool:
        if self._identity is None:
            return False
        try:
            found = os.stat(self.path)
            same = (found.st_dev, found.st_ino) == self._identity
        except OSError:
            same = False
        if not same:
            log.critical(
                "%s was deleted or replaced under the running daemon: stopping (exit 1), so that the next "
                "start opens the file now there (systemd restarts the unit)", self.path,
            )  # fmt: skip
        return not same


def record(home: Home, pid: int) -> None:
    """The daemon, once it holds its lock and opened the database: which file that is."""
    if store.is_postgresql():
        return
    found = os.stat(home.db_path)
    written = _path(home).with_suffix(".tmp")
    written.write_text(f"{pid} {found.st_dev} {found.st_ino}\n")
    written.replace(_path(home))  # whole or not at all: a reader never sees half of it


def forget(home: Home) -> None:
    _path(home).unlink(missing_ok=True)


def split(home: Home, pid: int) -> str | None:
    """Why the daemon ``pid`` and this process would use different databases (None: the same, or
    it cannot be told: nothing recorded by that daemon)."""
    try:
        with open(_path(home), "rb") as file:
            raw = file.read(_MAX_BYTES + 1)
    except OSError:
        return None
    fields = raw.split()
    if (
        len(raw) > _MAX_BYTES
        or len(fields) != 3
        or not all(field.isdigit() for field in fields)
        or int(fields[0]) != pid
    ):
        return None  # another daemon's (before a crash), or not one's at all
    dev, inode = int(fields[1]), int(fields[2])
    try:
        found = os.stat(home.db_path)
    except FileNotFoundError:
        found = None
    if found is not None and (found.st_dev, found.st_ino) == (dev, inode):
        return None
    return (
        f"the running daemon (pid {pid}) uses a database that was deleted or replaced: {home.db_path} "
        "is not the file it has open. Restart it: systemctl restart moltbot (or stop and start "
        "moltbot daemon)"
    )
