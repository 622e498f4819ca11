"""MOLTBOT_HOME layout, daemon settings (moltbot.toml) and task specs (tasks.json).

Every problem found while loading is a ``ConfigError`` that names the file,
the line and the field, so ``moltbot check`` and the daemon's refusal to start
can say exactly where to look. Loading collects all problems before raising,
so one run of ``moltbot check`` lists them all.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Schedules, JSON positions and TOML are imported where configs are loaded:
# `moltbot status` needs only Home and stays fast.
if TYPE_CHECKING:
    from moltbot.schedules import Schedule

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DiscordSettings",
    "Home",
    "LettaSettings",
    "OllamaSettings",
    "Settings",
    "SignalSettings",
    "TaskSpec",
    "host_zone",
    "load_settings",
    "load_tasks",
]

DEFAULT_HOME = "~/moltbot-system"
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DISCORD_PREFIX = "discord-"  # task ids of Discord Tasks-Channel tasks; tasks.json may not use it


def task_source(task_id: str) -> str:
    """Where a task is defined: "discord" (the Tasks Channel) or "config" (tasks.json)."""
    return "discord" if task_id.startswith(DISCORD_PREFIX) else "config"


@dataclass(frozen=True)
class ConfigProblem:
    file: Path
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class Home:
    """The directory layout under MOLTBOT_HOME (the original scheduler's layout)."""

    root: Path

    @classmethod
    def from_env(cls, override: str | None = None) -> Home:
        raw = override or os.environ.get("MOLTBOT_HOME") or DEFAULT_HOME
        return cls(Path(raw).expanduser().absolute())

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def tasks_json(self) -> Path:
        return self.config_dir / "tasks.json"

    @property
    def settings_toml(self) -> Path:
        return self.config_dir / "moltbot.toml"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "moltbot.db"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "daemon.lock"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> None:
        """Create the layout; copy the bundled example tasks on first start."""
        for directory in (self.config_dir, self.tasks_dir, self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.tasks_json.exists():
            return
        import shutil  # first start only: keep them off every command's path
        from importlib import resources

        bundled = resources.files("moltbot.example_tasks")
        for entry in bundled.iterdir():
            name = entry.name
            if name == "tasks.json" or not name.endswith((".sh", ".py")) or name == "__init__.py":
                continue
            target = self.tasks_dir / name
            if not target.exists():
                with resources.as_file(entry) as source:
                    shutil.copyfile(source, target)
                target.chmod(0o755)
        # Written last, so an interrupted first start copies the scripts again.
        self.tasks_json.write_text(bundled.joinpath("tasks.json").read_text())


# --- daemon settings -----------------------------------------------------------


@dataclass(frozen=True)
class SignalSettings:
    """``[signal]`` in moltbot.toml: the gateway and who may command the bot."""

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


E164 = re.compile(r"\+[1-9][0-9]{6,14}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
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


def _signal_settings(
    body: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]
) -> tuple[SignalSettings, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    values: dict[str, Any] = {}

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(path, _toml_line(text, "signal", key), f"signal.{key}", message))

    for key, value in body.items():
        types = _SIGNAL_TYPES.get(key)
        if types is None:
            problem(key, _unknown(key, _SIGNAL_TYPES))
        elif not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            problem(key, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
        elif isinstance(value, list):
            valid = _is_group_id if key == "groups" else _is_signal_address
            bad = [item for item in value if not (isinstance(item, str) and valid(item))]
            if bad:
                wanted = (
                    "group ids (as in groupInfo.groupId)" if key == "groups" else "E.164 numbers or UUIDs"
                )
                problem(key, f"expected {wanted}, got {bad[0]!r}")
            else:
                values[key] = tuple(item.lower() if UUID.fullmatch(item) else item for item in value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            problem(key, f"must be positive, got {value!r}")
        else:
            values[key] = value
    # The environment wins: per-host values stay out of the shared file.
    for key, variable in (("url", "SIGNAL_API_URL"), ("number", "SIGNAL_NUMBER")):
        if environ.get(variable):
            values[key] = environ[variable]
    number = values.get("number", "")
    if not E164.fullmatch(number):
        problem("number", f"the bot's registered number in E.164 form (+4915...) is required, got {number!r}")
    url = str(values.get("url", SignalSettings.url))
    if not re.match(r"https?://[^/]+", url):
        problem("url", f"expected an http(s) URL, got {url!r}")
    values["url"] = url.rstrip("/")
    if not values.get("allowed") and not values.get("linked_device"):
        problem("allowed", "nobody may command the bot: list your number or UUID")
    return SignalSettings(**values), problems


@dataclass(frozen=True)
class OllamaSettings:
    """``[ollama]``: the local model that answers free text and ``llm`` tasks."""

    host: str = "http://127.0.0.1:11434"  # env OLLAMA_HOST overrides
    model: str = "llama3.2"
    timeout_seconds: float = 120.0  # a cold model takes a while to load


_OLLAMA_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "model": (str,),
    "timeout_seconds": (int, float),
}


def _plain_section(
    section: str, body: dict[str, Any], types: dict[str, tuple[type, ...]], path: Path, text: str
) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Known keys of the right type (numbers positive); for each other one a problem with its line."""
    problems: list[ConfigProblem] = []
    values: dict[str, Any] = {}
    for key, value in body.items():
        line = _toml_line(text, section, key)
        wanted = types.get(key)
        if wanted is None:
            problems.append(ConfigProblem(path, line, f"{section}.{key}", _unknown(key, types)))
        elif not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            expected = " or ".join(t.__name__ for t in wanted)
            problems.append(
                ConfigProblem(path, line, f"{section}.{key}", f"expected {expected}, got {value!r}")
            )
        elif isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            problems.append(ConfigProblem(path, line, f"{section}.{key}", f"must be positive, got {value!r}"))
        else:
            values[key] = value
    return values, problems


def _ollama_settings(
    body: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]
) -> tuple[OllamaSettings, list[ConfigProblem]]:
    values, problems = _plain_section("ollama", body, _OLLAMA_TYPES, path, text)
    host = environ.get("OLLAMA_HOST") or values.get("host", OllamaSettings.host)
    if not host.startswith(("http://", "https://")):
        host = f"http://{host}"  # OLLAMA_HOST is often host:port
    values["host"] = host.rstrip("/")
    return OllamaSettings(**values), problems


@dataclass(frozen=True)
class LettaSettings:
    """``[letta]``: a Letta agent that answers Discord tasks (the original's agent)."""

    base_url: str = "http://127.0.0.1:8283"  # self-hosted default; Letta Cloud: https://api.letta.com
    agent_id: str = ""  # env LETTA_AGENT_ID
    timeout_seconds: float = 120.0
    api_key: str = field(default="", repr=False)  # env LETTA_API_KEY only


_LETTA_TYPES: dict[str, tuple[type, ...]] = {
    "base_url": (str,),
    "agent_id": (str,),
    "timeout_seconds": (int, float),
}


def _letta_settings(
    body: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]
) -> tuple[LettaSettings, list[ConfigProblem]]:
    values, problems = _plain_section("letta", body, _LETTA_TYPES, path, text)
    values["agent_id"] = environ.get("LETTA_AGENT_ID") or values.get("agent_id", "")
    if not values["agent_id"]:
        where = _toml_line(text, "letta", None)
        problems.append(
            ConfigProblem(path, where, "letta.agent_id", "the agent's id is required (or env LETTA_AGENT_ID)")
        )
    values["base_url"] = str(
        environ.get("LETTA_BASE_URL") or values.get("base_url", LettaSettings.base_url)
    ).rstrip("/")
    values["api_key"] = environ.get("LETTA_API_KEY", "")
    return LettaSettings(**values), problems


@dataclass(frozen=True)
class DiscordSettings:
    """``[discord]``: the Tasks Channel and where task actions go."""

    api_base: str = "https://discord.com/api/v10"  # includes the version path
    tasks_channel_id: str = ""  # env TASKS_CHANNEL_ID
    heartbeat_log_channel_id: str = ""  # env HEARTBEAT_LOG_CHANNEL_ID
    default_user_id: str = ""  # user_reminder without a target; env DEFAULT_USER_ID
    poll_seconds: float = 60.0  # how soon new or changed task messages are seen
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))  # of naive next_run values
    token: str = field(default="", repr=False)  # env DISCORD_BOT_TOKEN only: never in the file


_DISCORD_TYPES: dict[str, tuple[type, ...]] = {
    "api_base": (str,),
    "tasks_channel_id": (str, int),
    "heartbeat_log_channel_id": (str, int),
    "default_user_id": (str, int),
    "poll_seconds": (int, float),
    "timezone": (str,),
}
_SNOWFLAKE = re.compile(r"\d{15,21}")


def _discord_settings(
    body: dict[str, Any], path: Path, text: str, environ: Mapping[str, str]
) -> tuple[DiscordSettings, list[ConfigProblem]]:
    values, problems = _plain_section("discord", body, _DISCORD_TYPES, path, text)

    def problem(key: str, message: str) -> None:
        problems.append(ConfigProblem(path, _toml_line(text, "discord", key), f"discord.{key}", message))

    for key, variable in (
        ("tasks_channel_id", "TASKS_CHANNEL_ID"),
        ("heartbeat_log_channel_id", "HEARTBEAT_LOG_CHANNEL_ID"),
        ("default_user_id", "DEFAULT_USER_ID"),
    ):
        value = str(environ.get(variable) or values.get(key, "")).strip()
        if value and not _SNOWFLAKE.fullmatch(value):
            problem(key, f"expected a Discord id (digits), got {value!r}")
        values[key] = value
    if not values["tasks_channel_id"]:
        problem("tasks_channel_id", "the Tasks Channel's id is required (or env TASKS_CHANNEL_ID)")
    if "timezone" in values:
        try:
            values["timezone"] = ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problem("timezone", f"unknown IANA zone {values['timezone']!r}")
            del values["timezone"]
    values["api_base"] = str(values.get("api_base", DiscordSettings.api_base)).rstrip("/")
    # Not a config error when missing: a task's own process (minimal environment, no
    # secrets) reads these settings too. The daemon refuses Discord work without it.
    values["token"] = environ.get("DISCORD_BOT_TOKEN", "")
    return DiscordSettings(**values), problems


def _is_signal_address(item: str) -> bool:
    return bool(E164.fullmatch(item) or UUID.fullmatch(item))


def _is_group_id(item: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9+/=_-]{8,}", item))


@dataclass(frozen=True)
class Settings:
    """``[daemon]`` in moltbot.toml; other sections belong to later integrations."""

    timezone: ZoneInfo = field(default_factory=lambda: _default_zone())
    workers: int = 4
    missed_grace_seconds: float = 60.0
    max_catchup_runs: int = 10
    kill_grace_seconds: float = 10.0
    output_cap_bytes: int = 1024 * 1024
    log_retention_days: int = 30
    signal: SignalSettings | None = None  # no [signal] section: no Signal
    ollama: OllamaSettings | None = None  # no [ollama] section: no agent
    discord: DiscordSettings | None = None  # no [discord] section: no Tasks Channel
    letta: LettaSettings | None = None  # no [letta] section: Discord tasks use Ollama, or their template
    sections: dict[str, Any] = field(default_factory=dict)


_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "timezone": (str,),
    "workers": (int,),
    "missed_grace_seconds": (int, float),
    "max_catchup_runs": (int,),
    "kill_grace_seconds": (int, float),
    "output_cap_bytes": (int,),
    "log_retention_days": (int,),
}
_KNOWN_SECTIONS = {"daemon", "signal", "discord", "ollama", "letta"}


