"""A reload (SIGHUP, ``moltbot reload``, ``systemctl reload``): moltbot.toml and tasks.json read
again, applied together or not at all, and what was done recorded for ``moltbot reload`` to print.

Both files are read and checked before anything changes: a broken one keeps everything as it was,
and the outcome says where it is broken (file, line, field). Then, section by section:
``[signal]`` and ``[discord]`` added, changed or removed start, restart or stop their bridge
(``bridges.py``); ``[ollama]`` and ``[letta]`` are taken up by the chat (its model) and by the next
runs (an ``llm`` or Discord run's helper reads them at its start); ``[daemon]`` is applied at
start only (workers, task user, zone, heartbeat... are woven through the running daemon), so its
changed keys are named as needing a restart, and the daemon keeps the ones it started with. Secrets
are read again with their sections: a token in a file (``_FILE``, a systemd credential) can
change, one in the daemon's environment cannot until a restart.
"""

from __future__ import annotations

import dataclasses
import logging

from moltbot.bridges import CHAT_SECTIONS, Bridges
from moltbot.config.errors import ConfigError
from moltbot.config.settings import Settings, load_settings
from moltbot.core import registration
from moltbot.core.api import Core
from moltbot.task_sources import TaskSources

__all__ = ["RESTART", "daemon_changes", "reload"]

log = logging.getLogger(__name__)

RESTART = "systemctl restart moltbot"
_AGENT_SECTIONS = ("ollama", "letta")
_SECTIONS = (*CHAT_SECTIONS, *_AGENT_SECTIONS)


def daemon_changes(old: Settings, new: Settings) -> list[str]:
    """The ``[daemon]`` keys whose values differ, in the file's documented order."""
    return [
        field.name
        for field in dataclasses.fields(Settings)
        if field.name not in _SECTIONS and getattr(old, field.name) != getattr(new, field.name)
    ]


def reload(core: Core, sources: TaskSources, bridges: Bridges, old: Settings) -> Settings:
    """Read both files again and apply them (or nothing); log and record what was done. The settings
    the daemon goes on with: ``old``'s ``[daemon]``, the integrations' sections read now."""
    try:
        read = load_settings(core.home.settings_toml)
        # The [daemon] values stay those the daemon started with, tasks' default zone included.
        settings = dataclasses.replace(old, **{name: getattr(read, name) for name in _SECTIONS})
        specs = registration.load_specs(core.home, settings.timezone, core.clock.now(), settings.task_user)
    except ConfigError as error:
        log.error("config reload failed; keeping the last good config:\n%s", error)
        core.record_reload(False, f"reload failed, nothing changed:\n{error}")
        return old
    result = sources.apply_config(specs)
    named = (("added", result.added), ("changed", result.changed), ("removed", result.removed))
    changes = [f"{verb} {', '.join(ids)}" for verb, ids in named if ids]
    done = [f"tasks.json ({'; '.join(changes) or 'no change'})"]
    core.use_settings(settings)  # before the bridges: they and the chat handlers read it
    done += bridges.apply(old, settings)
    if old.discord is not None and settings.discord is None:
        sources.set("discord", [])  # as at a start without it: its tasks are not scheduled
    done += [f"[{name}] applied" for name in _AGENT_SECTIONS if getattr(old, name) != getattr(read, name)]
    waiting = daemon_changes(old, read)
    if waiting:
        done.append(f"needs a restart: [daemon] {', '.join(waiting)} ({RESTART})")
    text = "reloaded: " + "; ".join(done)
    log.info("%s", text)
    core.record_reload(True, text)
    return settings
