"""``moltbot doctor``: is everything moltbot depends on in order? Each failure comes with a fix.

Checks run in order (home, config, task user, database, ansible-playbook for playbook tasks, Signal
gateway, Discord, Ollama, Letta, clock); a service is checked only when its section is configured.
Every network call is bounded by a short timeout. Last, the running daemon's own view: each chat
channel connected, no background thread restarting (``core/health.py`` records them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from moltbot.config.errors import ConfigError
from moltbot.config.home import Home, layout_problems
from moltbot.config.settings import Settings, load_settings
from moltbot.config.spec import TaskSpec
from moltbot.records import HEARTBEAT, HealthReport
from moltbot.redact import masked_url, redact_urls

if TYPE_CHECKING:
    from moltbot.core import Core

__all__ = ["Check", "run_checks"]

TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # a failed required check makes doctor exit non-zero


def run_checks(home: Home) -> list[Check]:
    """Every check, in order; a URL's credentials masked (its output is pasted into bug reports)."""
    return [replace(c, detail=redact_urls(c.detail), fix=redact_urls(c.fix)) for c in _all_checks(home)]


def _all_checks(home: Home) -> list[Check]:
    checks: list[Check] = []
    _home(home, checks)
    settings, specs = _config(home, checks)
    if settings is not None:
        _task_user(home, settings, specs, checks)
    _database(home, checks, specs)
    if settings is None:
        return checks
    if any(spec.kind == "playbook" for spec in specs):
        _ansible(checks)
    if settings.signal is not None:
        _signal(settings, checks, _paired_people(home))
    if settings.discord is not None:
        _discord(settings, checks)
    if settings.ollama is not None:
        _ollama(settings, checks)
    if settings.letta is not None:
        _letta(settings, checks)
    _clock(settings, checks)
    _daemon(home, settings, checks)
    return checks


def _home(home: Home, checks: list[Check]) -> None:
    """The layout's folders are folders (or can be made), usable as they must be; nothing is made here."""
    problems = layout_problems(home)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        checks.append(Check("home", False, first.problem + more, first.fix))
    else:
        checks.append(Check("home", True, f"{home.root}: config and tasks readable, data and logs writable"))


def _config(home: Home, checks: list[Check]) -> tuple[Settings | None, list[TaskSpec]]:
    from moltbot.config.tasks import load_tasks

    try:
        settings = load_settings(home.settings_toml)
        specs = load_tasks(home.tasks_json, home.tasks_dir, settings.timezone)
    except ConfigError as error:
        count = len(error.problems)
        checks.append(
            Check("config", False, f"{count} problem(s): {error.problems[0]}", "moltbot check lists them all")
        )
        return None, []
    checks.append(Check("config", True, f"{len(specs)} tasks; scripts exist and are executable"))
    return settings, specs


def _task_user(home: Home, settings: Settings, specs: list[TaskSpec], checks: list[Check]) -> None:
    """Whether tasks are kept from the daemon: run as a user of their own, which can read and change
    nothing of moltbot's (mode bits and ACLs: ``task_users.isolation_problems``, as the daemon checks
    before it starts)."""
    from moltbot.config.secrets import SECRETS, secret_files
    from moltbot.task_users import UnknownUser, identity_of, isolation_problems, users_of

    if not settings.task_user:
        in_environment = [name for name in SECRETS if os.environ.get(name)]
        exposed = f" and catch {', '.join(in_environment)} as moltbot hands it on" if in_environment else ""
        detail = f"not set: tasks run as moltbot's own user, so they can read its database{exposed}"
        fix = "set [daemon] task_user to a user of their own (README: Security model; the Ansible role does)"
        checks.append(Check("task user", False, detail, fix, required=False))
        return
    names = sorted(users_of(settings.task_user, specs))
    problems = []
    for name in names:
        try:
            who = identity_of(name)
        except UnknownUser as exc:
            problems.append(str(exc))
            continue
        problems += isolation_problems(home, who, secret_files(os.environ))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fix = f"make it root's and not writable by others, and drop ACLs that grant it (getfacl {home.root})"
        checks.append(Check("task user", False, problems[0] + more, fix))
        return
    detail = (
        f"tasks run as {', '.join(names)}: they cannot read the secrets nor change config/, tasks/ or "
        f"{home.root} (data/ and logs/ the daemon keeps to itself)"
    )
    checks.append(Check("task user", True, detail))


