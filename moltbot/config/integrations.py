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
    allowed: tuple[str, ...] = ()  # E.164 numbers and/or ACI UUIDs (a pair's two, each)
    viewers: tuple[str, ...] = ()  # read-only commands only
    # (number, UUID) of one person: the entries of allowed and viewers written as a pair.
    pairs: tuple[tuple[str, str], ...] = ()
    groups: tuple[str, ...] = ()  # internal group ids, as in groupInfo.groupId
    admins: tuple[str, ...] = ()  # alert recipients (a pair's two, each); empty: the allowed senders
    linked_device: bool = False
    max_command_age_seconds: float = 600.0
    timeout_seconds: float = 10.0  # every HTTP call to the gateway
    warnings: tuple[str, ...] = field(default=(), compare=False)  # for `moltbot check`, not errors

    @property
    def alert_recipients(self) -> tuple[str, ...]:
        """One address per person of ``admins`` (else of ``allowed``): a pair's UUID wherever its
        number or UUID is listed (its number may have changed hands), each single entry as it is.
        A number and a UUID listed apart cannot be known to be one person: both get the alert."""
        uuid_of = dict(self.pairs)
        return tuple(dict.fromkeys(uuid_of.get(address, address) for address in self.admins or self.allowed))


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
    pairs: list[tuple[str, str]] = []
    for key in ("allowed", "viewers", "groups", "admins"):
        if key not in values:
            continue
        if key in ("allowed", "viewers", "admins"):
            values[key] = _people(section, key, values[key], pairs)
            continue
        valid = _GROUP_ID.fullmatch if key == "groups" else _is_signal_address
        bad = [item for item in values[key] if not (isinstance(item, str) and valid(item))]
        if bad:
            wanted = "group ids (as in groupInfo.groupId)" if key == "groups" else "E.164 numbers or UUIDs"
            section.problem(key, f"expected {wanted}, got {bad[0]!r}")
            del values[key]
        else:
            values[key] = tuple(_canonical(item) for item in values[key])
    values["pairs"] = tuple(pairs)
    values["warnings"] = _unpaired(section, values, pairs)
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
        # Not an error: `moltbot pair` is how the first person gets in (their UUID is hard to know).
        note = "empty: only people paired with `moltbot pair` may command the bot (see `moltbot people`)"
        values["warnings"] = (*values["warnings"], section.note("allowed", note))
    return SignalSettings(**values)


def _is_signal_address(item: str) -> bool:
    return bool(E164.fullmatch(item) or UUID.fullmatch(item))


def _canonical(address: str) -> str:
    return address.lower() if UUID.fullmatch(address) else address  # UUIDs compare lower-case


def _people(section: Section, key: str, items: list[Any], pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    """``allowed``/``viewers``: each item a number, a UUID, or ``[number, UUID]`` (one person, whose
    number counts only with that UUID); their addresses, and the pairs added to ``pairs``."""
    addresses: list[str] = []
    for item in items:
        if isinstance(item, str) and _is_signal_address(item):
            addresses.append(_canonical(item))
            continue
        pair = sorted(item, key=lambda part: not E164.fullmatch(part)) if _is_pair(item) else None
        if pair is None or not (E164.fullmatch(pair[0]) and UUID.fullmatch(pair[1])):
            section.problem(key, f"expected E.164 numbers, UUIDs or [number, UUID] pairs, got {item!r}")
            return ()
        number, uuid = pair[0], _canonical(pair[1])
        pairs.append((number, uuid))
        addresses += [number, uuid]
    return tuple(addresses)


def _unpaired(section: Section, values: dict[str, Any], pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    """A list with a number and a UUID each listed alone: maybe one person, who would get every
    alert twice (nothing but the gateway could tell; the pair form says it)."""
    paired = {address for pair in pairs for address in pair}
    warnings = []
    for key in ("admins", "allowed") if values.get("admins") else ("allowed",):
        single = [address for address in values.get(key, ()) if address not in paired]
        numbers = [address for address in single if E164.fullmatch(address)]
        uuids = [address for address in single if UUID.fullmatch(address)]
        if numbers and uuids:
            example = f'[["{numbers[0]}", "{uuids[0]}"]]'
            warnings.append(
                section.note(
                    key,
                    f"{numbers[0]} and {uuids[0]} are listed apart: if they are one person, write them as "
                    f"one pair, {key} = {example}, or they get every alert twice",
                )
            )
    return tuple(warnings)


def _is_pair(item: Any) -> bool:
    return isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)


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
    # Whoever may post in the Tasks Channel commands moltbot: these bound what they can do.
    allowed_authors: tuple[str, ...] = ()  # besides the bot itself (GET /users/@me), whose messages count
    allowed_targets: tuple[str, ...] | None = None  # None: the heartbeat log channel and default_user_id
    min_interval_seconds: float = 60.0  # a recurring Discord task may not come more often
    max_tasks: int = 100  # Discord tasks scheduled at once (the oldest messages first)
    token: str = field(default="", repr=False)  # DISCORD_BOT_TOKEN(_FILE), or a credential: never in the file

    @property
    def targets(self) -> tuple[str, ...]:
        """Where tasks may post: channel ids, and user ids for DMs."""
        if self.allowed_targets is not None:
            return self.allowed_targets
        return tuple(i for i in (self.heartbeat_log_channel_id, self.default_user_id) if i)


_DISCORD_TYPES: dict[str, tuple[type, ...]] = {
    "api_base": (str,),
    "tasks_channel_id": (str, int),
    "heartbeat_log_channel_id": (str, int),
    "default_user_id": (str, int),
    "poll_seconds": (int, float),
    "timezone": (str,),
    "allowed_authors": (list,),
    "allowed_targets": (list,),
    "min_interval_seconds": (int, float),
    "max_tasks": (int,),
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
    for key in ("allowed_authors", "allowed_targets"):
        if key not in values:
            continue
        bad = [item for item in values[key] if not _is_snowflake(item)]
        if bad:
            section.problem(key, f"expected Discord ids (digits), got {bad[0]!r}")
            del values[key]
        else:
            values[key] = tuple(str(item).strip() for item in values[key])
    if values["tasks_channel_id"] and values["tasks_channel_id"] in values.get("allowed_targets", ()):
        # What the bot posts there reads back as a task of its own: a task could write tasks.
        section.problem(
            "allowed_targets",
            "the Tasks Channel cannot be a target: what moltbot posts there counts as a task",
        )
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


def _is_snowflake(item: object) -> bool:
    return (
        isinstance(item, str | int)
        and not isinstance(item, bool)
        and bool(_SNOWFLAKE.fullmatch(str(item).strip()))
    )


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