def _default_zone() -> ZoneInfo:
    return host_zone()


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


def _toml_line(text: str, section: str, key: str | None) -> int | None:
    """The line of ``key`` inside ``[section]`` (tomllib keeps no positions)."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header := re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped):
            current = header[1]
            if key is None and current == section:
                return number
        elif current == section and key and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return None


def load_settings(path: Path) -> Settings:
    """Read moltbot.toml; a missing file means all defaults."""
    if not path.exists():
        return Settings()
    import tomllib

    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise ConfigError([ConfigProblem(path, int(found[1]) if found else None, None, str(exc))]) from exc
    problems: list[ConfigProblem] = []
    for section in data:
        if section not in _KNOWN_SECTIONS:
            problems.append(
                ConfigProblem(
                    path, _toml_line(text, section, None), section, _unknown(section, _KNOWN_SECTIONS)
                )
            )
    values: dict[str, Any] = {}
    for key, value in data.get("daemon", {}).items():
        line = _toml_line(text, "daemon", key)
        if key not in _SETTING_TYPES:
            problems.append(ConfigProblem(path, line, f"daemon.{key}", _unknown(key, _SETTING_TYPES)))
        elif not isinstance(value, _SETTING_TYPES[key]) or isinstance(value, bool):
            expected = " or ".join(t.__name__ for t in _SETTING_TYPES[key])
            problems.append(ConfigProblem(path, line, f"daemon.{key}", f"expected {expected}, got {value!r}"))
        elif key == "timezone":
            try:
                values[key] = ZoneInfo(str(value))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(ConfigProblem(path, line, "daemon.timezone", f"unknown IANA zone {value!r}"))
        elif isinstance(value, int | float) and value < (0 if key.endswith("grace_seconds") else 1):
            problems.append(ConfigProblem(path, line, f"daemon.{key}", f"must be positive, got {value!r}"))
        else:
            values[key] = value
    readers: dict[str, Callable[..., tuple[Any, list[ConfigProblem]]]] = {
        "signal": _signal_settings,
        "ollama": _ollama_settings,
        "discord": _discord_settings,
        "letta": _letta_settings,
    }
    for section, read in readers.items():
        if isinstance(data.get(section), dict):
            values[section], section_problems = read(data[section], path, text, os.environ)
            problems += section_problems
    if problems:
        raise ConfigError(problems)
    sections = {name: body for name, body in data.items() if name != "daemon"}
    return Settings(**values, sections=sections)


def _unknown(name: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {'section' if known is _KNOWN_SECTIONS else 'field'} {name!r}{hint}"


# --- task specs ------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One validated entry of tasks.json."""

    task_id: str
    name: str
    script_path: str
    schedule_text: str
    schedule: Schedule
    timezone: ZoneInfo
    enabled: bool = True
    priority: int = 5
    timeout_seconds: float = 300.0
    retries: int = 0
    retry_backoff_seconds: float = 30.0
    overlap: str = "skip"
    missed: str = "once"
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    description: str = ""
    notify: str = "failure"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    first_run: datetime | None = None  # set by the source (a Discord task's next_run); else from the schedule

    @property
    def schedule_key(self) -> str:
        """What identifies "the same schedule" across reloads (re-anchor when it changes)."""
        return f"{self.schedule_text}@{self.timezone.key}"

    def definition_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    def resolved_script(self, tasks_dir: Path) -> Path:
        return under_tasks(self.script_path, tasks_dir)