def _ansible(checks: list[Check]) -> None:
    from moltbot.kinds.playbook import PlaybookError, find_ansible_playbook
    from moltbot.processes import venv_first

    try:  # on the PATH a run gets
        found = find_ansible_playbook({"PATH": venv_first(os.environ.get("PATH", "/usr/bin:/bin"))})
    except PlaybookError as exc:
        checks.append(
            Check("ansible", False, "playbook tasks need ansible-playbook", str(exc).split(": ", 1)[1])
        )
        return
    checks.append(Check("ansible", True, f"playbook tasks run {found}"))


def _database(home: Home, checks: list[Check], specs: list[TaskSpec]) -> None:
    from moltbot.core import Core

    core = Core(home)
    split = core.database_split()  # before opening: a path deleted under the daemon is not made again
    if split is not None:
        detail, fix = split.split(". Restart it: ", 1)
        checks.append(Check("database", False, detail, fix))
        return
    try:
        core.open(create_home=False)
        version = core.check_database()
    except Exception as exc:
        fix = f"make {home.data_dir} writable by the user moltbot runs as"
        checks.append(Check("database", False, f"{core.database_target()}: {exc}", fix))
        return
    checks.append(Check("database", True, f"{core.database_target()} writable, schema {version} (current)"))
    if not isinstance(core.database_target(), Path):  # PostgreSQL: several nodes may share it
        _nodes(core, specs, checks)


def _nodes(core: Core, specs: list[TaskSpec], checks: list[Check]) -> None:
    """Several nodes on PostgreSQL: who is up, and whether this node's tasks.json is the database's."""
    from moltbot.core.registration import definitions_differ

    up = ", ".join(node.name for node in core.nodes()) or "none"
    synced_by = definitions_differ(specs) if specs else None
    if synced_by is not None:
        detail = (
            f"nodes up: {up}; this tasks.json differs from the one {synced_by} wrote: this node runs nothing"
        )
        fix = "deploy the same tasks.json and scripts to every node, then moltbot reload on each"
        checks.append(Check("nodes", False, detail, fix))
        return
    checks.append(Check("nodes", True, f"nodes up: {up}; tasks.json the same as the database's"))


def _daemon(home: Home, settings: Settings, checks: list[Check]) -> None:
    from moltbot.core import Core

    core = Core(home)
    if core.database_split() is not None:
        return  # the database check said so
    try:
        core.open(create_home=False)
    except Exception:
        return  # the database check said why
    pid = core.daemon_pid()
    if pid is None:
        fix = "systemctl start moltbot (or moltbot daemon)"
        checks.append(Check("daemon", False, "not running: nothing is scheduled, nobody is listening", fix))
        return
    checks.append(Check("daemon", True, f"running (pid {pid})"))
    report = core.health_report()
    if report is None:
        return  # it is just starting
    why = "the daemon's log says why (journalctl -u moltbot); the checks above try the service itself"
    for channel in report.channels:
        since = f"since {channel.since.astimezone(settings.timezone):%Y-%m-%d %H:%M:%S %Z}"
        detail = f"connected {since}" if channel.up else f"{channel.state} {since}: {channel.error}"
        checks.append(Check(f"{channel.name} channel", channel.up, detail, "" if channel.up else why))
    # A chat section added since the daemon's last (re)load: the service answers, the checks above
    # are green, and the daemon is deaf to it until it reloads.
    started = {channel.name for channel in report.channels}
    configured = {"signal": settings.signal is not None}
    configured["discord"] = settings.discord is not None and bool(settings.discord.token)
    for name in sorted(name for name, wanted in configured.items() if wanted and name not in started):
        detail = "configured, but the running daemon has not started it"
        fix = "moltbot reload (or systemctl reload moltbot): the daemon reads moltbot.toml then"
        checks.append(Check(f"{name} channel", False, detail, fix))
    restarting = [thread for thread in report.threads if thread.state == "restarting"]
    detail = "; ".join(f"{t.name} restarting after {t.failures} failure(s): {t.error}" for t in restarting)
    fix = "" if not restarting else "the daemon's log has the traceback (journalctl -u moltbot)"
    checks.append(Check("threads", not restarting, detail or f"{len(report.threads)} running", fix))
    _pings(settings, report, checks)


