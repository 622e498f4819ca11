"""Real users for the privilege tests, and moltbot run as them (``setpriv``, from util-linux).

CI runs as root: the users are created once, idempotently (``useradd``), and a home lives under
/var/tmp, since pytest's own temporary folder (/tmp/pytest-of-root) is 0700 root and no other user
could reach a home inside it. The daemon is started the way the unit starts it: as its own user,
with only the capabilities the unit grants, and no new privileges. Tests that need another user
skip without root, saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moltbot.config.home import Home
from tests.conftest import DaemonProcess, Env

__all__ = ["TOKEN", "Sandbox", "User", "Users", "needs_root", "sandbox", "sandboxed", "users"]

DAEMON, TASK, OTHER = "mbtest-daemon", "mbtest-task", "mbtest-other"
TOKEN = "discord-token-no-task-may-read"  # the sandbox's credential
USER_HOMES = Path("/var/tmp/moltbot-test-users")
# What deploy/moltbot.service grants the daemon (AmbientCapabilities=, CapabilityBoundingSet=).
UNIT_CAPABILITIES = "setuid,setgid,kill"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="creating users and running as them needs root (CI runs as root)"
)


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    def setpriv(self, capabilities: str = "") -> list[str]:
        """The command prefix that runs as this user with ``capabilities`` (ambient, so they survive
        the exec of python) and no others, and no new privileges (the unit's NoNewPrivileges=yes)."""
        if capabilities:
            plus = ",".join(f"+{name}" for name in capabilities.split(","))
            grant = [f"--inh-caps={plus}", f"--ambient-caps={plus}", f"--bounding-set=-all,{plus}"]
        else:
            grant = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", *grant,
                "--no-new-privs", "--"]  # fmt: skip


def ensure_user(name: str) -> User:
    """The system user ``name`` with its own group and a 0700 home, made if missing."""
    if name not in {entry.pw_name for entry in pwd.getpwall()}:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        argv = [useradd, "--system", "--user-group", "--home-dir", str(USER_HOMES / name), "--no-create-home",
                "--shell", "/usr/sbin/nologin", name]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode not in (0, 9):  # 9: another test session made it meanwhile
            raise AssertionError(f"useradd {name} failed: {result.stderr}")
    entry = pwd.getpwnam(name)
    USER_HOMES.mkdir(mode=0o755, exist_ok=True)
    home = Path(entry.pw_dir)
    home.mkdir(exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o700)
    return User(name, entry.pw_uid, entry.pw_gid, home)


@dataclass(frozen=True)
class Users:
    daemon: User  # the unit's User=
    task: User  # [daemon] task_user
    other: User  # a task's own "user"
    python: Path  # this venv's Python, as every user can run it


@pytest.fixture(scope="session")
def users() -> Users:
    if os.geteuid() != 0:
        pytest.skip("creating users and running as them needs root (CI runs as root)")
    return Users(ensure_user(DAEMON), ensure_user(TASK), ensure_user(OTHER), python_for_everyone())


def _everyone_may_run(path: Path) -> bool:
    """Whether a user with no rights of its own can execute ``path`` (every folder up to it searchable)."""
    resolved = path.resolve()
    folders_open = all(folder.stat().st_mode & stat.S_IXOTH for folder in resolved.parents)
    return folders_open and bool(resolved.stat().st_mode & stat.S_IXOTH)


def python_for_everyone() -> Path:
    """This venv's Python, or, when its interpreter lives where other users cannot reach (pyenv under
    /root), a venv of the system's Python of the same version whose site-packages are this venv's
    (a .pth line that adds them as a site folder, so their own .pth files count: the editable moltbot).
    Its bin/ holds ``moltbot`` and ``ansible-playbook`` too, as tasks find them on PATH."""
    if _everyone_may_run(Path(sys.executable)):
        return Path(sys.executable)
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists() or not _everyone_may_run(system):
        pytest.skip(f"{sys.executable} cannot be run by other users, and there is no {system}")
    packages = sysconfig.get_paths()["purelib"]
    key = hashlib.sha256(packages.encode()).hexdigest()[:12]
    venv = USER_HOMES / f"python-{key}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    USER_HOMES.mkdir(mode=0o755, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="python-", dir=USER_HOMES))
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(building)], check=True)
    site = next((building / "lib").glob("python*/site-packages"))
    (site / "moltbot-tests.pth").write_text(f"import site; site.addsitedir({packages!r})\n")
    for command, module in (("moltbot", "moltbot"), ("ansible-playbook", "ansible.cli.playbook")):
        script = building / "bin" / command
        script.write_text(
            f"#!{venv}/bin/python\nimport runpy\nrunpy.run_module({module!r}, run_name='__main__')\n"
        )
        script.chmod(0o755)
    building.chmod(0o755)
    try:
        building.rename(venv)  # whole, or not at all: another session may be making the same one
    except OSError:
        shutil.rmtree(building)
    return python


