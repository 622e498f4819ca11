"""The one way a task gains a privilege (ansible/roles/moltbot_privileged): a task that names the
privileged user may run exactly the listed commands as root, over SSH to this host, where its key can do
nothing else. A task that does not name it cannot: no new privileges (sudo refuses), and the key is not
its to read. The role is applied to this machine (CI runs as root); a real sshd listens on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.test_ansible import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, run
from tests.users import USER_HOMES, Sandbox, Users, sandboxed, users

__all__ = ["users"]
OPS = "mbtest-ops"
SUDOERS = Path("/etc/sudoers.d/mbtest-privileged")
ALLOWED = ["/usr/bin/id -u", "/usr/bin/true"]

pytestmark = pytest.mark.skipif(
    not (shutil.which("sudo") and Path("/usr/sbin/sshd").exists() and ANSIBLE_PLAYBOOK.exists()),
    reason="needs sudo, openssh-server and ansible (.ci/run installs them)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sshd(users: Users, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The role applied here for OPS, and an sshd on loopback for its key; both undone after."""
    port = free_port()
    work = tmp_path_factory.mktemp("privileged")
    variables = {
        "moltbot_privileged_commands": ALLOWED,
        "moltbot_privileged_user": OPS,
        "moltbot_privileged_home": str(USER_HOMES / OPS),
        "moltbot_privileged_ssh_port": port,
        "moltbot_privileged_packages": [],
        "moltbot_privileged_sudoers_file": str(SUDOERS),
        "moltbot_privileged_command_file": str(USER_HOMES / "libexec" / "mbtest-privileged"),
        "ansible_python_interpreter": sys.executable,
    }
    (work / "vars.json").write_text(json.dumps(variables))
    playbook = work / "privileged.yml"
    playbook.write_text(f"- name: Apply\n  hosts: all\n  gather_facts: false\n"
                        f"  roles: [{{role: {ANSIBLE_DIR}/roles/moltbot_privileged}}]\n")  # fmt: skip
    try:
        apply = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", playbook, "-e", f"@{work}/vars.json"]
        applied = run(apply, cwd=work)
        assert applied.returncode == 0, applied.stdout[-4000:] + applied.stderr[-2000:]
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        options = ["ListenAddress=127.0.0.1", "HostKey=/etc/ssh/ssh_host_ed25519_key", "UsePAM=no",
                   "AuthorizedKeysFile=.ssh/authorized_keys", "PidFile=none", f"AllowUsers={OPS}",
                   "PasswordAuthentication=no", "KbdInteractiveAuthentication=no"]  # fmt: skip
        argv = ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", str(port)]
        argv += [arg for option in options for arg in ("-o", option)]
        with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as server:
            try:
                wait_until(lambda: listening(port) or server.poll() is not None, what="sshd")
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                yield port
            finally:
                server.terminate()
                server.wait(10)
    finally:
        SUDOERS.unlink(missing_ok=True)  # no rule of the test outlives it


@pytest.fixture(scope="module")
def box(users: Users, sshd: int) -> Iterator[Sandbox]:
    ops_key = USER_HOMES / OPS / ".ssh" / "id_ed25519"
    with sandboxed(users) as sandbox:
        scripts = {
            "privileged": (OPS, "ssh moltbot-privileged /usr/bin/id -u"),
            "not-listed": (OPS, "ssh moltbot-privileged /usr/bin/id"),
            "a-shell": (OPS, "ssh moltbot-privileged 'sh -c id'"),
            "sudo-marked": (OPS, "sudo -n /usr/bin/id -u"),
            "sudo": (None, "sudo -n /usr/bin/id -u"),
            "borrow-the-key": (
                None,
                f"ssh -i {ops_key} -F {ops_key.parent}/config moltbot-privileged /usr/bin/id -u",
            ),
        }
        tasks: list[dict[str, Any]] = []
        for name, (user, body) in scripts.items():
            sandbox.script(f"{name}.sh", body + "\n")
            task = {"task_id": name, "script_path": f"{name}.sh", "schedule": "daily at 03:00"}
            tasks.append({**task, "user": user} if user else task)
        sandbox.write_tasks(*tasks)
        sandbox.start()
        yield sandbox


def result(box: Sandbox, task: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(box.cli("run", task, "--json").stdout)
    return value


def test_a_task_naming_the_privileged_user_runs_an_allowed_command_as_root(box: Sandbox) -> None:
    ran = result(box, "privileged")
    assert (ran["status"], ran["stdout"]) == ("success", "0\n"), ran


def test_it_cannot_run_a_command_that_is_not_listed(box: Sandbox) -> None:
    ran = result(box, "not-listed")
    assert ran["status"] == "failed" and "not an allowed command: /usr/bin/id" in ran["stderr"], ran


def test_its_key_opens_no_shell(box: Sandbox) -> None:
    ran = result(box, "a-shell")
    assert ran["status"] == "failed" and "not an allowed command" in ran["stderr"], ran


def test_even_it_cannot_use_sudo_inside_the_sandbox(box: Sandbox) -> None:
    ran = result(box, "sudo-marked")
    assert ran["status"] == "failed" and "no new privileges" in ran["stderr"], ran


def test_a_task_not_marked_cannot_use_sudo(box: Sandbox) -> None:
    ran = result(box, "sudo")
    assert ran["status"] == "failed" and "no new privileges" in ran["stderr"], ran


def test_a_task_not_marked_cannot_borrow_the_key(box: Sandbox) -> None:
    ran = result(box, "borrow-the-key")
    assert ran["status"] == "failed" and "Permission denied" in ran["stderr"], ran
    assert ran["stdout"] == ""


def test_the_sudo_rules_list_exactly_the_commands(sshd: int) -> None:
    rules = SUDOERS.read_text()
    assert f"{OPS} ALL=(root) NOPASSWD: /usr/bin/id -u, /usr/bin/true" in rules
    assert oct(SUDOERS.stat().st_mode & 0o777) == "0o440" and SUDOERS.stat().st_uid == 0
    assert os.path.exists(USER_HOMES / OPS / ".ssh" / "authorized_keys")