def _pings(settings: Settings, report: HealthReport, checks: list[Check]) -> None:
    """The heartbeat's last ping (a failing one makes the monitor cry wolf), and tasks' failing pings."""
    pings = {ping.name: ping for ping in report.pings}
    heartbeat = pings.pop(HEARTBEAT, None)
    if settings.heartbeat_url:
        shown, every = masked_url(settings.heartbeat_url), f"every {settings.heartbeat_seconds:g} s"
        if heartbeat is None:
            checks.append(Check("heartbeat", True, f"{shown} {every}: no ping sent yet"))
        else:
            since = f"since {heartbeat.since.astimezone(settings.timezone):%Y-%m-%d %H:%M:%S %Z}"
            ok = heartbeat.state == "ok"
            detail = f"{shown} {every}: " + (
                "pings get through " + since if ok else f"failing {since}: {heartbeat.error}"
            )
            fix = (
                ""
                if ok
                else "check [daemon] heartbeat_url, and that this host reaches the monitor (curl -fsS URL)"
            )
            checks.append(Check("heartbeat", ok, detail, fix))
    failing = [ping for ping in pings.values() if ping.state == "failed"]
    if failing:
        detail = "; ".join(f"{ping.name} ({ping.url}): {ping.error}" for ping in failing)
        fix = "check the tasks' ping_url, and that this host reaches the monitor"
        checks.append(Check("task pings", False, detail, fix, required=False))


def _paired_people(home: Home) -> int | None:
    """How many people `moltbot pair` added; None when the database cannot say (its check tells why)."""
    from moltbot.core import Core

    core = Core(home)
    if core.database_split() is not None or not home.db_path.exists():
        return None  # nothing opened (or made again) where the daemon's database is not
    try:
        core.open(create_home=False)
        return len(core.people.paired())
    except Exception:
        return None


def _signal(settings: Settings, checks: list[Check], paired: int | None) -> None:
    from moltbot.signal_chat.gateway import Gateway, GatewayError

    signal = settings.signal
    assert signal is not None
    gateway = Gateway(signal)
    try:
        about = gateway.detect()
    except GatewayError as exc:
        checks.append(
            Check("signal gateway", False, str(exc), f"start signal-cli-rest-api at {signal.url} (README)")
        )
        gateway.close()
        return
    try:
        if about.mode != "json-rpc":
            fix = "run the gateway with -e MODE=json-rpc: only that mode pushes messages"
            checks.append(Check("signal gateway", False, f"mode {about.mode}, version {about.version}", fix))
        else:
            checks.append(
                Check("signal gateway", True, f"{signal.url}: mode json-rpc, version {about.version}")
            )
        accounts = gateway.accounts()
        if signal.number in accounts:
            checks.append(Check("signal account", True, f"{signal.number} is registered"))
        else:
            fix = f"register or link {signal.number} (README: Gateway set-up)"
            checks.append(Check("signal account", False, f"{signal.number} not in {accounts}", fix))
    except Exception as exc:
        checks.append(
            Check("signal account", False, f"could not list accounts: {exc}", "check the gateway's log")
        )
    finally:
        gateway.close()
    if signal.allowed or signal.linked_device or paired or paired is None:
        known = "? paired (see the database check)" if paired is None else f"{paired} paired"
        counts = f"{len(signal.allowed)} allowed, {len(signal.viewers)} viewers, {known}"
        checks.append(Check("signal senders", True, counts))
    else:
        checks.append(
            Check("signal senders", False, "nobody may command the bot", "moltbot pair (or list your UUID)")
        )