class Sandbox(Env):
    """A MOLTBOT_HOME under /var/tmp laid out as the Ansible role lays it out, and the daemon and
    the CLI run as the daemon's user (the CLI without capabilities, as an admin's ``sudo -u``)."""

    users: Users
    daemons: list[DaemonProcess]
    credentials: Path  # as $CREDENTIALS_DIRECTORY: DISCORD_BOT_TOKEN
    settings: str  # moltbot.toml as made ([daemon] task_user): what write_tasks(settings=) starts from

    def cli_argv(self, *args: str) -> list[str]:
        return [*self.users.daemon.setpriv(), str(self.users.python), "-m", "moltbot", *args]

    def query(self, sql: str, *parameters: object) -> list[list[Any]]:
        """Rows of the database, read as the daemon's user (root would leave root's WAL files behind)."""
        code = (
            "import json, sqlite3, sys; rows = sqlite3.connect(sys.argv[1]).execute(sys.argv[2], "
            "json.loads(sys.argv[3])).fetchall(); print(json.dumps(rows))"
        )
        argv = [*self.users.daemon.setpriv(), str(self.users.python), "-c", code, str(self.home.db_path), sql,
                json.dumps(parameters)]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=True)
        rows: list[list[Any]] = json.loads(result.stdout)
        return rows

    def daemon_argv(self, capabilities: str = UNIT_CAPABILITIES) -> list[str]:
        return [
            *self.users.daemon.setpriv(capabilities),
            str(self.users.python),
            "-m",
            "tests.instant_retries",
            "daemon",
        ]

    def start(self, task_user: bool = True, **extra_env: str) -> DaemonProcess:
        """The daemon as its user, with the unit's capabilities when tasks run as the task user."""
        capabilities = UNIT_CAPABILITIES if task_user else ""
        python = [*self.users.daemon.setpriv(capabilities), str(self.users.python)]
        daemon = DaemonProcess(self, extra_env, python=python)
        self.daemons.append(daemon)
        return daemon


def lay_out(home: Home, users: Users, task_user: bool) -> None:
    """The role's layout: MOLTBOT_HOME, config/ and tasks/ root's; data/, logs/ and runs/ the daemon's.

    Without a task user (quick start), the daemon's user owns everything, as ``moltbot daemon`` run
    by hand makes it."""
    daemon = users.daemon
    for directory in (home.root, *home.folders, home.runs_dir):
        directory.mkdir(exist_ok=True)
    if not task_user:
        for path in (home.root, *home.root.rglob("*")):
            os.chown(path, daemon.uid, daemon.gid)
        return
    mine, group = (daemon.uid, daemon.gid), daemon.gid
    owners = {home.root: (0, 0, 0o755), home.config_dir: (0, group, 0o750), home.tasks_dir: (0, 0, 0o755),
              home.data_dir: (*mine, 0o700), home.logs_dir: (*mine, 0o700),
              home.runs_dir: (*mine, 0o711)}  # fmt: skip
    for path, (uid, gid, mode) in owners.items():
        os.chown(path, uid, gid)
        path.chmod(mode)


@contextmanager
def sandboxed(users: Users, task_user: bool = True) -> Iterator[Sandbox]:
    """A sandboxed home (``Sandbox``), removed after, with the daemons it started."""
    root = Path(tempfile.mkdtemp(prefix="moltbot-sandbox-", dir="/var/tmp"))
    root.chmod(0o755)  # made 0700: no other user could reach the home inside
    home = Home(root / "home")
    environment = Sandbox(home)
    environment.users, environment.daemons = users, []
    lay_out(home, users, task_user)
    # As systemd's LoadCredential= makes them: the service user's alone.
    environment.credentials = root / "credentials"
    environment.credentials.mkdir()
    (environment.credentials / "DISCORD_BOT_TOKEN").write_text(TOKEN)
    for path, mode in (
        (environment.credentials / "DISCORD_BOT_TOKEN", 0o400),
        (environment.credentials, 0o500),
    ):
        os.chown(path, users.daemon.uid, users.daemon.gid)
        path.chmod(mode)
    environment.settings = f'[daemon]\ntask_user = "{users.task.name}"\n' if task_user else ""
    environment.write_tasks(settings=environment.settings)
    try:
        yield environment
    finally:
        for daemon in environment.daemons:
            if daemon.process.poll() is None:
                daemon.kill()  # a failed test left it running
            daemon.log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sandbox(users: Users) -> Iterator[Callable[..., Sandbox]]:
    """Make a sandboxed home: ``sandbox(task_user=True)``; removed after the test."""
    with ExitStack() as stack:
        yield lambda task_user=True: stack.enter_context(sandboxed(users, task_user))
