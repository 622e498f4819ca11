"""Time zones: the host's (the default of ``[daemon] timezone``), and ``[daemon] timezone`` read alone."""

from __future__ import annotations

import functools
import os
from pathlib import Path
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


def configured_zone(settings_toml: Path) -> ZoneInfo | None:
    """``[daemon] timezone`` (the host's zone when the file or the key is missing), read without the
    rest of moltbot.toml: ``status`` shows times in it and stays fast (``load_settings`` costs ~15 ms
    of imports). None when the file or the zone is wrong: ``load_settings`` says where and why."""
    try:
        text = settings_toml.read_text()
    except FileNotFoundError:
        return host_zone()
    import tomllib

    try:
        daemon = tomllib.loads(text).get("daemon", {})
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(daemon, dict):
        return None
    name = daemon.get("timezone")
    if name is None:
        return host_zone()
    try:
        return ZoneInfo(name) if isinstance(name, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
