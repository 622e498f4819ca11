"""Time zones: the host's (the default of ``[daemon] timezone``), and ``[daemon] timezone`` read alone."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["configured_zone", "host_zone"]


@functools.cache
def host_zone() -> ZoneInfo:
    """The host's IANA zone: $TZ, /etc/timezone, the /etc/localtime link, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def daemon_table(settings_toml: Path) -> dict[str, Any] | None:
    """``[daemon]`` of moltbot.toml read alone, without the rest (``load_settings`` costs ~15 ms of
    imports, and every command needs the zone and the database): {} when the file is missing, None
    when it or the table is broken (``load_settings`` says where and why)."""
    try:
        text = settings_toml.read_text()
    except FileNotFoundError:
        return {}
    import tomllib

    try:
        daemon = tomllib.loads(text).get("daemon", {})
    except tomllib.TOMLDecodeError:
        return None
    return daemon if isinstance(daemon, dict) else None


def configured_zone(settings_toml: Path) -> ZoneInfo | None:
    """``[daemon] timezone`` (the host's zone when the file or the key is missing), read alone:
    ``status`` shows times in it and stays fast. None when the file or the zone is wrong."""
    daemon = daemon_table(settings_toml)
    if daemon is None:
        return None
    name = daemon.get("timezone")
    if name is None:
        return host_zone()
    try:
        return ZoneInfo(name) if isinstance(name, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