def under_tasks(value: str, tasks_dir: Path) -> Path:
    """A script, playbook or inventory path: absolute, or relative to MOLTBOT_HOME/tasks."""
    path = Path(value)
    return path if path.is_absolute() else tasks_dir / path


def split_schedule_key(key: str) -> tuple[str, ZoneInfo]:
    """The schedule text and zone stored in a task's ``schedule_key``."""
    text, zone = key.rsplit("@", 1)
    return text, ZoneInfo(zone)


_TASK_FIELDS = {
    "task_id",
    "name",
    "script_path",
    "interval_minutes",
    "enabled",
    "priority",
    "schedule",
    "timezone",
    "timeout_seconds",
    "retries",
    "retry_backoff_seconds",
    "overlap",
    "missed",
    "args",
    "env",
    "description",
    "notify",
    "kind",  # "script" (default) | "llm" | "playbook"
    "prompt",  # llm: what to ask the model
    "model",  # llm: another model than [ollama]'s
    "deliver_to",  # llm: "signal:admins" | "discord:<channel id>" (else only the run's output)
    "playbook",  # playbook: the playbook file (relative to tasks/ or absolute)
    "inventory",  # playbook: an inventory file or folder, or an inline host list ("a,b")
    "limit",  # playbook: --limit
    "tags",  # playbook: --tags (a string or a list of strings)
    "extra_vars",  # playbook: --extra-vars (an object, passed in a file)
    "check_mode",  # playbook: --check
}
_CHOICES = {
    "overlap": ("skip", "queue"),
    "missed": ("skip", "once", "all"),
    "notify": ("failure", "always", "never"),
}


