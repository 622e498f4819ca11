"""The integrations' tables of moltbot.toml: ``[signal]``, ``[ollama]``, ``[letta]``, ``[discord]``.

Each table is optional (absent: that integration is off). Per-host values may come
from the environment, which wins over the file; secrets (tokens, keys) never come
from the file: from a file of their own, a systemd credential or the environment
(``secrets.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from moltbot.config.errors import ConfigProblem
from moltbot.config.secrets import SecretError, secret
from moltbot.config.toml import Section

__all__ = ["READERS", "DiscordSettings", "LettaSettings", "OllamaSettings", "SignalSettings"]

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_GROUP_ID = re.compile(r"[A-Za-z0-9+/=_-]{8,}")
_SNOWFLAKE = re.compile(r"\d{15,21}")


@dataclass(frozen=True)
class SignalSettings:
    """``[signal]``: the gateway and who may command the bot."""

    url: str = "http://127.0.0.1:8080"
    number: str = ""
    allowed: tuple[str, ...] = ()  # E.164 numbers and/or ACI UUIDs
    viewers: tuple[str, ...] = ()  # read-only commands only
    groups: tuple[str, ...] = ()  # internal group ids, as in groupInfo.groupId
    admins: tuple[str, ...] = ()  # alert recipients; empty: the allowed senders
    linked_device: bool = False
    max_command_age_seconds: float = 600.0
    timeout_seconds: float = 10.0  # every HTTP call to the gateway

    @property
    def alert_recipients(self) -> tuple[str, ...]:
        return self.admins or self.allowed


_SIGNAL_TYPES: dict[str, tuple[type, ...]] = {
    "url": (str,),
    "number": (str,),
    "allowed": (list,),
    "viewers": (list,),
    "groups": (list,),
    "admins": (list,),
    "linked_device": (bool,),
    "max_command_age_seconds": (int, float),
    "timeout_seconds": (int, float),
}


def _signal(section: Section, environ: Mapping[str, str]) -> SignalSettings:
    values = section.read(_SIGNAL_TYPES)
    for key in ("allowed", "viewers", "groups", "admins"):
        if key not in values:
            continue
        valid = _GROUP_ID.fullmatch if key == "groups" else _is_signal_address
        bad = [item for item in values[key] if not (isinstance(item, str) and valid(item))]
        if bad:
            wanted = "group ids (as in groupInfo.groupId)" if key == "groups" else "E.164 numbers or UUIDs"
            section.problem(key, f"expected {wanted}, got {bad[0]!r}")
            del values[key]
        else:
            values[key] = tuple(item.lower() if UUID.fullmatch(item) else item for item in values[key])
    # The environment wins: per-host values stay out of the shared file.
    for key, variable in (("url", "SIGNAL_API_URL"), ("number", "SIGNAL_NUMBER")):
        if environ.get(variable):
            values[key] = environ[variable]
    number = values.get("number", "")
    if not E164.fullmatch(number):
        section.problem(
            "number", f"the bot's registered number in E.164 form (+4915...) is required, got {number!r}"
        )
    url = str(values.get("url", SignalSettings.url))
    if not re.match(r"https?://[^/]+", url):
        section.problem("url", f"expected an http(s) URL, got {url!r}")
    values["url"] = url.rstrip("/")
    if not values.get("allowed") and not values.get("linked_device"):
        section.problem("allowed", "nobody may command the bot: list your number or UUID")
    return SignalSettings(**values)


def _is_signal_address(item: str) -> bool:
    return bool(E164.fullmatch(item) or UUID.fullmatch(item))


@dataclass(frozen=True)
class OllamaSettings:
    """``[ollama]``: the local model that answers free text and ``llm`` tasks."""

    host: str = "http://127.0.0.1:11434"  # env OLLAMA_HOST overrides
    model: str = "llama3.2"
    timeout_seconds: float = 120.0  # a cold model takes a while to load


def _ollama(section: Section, environ: Mapping[str, str]) -> OllamaSettings:
    values = section.read({"host": (str,), "model": (str,), "timeout_seconds": (int, float)})
    host = environ.get("OLLAMA_HOST") or values.get("host", OllamaSettings.host)
    if not host.startswith(("http://", "https://")):
        host = f"http://{host}"  # OLLAMA_HOST is often host:port
    values["host"] = host.rstrip("/")
    return OllamaSettings(**values)


@dataclass(frozen=True)
class LettaSettings:
    """``[letta]``: a Letta agent that answers Discord tasks (the original's agent)."""

    base_url: str = "http://127.0.0.1:8283"  # self-hosted default; Letta Cloud: https://api.letta.com
    agent_id: str = ""  # env LETTA_AGENT_ID
    timeout_seconds: float = 120.0
    api_key: str = field(default="", repr=False)  # LETTA_API_KEY(_FILE), or a credential: secrets.py


def _letta(section: Section, environ: Mapping[str, str]) -> LettaSettings:
    values = section.read({"base_url": (str,), "agent_id": (str,), "timeout_seconds": (int, float)})
    values["agent_id"] = environ.get("LETTA_AGENT_ID") or values.get("agent_id", "")
    if not values["agent_id"]:
        section.problem("agent_id", "the agent's id is required (or env LETTA_AGENT_ID)")
    base_url = environ.get("LETTA_BASE_URL") or values.get("base_url", LettaSettings.base_url)
    values["base_url"] = str(base_url).rstrip("/")
    values["api_key"] = _secret(section, "api_key", "LETTA_API_KEY", environ)
    return LettaSettings(**values)


def _secret(section: Section, key: str, name: str, environ: Mapping[str, str]) -> str:
    try:
        return secret(name, environ)
    except SecretError as exc:
        section.problem(key, str(exc))
        return ""


@dataclass(frozen=True)
class DiscordSettings:
    """``[discord]``: the Tasks Channel and where task actions go."""

    api_base: str = "https://discord.com/api/v10"  # includes the version path
    tasks_channel_id: str = ""  # env TASKS_CHANNEL_ID
    heartbeat_log_channel_id: str = ""  # env HEARTBEAT_LOG_CHANNEL_ID
    default_user_id: str = ""  # user_reminder without a target; env DEFAULT_USER_ID
    poll_seconds: float = 60.0  # how soon new or changed task messages are seen
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))  # of naive next_run values
    token: str = field(default="", repr=False)  # DISCORD_BOT_TOKEN(_FILE), or a credential: never in the file


