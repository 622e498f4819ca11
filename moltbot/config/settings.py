"""moltbot.toml: the ``[daemon]`` table and the integrations' tables, read into one ``Settings``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from moltbot.config.database import database_url_problem, node_name_problem
from moltbot.config.errors import ConfigError, ConfigProblem, unknown_name
from moltbot.config.integrations import (
    READERS,
    DiscordSettings,
    LettaSettings,
    OllamaSettings,
    SignalSettings,
    read_integration,
)
from moltbot.config.toml import Section, toml_line
from moltbot.config.urls import http_url_problem
from moltbot.config.zone import host_zone

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """``[daemon]``, and each integration's table (None: not configured, that integration is off)."""

    timezone: ZoneInfo = field(default_factory=host_zone)
    workers: int = 4
    missed_grace_seconds: float = 60.0
    max_catchup_runs: int = 10
    kill_grace_seconds: float = 10.0
    output_cap_bytes: int = 1024 * 1024
    log_retention_days: int = 30
    channel_down_alert_seconds: float = 300.0  # a chat channel down this long: the admins are told
    heartbeat_url: str = ""  # a monitor's ping URL, pinged while the loop is healthy (heartbeat.py)
    heartbeat_seconds: float = 300.0
    task_user: str = ""  # who scripts and playbooks run as (task_users.py); "": the daemon's own user
    database: str = ""  # postgresql:// shared by several nodes (config/database.py); "": the SQLite file
    node: str = ""  # this daemon's name among the nodes ("": the host's name)
    lease_seconds: float = 30.0  # PostgreSQL: a node silent this long has its runs re-run elsewhere
    signal: SignalSettings | None = None
    ollama: OllamaSettings | None = None
    discord: DiscordSettings | None = None
    letta: LettaSettings | None = None  # no [letta]: Discord tasks use Ollama, or their template


_DAEMON_TYPES: dict[str, tuple[type, ...]] = {
    "timezone": (str,),
    "workers": (int,),
    "missed_grace_seconds": (int, float),
    "max_catchup_runs": (int,),
    "kill_grace_seconds": (int, float),
    "output_cap_bytes": (int,),
    "log_retention_days": (int,),
    "channel_down_alert_seconds": (int, float),
    "task_user": (str,),
    "heartbeat_url": (str,),
    "heartbeat_seconds": (int, float),
    "database": (str,),
    "node": (str,),
    "lease_seconds": (int, float),
}
_MAY_BE_ZERO = {"missed_grace_seconds": 0.0, "kill_grace_seconds": 0.0}
_KNOWN_SECTIONS = ("daemon", *READERS)


def load_settings(path: Path, only: tuple[str, ...] | None = None) -> Settings:
    """Read moltbot.toml; a missing file means all defaults.

    ``only``: the integrations to read (the others are left out, unchecked): a helper reads the
    tables its kind needs, with only their variables in its environment."""
    if not path.exists():
        return Settings()
    import tomllib

    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        from moltbot.config.syntax import toml_syntax_problem

        raise ConfigError([toml_syntax_problem(path, text, exc)]) from exc
    problems = [
        ConfigProblem(path, toml_line(text, name, None), name, unknown_name(name, _KNOWN_SECTIONS, "section"))
        for name in data
        if name not in _KNOWN_SECTIONS
    ]
    daemon = Section("daemon", data.get("daemon", {}), path, text)
    values: dict[str, Any] = daemon.read(_DAEMON_TYPES, minimum=_MAY_BE_ZERO)
    if "timezone" in values:
        try:
            values["timezone"] = ZoneInfo(str(values["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            daemon.problem("timezone", f"unknown IANA zone {values.pop('timezone')!r}")
    if "heartbeat_url" in values and (why := http_url_problem(values["heartbeat_url"])):
        daemon.problem("heartbeat_url", why)
    if values.get("database") and (why := database_url_problem(values["database"])):
        daemon.problem("database", why)
    if "node" in values and (why := node_name_problem(values["node"])):
        daemon.problem("node", why)
    if values.get("task_user"):
        _check_task_user(daemon, values["task_user"])
    problems += daemon.problems
    for name in READERS:
        if isinstance(data.get(name), dict) and (only is None or name in only):
            values[name], section_problems = read_integration(name, data[name], path, text, os.environ)
            problems += section_problems
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


def _check_task_user(daemon: Section, name: str) -> None:
    from moltbot.config.users import unfit_task_user

    why = unfit_task_user(name)
    if why is not None:
        daemon.problem(
            "task_user", why + (" (the Ansible role creates it)" if why.startswith("no user") else "")
        )