class _TaskReader:
    """Validates one task entry, collecting problems with their line numbers."""

    def __init__(self, path: Path, lines: dict[Any, int], index: int, entry: dict[str, Any]) -> None:
        self.path, self.lines, self.index, self.entry = path, lines, index, entry
        self.problems: list[ConfigProblem] = []

    def problem(self, name: str | None, message: str) -> None:
        line = self.lines.get(("tasks", self.index, name)) if name else None
        line = line or self.lines.get(("tasks", self.index))
        label = f"tasks[{self.index}]" + (f".{name}" if name else "")
        task_id = self.entry.get("task_id")
        if isinstance(task_id, str):
            label += f" ({task_id})"
        self.problems.append(ConfigProblem(self.path, line, label, message))

    def get(self, name: str, kinds: tuple[type, ...], default: Any, required: bool = False) -> Any:
        if name not in self.entry:
            if required:
                self.problem(None, f"missing required field {name!r}")
            return default
        value = self.entry[name]
        bool_ok = bool in kinds
        if not isinstance(value, kinds) or (isinstance(value, bool) and not bool_ok):
            expected = " or ".join(kind.__name__ for kind in kinds)
            self.problem(name, f"expected {expected}, got {json.dumps(value)}")
            return default
        return value


def load_tasks(path: Path, tasks_dir: Path, default_zone: ZoneInfo) -> list[TaskSpec]:
    """Read and validate tasks.json (the original format plus optional fields)."""
    from moltbot.jsonlines import line_map

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(path, None, None, "file not found")]) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(path, exc.lineno, None, f"invalid JSON: {exc.msg}")]) from exc
    lines = line_map(text)
    tasks = document.get("tasks") if isinstance(document, dict) else None
    if not isinstance(tasks, list):
        raise ConfigError([ConfigProblem(path, 1, "tasks", 'expected {"tasks": [ ... ]}')])
    problems: list[ConfigProblem] = []
    specs: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(tasks):
        if not isinstance(entry, dict):
            line = lines.get(("tasks", index))
            problems.append(ConfigProblem(path, line, f"tasks[{index}]", "expected an object"))
            continue
        reader = _TaskReader(path, lines, index, entry)
        spec = _read_task(reader, tasks_dir, default_zone)
        task_id = entry.get("task_id")
        if isinstance(task_id, str) and task_id in seen:
            reader.problem("task_id", f"duplicate task_id {task_id!r} (first at tasks[{seen[task_id]}])")
            spec = None
        elif isinstance(task_id, str):
            seen[task_id] = index
        problems.extend(reader.problems)
        if spec is not None:
            specs.append(spec)
    if problems:
        raise ConfigError(problems)
    return specs


