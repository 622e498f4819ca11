"""A run's own folder, for a run as the task user: what it leaves the daemon, which it may not write to
the database itself (its checkpoint, a playbook's recap), and what the daemon leaves it (a playbook
task's definition, which it may not read from the database either).

``MOLTBOT_HOME/runs/`` is the daemon's, mode 0711: anyone may pass through, nobody else may list it.
A run gets ``runs/<run id>-<128 random bits>/``, mode 1733: the run may create files in it but not
list it nor remove the daemon's, and nobody who is not told its name can find it. The daemon reads
what the run left at the run's end (and recovery, after a crash) with care: a regular file, not a
link, owned by the run's user, bounded in size; then the folder goes.

While the run runs, ``moltbot notify`` and ``moltbot ask`` in it leave requests there too
(``request``: ``notify-<token>.json``, ``ask-<token>.json``), which the daemon takes as they come
(``relay.py``, reading them with ``read``) and acknowledges, or answers, with ``answer-<token>.json``
(``answer``), a file of the daemon's the run reads (``reply``).

The run's side (``save``, ``load``, ``clear``, ``definition``, ``leave``, ``request``, ``reply``)
finds its folder in ``MOLTBOT_RUN_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_DIR_ENV",
    "Leftovers",
    "answer",
    "clear",
    "collect",
    "create",
    "definition",
    "leave",
    "left_behind",
    "load",
    "read",
    "remove",
    "reply",
    "request",
    "save",
]

log = logging.getLogger(__name__)
RUN_DIR_ENV = "MOLTBOT_RUN_DIR"
CHECKPOINT, RECAP, DEFINITION = "checkpoint.json", "recap.json", "definition.json"
MAX_BYTES = 8 * 1024 * 1024  # what the daemon reads of a file a run left


@dataclass(frozen=True)
class Leftovers:
    checkpoint: str | None = None  # the JSON text saved last
    cleared: bool = False  # the checkpoint was cleared (after any save)
    recap: str | None = None


# --- the daemon's side --------------------------------------------------------------------------


def create(runs_dir: Path, run_id: int, task_definition: Mapping[str, Any] | None) -> Path:
    folder = runs_dir / f"{run_id}-{secrets.token_hex(16)}"
    folder.mkdir()
    folder.chmod(0o1733)  # after mkdir: the umask would take the bits away
    if task_definition is not None:
        _write(folder / DEFINITION, json.dumps(dict(task_definition)))
    return folder


def collect(folder: Path, uid: int) -> Leftovers:
    """What the run (as ``uid``) left; anything else in its place is ignored, and logged."""
    checkpoint, cleared = None, False
    saved = _read(folder / CHECKPOINT, uid)
    if saved is not None:
        try:
            value = json.loads(saved)
            if value.get("cleared") is True:
                cleared = True
            else:
                checkpoint = json.dumps(value["data"])
        except (ValueError, AttributeError, KeyError, TypeError):
            log.warning("%s: not a checkpoint moltbot wrote; ignored", folder / CHECKPOINT)
    return Leftovers(checkpoint, cleared, _read(folder / RECAP, uid))


def read(path: Path, uid: int, max_bytes: int) -> str | None:
    """A file the run (as ``uid``) left, if it is one: regular, not a link, its own, at most ``max_bytes``."""
    return _read(path, uid, max_bytes)


def answer(folder: Path, token: str, body: Mapping[str, Any]) -> None:
    """The daemon's answer to the run's request ``token``, readable by the run (a file of the daemon's,
    renamed into place: a link the run put there is replaced, never followed)."""
    _write(folder / f"answer-{token}.json", json.dumps(dict(body)))


def _read(path: Path, uid: int, max_bytes: int = MAX_BYTES) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a link (ELOOP), or made unreadable: the run's loss, not the daemon's
        log.warning("%s: not read: %s", path, exc.strerror or exc)
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_size > max_bytes:
            log.warning("%s: not a file of the run's own under %d bytes; ignored", path, max_bytes)
            return None
        return file.read(max_bytes).decode(errors="replace")


def remove(folder: Path) -> None:
    """The folder and what is in it; what the run made unremovable (a folder of its own, 0700) stays."""
    try:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        os.rmdir(folder)
    except OSError as exc:
        log.warning("%s: left behind: %s", folder, exc.strerror or exc)


def left_behind(runs_dir: Path) -> dict[int, Path]:
    """The folders of runs a crashed daemon never cleared, by run id."""
    found = {}
    try:
        entries = list(os.scandir(runs_dir))
    except FileNotFoundError:
        return {}
    for entry in entries:
        run_id, _, _ = entry.name.partition("-")
        if run_id.isdigit() and entry.is_dir(follow_symlinks=False):
            found[int(run_id)] = Path(entry.path)
    return found


# --- the run's side ----------------------------------------------------------------------------


def _folder() -> Path:
    return Path(os.environ[RUN_DIR_ENV])


def _write(path: Path, text: str) -> None:
    """Whole or not at all (a new file renamed over the old one), readable by the daemon."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as file:
        os.fchmod(fd, 0o644)  # whatever the umask: the daemon is another user
        file.write(text)
        file.flush()
        os.fsync(fd)
    os.replace(temporary, path)


def save(data: Any) -> None:
    _write(_folder() / CHECKPOINT, json.dumps({"data": data}))


def clear() -> None:
    _write(_folder() / CHECKPOINT, json.dumps({"cleared": True}))


def load() -> Any:
    """What this run saved last, else the checkpoint it started with (``MOLTBOT_CHECKPOINT``)."""
    try:
        saved = json.loads((_folder() / CHECKPOINT).read_text())
    except FileNotFoundError:
        started = os.environ.get("MOLTBOT_CHECKPOINT", "")
        return json.loads(started) if started else None
    return None if saved.get("cleared") else saved["data"]


def definition() -> dict[str, Any]:
    value: dict[str, Any] = json.loads((_folder() / DEFINITION).read_text())
    return value


def leave(name: str, text: str) -> None:
    """A file for the daemon (a playbook's recap: ``RECAP``)."""
    _write(_folder() / name, text)


def request(kind: str, body: Mapping[str, Any]) -> str:
    """Leave the daemon a request (``notify``, ``ask``), whole or not at all; its token, for ``reply``."""
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    _write(_folder() / f"{kind}-{token}.json", json.dumps(dict(body)))
    return token


def reply(token: str) -> dict[str, Any] | None:
    """The daemon's answer to the request ``token``; None while there is none."""
    try:
        value = json.loads((_folder() / f"answer-{token}.json").read_text())
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None