def _discord(settings: Settings, checks: list[Check]) -> None:
    from moltbot.discord_tasks.client import DiscordClient, DiscordError

    discord = settings.discord
    assert discord is not None
    if not discord.token:
        checks.append(
            Check(
                "discord token",
                False,
                "DISCORD_BOT_TOKEN is not set",
                "a systemd credential, or a file named by DISCORD_BOT_TOKEN_FILE (README: Security model)",
            )
        )
        return
    client = DiscordClient(discord.token, discord.api_base, timeout=TIMEOUT)
    try:
        me = client.me()
        checks.append(Check("discord token", True, f"bot {me.get('username', '?')} ({me.get('id', '?')})"))
        channels = {
            "tasks channel": discord.tasks_channel_id,
            "heartbeat channel": discord.heartbeat_log_channel_id,
        }
        for label, channel in channels.items():
            if not channel:
                continue
            try:
                client.messages(channel, limit=1)
                checks.append(Check(f"discord {label}", True, f"{channel} readable"))
            except DiscordError as exc:
                fix = "give the bot View Channel and Read Message History there"
                checks.append(Check(f"discord {label}", False, f"{channel}: {exc}", fix))
    except Exception as exc:
        fix = "check DISCORD_BOT_TOKEN (Developer Portal > Bot > Reset Token) and api_base"
        checks.append(Check("discord token", False, str(exc), fix))
    finally:
        client.close()


def _ollama(settings: Settings, checks: list[Check]) -> None:
    from moltbot.agents.ollama import AgentUnavailable, OllamaClient

    ollama = settings.ollama
    assert ollama is not None
    with OllamaClient(ollama.host, ollama.model, TIMEOUT) as client:
        try:
            models = client.health()
        except AgentUnavailable as exc:
            checks.append(
                Check("ollama", False, str(exc), f"start Ollama on {ollama.host} (or set OLLAMA_HOST)")
            )
            return
        if client.has_model():
            checks.append(Check("ollama", True, f"{ollama.host}: model {ollama.model} present"))
        else:
            detail = f"{ollama.host} has no {ollama.model} (has: {', '.join(models) or 'none'})"
            checks.append(Check("ollama", False, detail, f"ollama pull {ollama.model}"))


def _letta(settings: Settings, checks: list[Check]) -> None:
    import httpx

    letta = settings.letta
    assert letta is not None
    try:
        response = httpx.get(f"{letta.base_url}/v1/health/", timeout=TIMEOUT, follow_redirects=True)
        ok = response.status_code < 400
        detail = (
            f"{letta.base_url}: {'up' if ok else f'answered {response.status_code}'}, agent {letta.agent_id}"
        )
    except httpx.HTTPError as exc:
        ok, detail = False, f"{letta.base_url}: {exc}"
    checks.append(Check("letta", ok, detail, "" if ok else "start the Letta server or fix [letta] base_url"))


def _clock(settings: Settings, checks: list[Check]) -> None:
    now = datetime.now(UTC)
    zone = settings.timezone.key
    if now.year < 2024:
        checks.append(
            Check("clock", False, f"the clock says {now:%Y-%m-%d}", "enable NTP (timedatectl set-ntp true)")
        )
    else:
        local = now.astimezone(settings.timezone)
        checks.append(
            Check("clock", True, f"{local:%Y-%m-%d %H:%M %Z} in {zone} (TZ={os.environ.get('TZ', '-')})")
        )