def _read_task(reader: _TaskReader, tasks_dir: Path, default_zone: ZoneInfo) -> TaskSpec | None:
    from moltbot.schedules import parse_schedule

    entry = reader.entry
    for name in entry:
        if name not in _TASK_FIELDS:
            reader.problem(name, _unknown(name, _TASK_FIELDS))
    task_id = reader.get("task_id", (str,), "", required=True)
    if task_id and not TASK_ID_PATTERN.fullmatch(task_id):
        reader.problem("task_id", "use letters, digits, '.', '_' or '-' (at most 64, no leading punctuation)")
    elif task_id and task_id.startswith(DISCORD_PREFIX):
        reader.problem(
            "task_id", f"ids starting with {DISCORD_PREFIX!r} belong to Discord Tasks-Channel tasks"
        )
    name = reader.get("name", (str,), task_id)
    kind = reader.get("kind", (str,), "script")
    if kind not in ("script", "llm", "playbook"):
        reader.problem("kind", f"expected 'script', 'llm' or 'playbook', got {kind!r}")
    script = reader.get("script_path", (str,), "", required=kind == "script")
    action_args = None  # llm and playbook tasks: moltbot's own action is the process
    if kind == "llm":
        action_args = _llm_fields(reader, task_id)
    elif kind == "playbook":
        action_args = _playbook_fields(reader, task_id, tasks_dir)
    zone = default_zone
    if "timezone" in entry:
        zone_name = reader.get("timezone", (str,), "")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem("timezone", f"unknown IANA zone {zone_name!r} (e.g. 'Europe/Berlin')")
    schedule_text = _schedule_text(reader)
    schedule = None
    if schedule_text:
        try:
            schedule = parse_schedule(schedule_text, zone)
        except ValueError as exc:  # ScheduleError
            reader.problem("schedule" if "schedule" in entry else "interval_minutes", str(exc))
    values: dict[str, Any] = {
        "enabled": reader.get("enabled", (bool,), True),
        "priority": reader.get("priority", (int,), 5),
        "timeout_seconds": reader.get("timeout_seconds", (int, float), 300.0),
        "retries": reader.get("retries", (int,), 0),
        "retry_backoff_seconds": reader.get("retry_backoff_seconds", (int, float), 30.0),
        "description": reader.get("description", (str,), ""),
    }
    for choice_field, choices in _CHOICES.items():
        value = reader.get(choice_field, (str,), choices[0] if choice_field != "missed" else "once")
        if value not in choices:
            reader.problem(choice_field, f"expected one of {', '.join(choices)}, got {value!r}")
        values[choice_field] = value
    if not 1 <= values["priority"] <= 10:
        reader.problem("priority", f"expected 1 (highest) to 10, got {values['priority']}")
    if values["timeout_seconds"] <= 0:
        reader.problem("timeout_seconds", "must be positive")
    if not 0 <= values["retries"] <= 20:
        reader.problem("retries", "expected 0 to 20")
    if values["retry_backoff_seconds"] < 0:
        reader.problem("retry_backoff_seconds", "must not be negative")
    args = reader.get("args", (list,), [])
    if not all(isinstance(arg, str) for arg in args):
        reader.problem("args", "expected a list of strings")
    env = reader.get("env", (dict,), {})
    if not all(isinstance(value, str) for value in env.values()):
        reader.problem("env", "expected an object of string values")
    if script and kind == "script":
        _check_path(reader, "script_path", script, tasks_dir, executable=True)
    if reader.problems or schedule is None:
        return None
    if action_args is not None:  # moltbot's own action runs it, like any task (timeout, log, record)
        script, args = sys.executable, list(action_args)
    return TaskSpec(
        task_id=task_id,
        name=name,
        script_path=script,
        schedule_text=schedule_text,
        schedule=schedule,
        timezone=zone,
        args=tuple(args),
        env=tuple(sorted(env.items())),
        raw=dict(entry),
        **values,
    )