_DISCORD_TYPES: dict[str, tuple[type, ...]] = {
    "api_base": (str,),
    "tasks_channel_id": (str, int),
    "heartbeat_log_channel_id": (str, int),
    "default_user_id": (str, int),
    "poll_seconds": (int, float),
    "timezone": (str,),
}


def _discord(section: Section, environ: Mapping[str, str]) -> DiscordSettings:
    values = section.read(_DISCORD_TYPES)
    for key, variable in (
        ("tasks_channel_id", "TASKS_CHANNEL_ID"),
        ("heartbeat_log_channel_id", "HEARTBEAT_LOG_CHANNEL_ID"),
        ("default_user_id", "DEFAULT_USER_ID"),
    ):
        value = str(environ.get(variable) or values.get(key, "")).strip()
        if value and not _SNOWFLAKE.fullmatch(value):
            section.problem(key, f"expected a Discord id (digits), got {value!r}")
        values[key] = value
    if not values["tasks_channel_id"]:
        section.problem("tasks_channel_id", "the Tasks Channel's id is required (or env TASKS_CHANNEL_ID)")
    if "timezone" in values:
        try:
            values["timezone"] = ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            section.problem("timezone", f"unknown IANA zone {values['timezone']!r}")
            del values["timezone"]
    values["api_base"] = str(values.get("api_base", DiscordSettings.api_base)).rstrip("/")
    # Not a config error when missing: a task's own process (minimal environment, no
    # secrets) reads these settings too. The daemon refuses Discord work without it.
    values["token"] = _secret(section, "token", "DISCORD_BOT_TOKEN", environ)
    return DiscordSettings(**values)


Reader = Callable[[Section, Mapping[str, str]], Any]
# Each optional table and how it is read.
READERS: dict[str, Reader] = {"signal": _signal, "ollama": _ollama, "discord": _discord, "letta": _letta}


def read_integration(
    name: str, body: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]
) -> tuple[Any, list[ConfigProblem]]:
    """One integration's settings, and the problems found in its table."""
    section = Section(name, body, path, text)
    settings = READERS[name](section, environ)
    return settings, section.problems
