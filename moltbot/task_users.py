"""Tasks as another user (``[daemon] task_user``): who a run runs as, and what keeps that user out.

With a task user, a run that executes the owner's code (a script, a playbook)
is started as that user (or as the task's own ``user``): it cannot read the
database, the logs, the secrets or the daemon's processes, nor write
``config/``, the scripts or ``MOLTBOT_HOME``. The daemon starts it with
``Popen(user=, group=, extra_groups=)``: the switch is made between fork and
exec by CPython's C code, thread-safe, unlike a ``preexec_fn``. For that the
daemon keeps CAP_SETUID and CAP_SETGID (and CAP_KILL, to signal the task
user's processes on a timeout, a stop or a shutdown) in its own effective set;
its children inherit none (``privileges.py``).

``isolation_problems`` is what the daemon checks before it starts: a home the
task user could write is refused (exit 3), as a broken configuration is.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from moltbot.config.home import Home
from moltbot.config.secrets import secret_files
from moltbot.config.spec import TaskSpec
from moltbot.file_access import READ, SEARCH, WRITE, Person, may
from moltbot.privileges import CAP_KILL, CAP_SETGID, CAP_SETUID, missing_capabilities, no_new_privileges

__all__ = [
    "Identity",
    "UnknownUser",
    "identity_of",
    "isolation_problems",
    "prepare",
    "switch_problems",
    "users_of",
]

_MAX_ENTRIES = 10_000  # files checked under tasks/: a home is a handful; a mistake is not walked forever


class UnknownUser(LookupError):
    pass


@dataclass(frozen=True)
class Identity:
    """A user a run may run as, from the user database."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary, as login would set them (initgroups)
    home: str
    shell: str

    def environment(self) -> dict[str, str]:
        """What a login as this user would set, for the run's minimal environment."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell}


def identity_of(name: str) -> Identity:
    """Looked up at each launch (a user the owner changes needs no restart)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UnknownUser(f"no user {name!r} on this host") from None
    groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
    return Identity(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir, entry.pw_shell or "/bin/sh")


def switch_problems() -> list[str]:
    """Why this process could not start runs as another user (and signal them), if it cannot."""
    missing = missing_capabilities(CAP_SETUID, CAP_SETGID, CAP_KILL)
    if not missing:
        return []
    return [
        f"[daemon] task_user is set, but the daemon lacks {', '.join(missing)}: it cannot start tasks as "
        "another user. The unit grants them (AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL); by hand, "
        "start it as root or through setpriv (README: Security model)"
    ]


def _person(who: Identity) -> Person:
    return Person(who.uid, frozenset({who.gid, *who.groups}))


def _replaceable(path: Path, who: Identity) -> bool:
    """Whether ``who`` may rename, remove or replace ``path``: its folder is writable to it, and not
    sticky against it (as /var/tmp is)."""
    if not may(path.parent, _person(who), WRITE | SEARCH):
        return False
    parent = path.parent.stat()
    return not (parent.st_mode & stat.S_ISVTX) or path.lstat().st_uid == who.uid or parent.st_uid == who.uid


def _tree(root: Path) -> Iterable[Path]:
    yield root
    count = 0
    for folder, names, files in os.walk(root):
        for name in [*names, *files]:
            count += 1
            if count > _MAX_ENTRIES:
                return
            yield Path(folder) / name


def isolation_problems(home: Home, who: Identity, secret_files: Iterable[Path] = ()) -> list[str]:
    """What ``who`` could change or read that it must not: the path to MOLTBOT_HOME and the home
    itself, config/, tasks/ and every script (a task could plant its own config, or rewrite a script
    that another task runs next), and the secrets' files. data/ and logs/ the daemon makes its own."""
    problems = []
    path_to_home = [folder for folder in reversed(home.root.parents) if folder != Path("/")]
    for path in [*path_to_home, home.root]:
        if _replaceable(path, who):
            problems.append(f"{path} can be renamed or replaced by the task user {who.name}")
    for path in [home.root, *_tree(home.config_dir), *_tree(home.tasks_dir)]:
        try:
            if (path != home.root and _replaceable(path, who)) or may(path, _person(who), WRITE):
                problems.append(f"{path} can be changed by the task user {who.name}")
        except FileNotFoundError:  # a link to nothing, or gone meanwhile
            continue
    for path in secret_files:
        try:
            if may(path, _person(who), READ) and _searchable_to(path, who):
                problems.append(f"{path} (a secret) can be read by the task user {who.name}")
        except FileNotFoundError:
            continue
    return problems


def _searchable_to(path: Path, who: Identity) -> bool:
    return all(may(folder, _person(who), SEARCH) for folder in reversed(path.parents))


def users_of(task_user: str, specs: Iterable[TaskSpec]) -> set[str]:
    """Every user runs of these tasks run as: the task user, and the users tasks name."""
    from moltbot.kinds import kind_of

    named = {
        str(spec.raw["user"]) for spec in specs if spec.raw.get("user") and kind_of(spec.kind).as_task_user
    }
    return {task_user, *named}


def prepare(home: Home, names: Iterable[str]) -> list[str]:
    """The daemon, before it starts with a task user: what keeps tasks out (the problems, if any), and
    the daemon's own part made so: data/ and logs/ its alone, runs/ made, files it creates private, and
    no new privileges for anything it starts (a setuid sudo included: README, Security model)."""
    problems = switch_problems()
    for name in sorted(names):
        try:
            who = identity_of(name)
        except UnknownUser as exc:
            problems.append(str(exc))
            continue
        if who.uid in (0, os.getuid()):
            problems.append(f"tasks may not run as {name}: it is root, or the daemon's own user")
            continue
        problems += isolation_problems(home, who, secret_files(os.environ))
    if problems:
        return problems
    os.umask(0o077)  # the database, its journal, the logs: the daemon's alone, whatever the caller's umask
    try:
        home.runs_dir.mkdir(exist_ok=True)
    except OSError as exc:
        return [f"cannot make {home.runs_dir}: {exc.strerror}: make it, owned by the daemon's user"]
    for folder, mode in ((home.data_dir, 0o700), (home.logs_dir, 0o700), (home.runs_dir, 0o711)):
        if folder.stat().st_uid != os.getuid():
            problems.append(f"{folder} must belong to the daemon's user (uid {os.getuid()})")
        else:
            folder.chmod(mode)
    no_new_privileges()
    return problems