def _llm_fields(reader: _TaskReader, task_id: str) -> tuple[str, ...]:
    prompt = reader.get("prompt", (str,), "", required=True)
    if "prompt" in reader.entry and not prompt.strip():
        reader.problem("prompt", "must not be empty")
    reader.get("model", (str,), "")
    deliver_to = reader.get("deliver_to", (str,), "")
    if deliver_to and not re.fullmatch(r"signal:admins|discord:\d{15,21}", deliver_to):
        reader.problem(
            "deliver_to", f"expected 'signal:admins' or 'discord:<channel id>', got {deliver_to!r}"
        )
    if "script_path" in reader.entry:
        reader.problem("script_path", "an llm task has a prompt, not a script")
    return ("-m", "moltbot", "llm-action", task_id)


def _playbook_fields(reader: _TaskReader, task_id: str, tasks_dir: Path) -> tuple[str, ...]:
    from moltbot.playbooks import is_host_list

    for name in ("playbook", "inventory"):
        value = reader.get(name, (str,), "", required=True)
        if value and not (name == "inventory" and is_host_list(value, tasks_dir)):
            _check_path(reader, name, value, tasks_dir, executable=False)
    reader.get("limit", (str,), "")
    tags = reader.get("tags", (str, list), "")
    if isinstance(tags, list) and not all(isinstance(tag, str) and tag for tag in tags):
        reader.problem("tags", "expected a list of tag names")
    reader.get("extra_vars", (dict,), {})
    reader.get("check_mode", (bool,), False)
    for name in ("script_path", "args"):
        if name in reader.entry:
            reader.problem(
                name, f"a playbook task has no {name}: use playbook, inventory, limit, tags, extra_vars"
            )
    return ("-m", "moltbot", "playbook-action", task_id)


def _schedule_text(reader: _TaskReader) -> str:
    entry = reader.entry
    if "schedule" in entry and "interval_minutes" in entry:
        reader.problem("schedule", "give either 'schedule' or 'interval_minutes', not both")
        return ""
    if "schedule" in entry:
        return str(reader.get("schedule", (str,), ""))
    minutes = reader.get("interval_minutes", (int, float), None)
    if minutes is None:
        if "interval_minutes" not in entry:
            reader.problem(None, "missing 'schedule' (or the original 'interval_minutes')")
        return ""
    if minutes <= 0:
        reader.problem("interval_minutes", f"must be positive, got {minutes}")
        return ""
    seconds = round(minutes * 60)
    return f"every {int(minutes)}m" if minutes == int(minutes) else f"every {seconds}s"


def _check_path(reader: _TaskReader, name: str, value: str, tasks_dir: Path, executable: bool) -> None:
    """A script, playbook or inventory: under tasks/ when relative, and there."""
    path = under_tasks(value, tasks_dir)
    what = name.replace("script_path", "script")
    if not Path(value).is_absolute() and not path.resolve().is_relative_to(tasks_dir.resolve()):
        reader.problem(
            name, f"{value!r} resolves outside {tasks_dir}; give an absolute path to use one elsewhere"
        )
        return
    if not (path.is_file() or (name == "inventory" and path.is_dir())):
        reader.problem(name, f"{what} not found: {path}")
    elif executable and not os.access(path, os.X_OK):
        reader.problem(name, f"{what} is not executable: {path} (chmod +x it)")
