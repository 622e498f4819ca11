"""What every command needs: the core for ``--home``, exit codes, one-line JSON, the zone for people."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from zoneinfo import ZoneInfo

from moltbot.config.errors import ConfigError
from moltbot.config.home import Home
from moltbot.core import Core

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "core",
    "print_json",
    "ready_core",
    "user",
    "zone_for_people",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def core(args: argparse.Namespace) -> Core:
    """The core for ``--home``, its store open; DatabaseSplit (before the path is opened, so nothing
    is created there) when a running daemon has another database file open."""
    from moltbot.core.database_identity import DatabaseSplit

    opened = Core(Home.from_env(args.home))
    why = opened.database_split()
    if why is not None:
        raise DatabaseSplit(why)
    opened.open()
    return opened


def ready_core(args: argparse.Namespace) -> Core:
    """A core whose store reflects tasks.json (synced here when no daemon runs)."""
    opened = core(args)
    if opened.daemon_pid() is None:
        opened.sync_if_changed()
    return opened


def print_json(value: Any) -> None:
    # One line, no indent: json's C encoder only runs without indent, and
    # status --json on 10 000 tasks took twice as long indented. Pipe to jq.
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def zone_for_people(core: Core) -> ZoneInfo:
    """``[daemon] timezone`` (``Core.local_zone``). With moltbot.toml broken, the host's zone, and
    the problems on stderr: ``status`` and ``logs`` are how one looks into a broken set-up."""
    try:
        return core.local_zone()
    except ConfigError as exc:
        from moltbot.config.zone import host_zone

        zone = host_zone()
        print(f"moltbot: times in {zone.key} (the host's zone): {exc}", file=sys.stderr)
        return zone


def fail(exc: Exception, code: int = EXIT_USAGE) -> int:
    print(f"moltbot: {exc}", file=sys.stderr)
    return code


def user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())
