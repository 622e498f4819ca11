"""The Ansible tree: syntax, the production lint profile, and a real apply of the moltbot role.

The real apply builds a minimal Debian root with debootstrap (cached between runs on one machine),
converges the role into it through Ansible's chroot connection from a wheelhouse built here (the
target has no package index), checks what it made, runs moltbot inside it as the moltbot user, and
converges again to prove that nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPORT

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
# What the role needs on a target besides the base system (apt: python3-apt; pip: packaging).
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-packaging,python3-apt,systemd"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECRET = "discord-token-that-must-never-be-printed"

needs_ansible = pytest.mark.skipif(
    not ANSIBLE_PLAYBOOK.exists(), reason="ansible is not installed (pip install -e '.[test]')"
)


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip


def run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [str(arg) for arg in argv], capture_output=True, text=True, env=ansible_env(), **kwargs
    )


@needs_ansible
@pytest.mark.parametrize("playbook", ["site.yml", "tests/converge.yml"])
def test_the_playbooks_pass_the_syntax_check(playbook: str) -> None:
    result = run([ANSIBLE_PLAYBOOK, "--syntax-check", playbook], cwd=ANSIBLE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_ansible
def test_the_tree_passes_ansible_lint_production_profile() -> None:
    result = run([BIN / "ansible-lint", "--offline", "--profile", "production", "--nocolor"], cwd=ANSIBLE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


@needs_ansible
def test_the_shipped_unit_is_the_role_template_with_its_defaults(tmp_path: Path) -> None:
    rendered = tmp_path / "moltbot.service"
    result = run(
        [BIN / "ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.template",
         "-a", f"src={ANSIBLE_DIR}/roles/moltbot/templates/moltbot.service.j2 dest={rendered}",
         "-e", f"@{ANSIBLE_DIR}/roles/moltbot/defaults/main.yml",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert rendered.read_text() == (REPO / "deploy" / "moltbot.service").read_text()


# --- the real apply ----------------------------------------------------------------------------


@dataclass
class Converged:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def ids(self, name: str) -> tuple[int, int]:
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"no user {name} in the target's /etc/passwd")


def recap(output: str, host: str = "target") -> dict[str, int]:
    match = re.search(rf"^{host}\s*:\s*(.*)$", output, re.MULTILINE)
    assert match, output
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def debootstrap_root(destination: Path, timings: dict[str, float]) -> None:
    """A fresh minimal Debian root; debootstrap runs once per package list, then it is a tar copy."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {DEBOOTSTRAP_PACKAGES}".encode()).hexdigest()[:12]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moltbot-tests"
    cached = cache_dir / f"debootstrap-{SUITE}-{key}.tar"
    started = time.monotonic()
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        building = destination.with_name("debootstrap-building")
        argv = ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", SUITE, str(building)]
        result = subprocess.run([*argv, MIRROR], capture_output=True, text=True)
        assert result.returncode == 0, (
            f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        partial = cached.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(building), "-cf", str(partial), "."], check=True)
        partial.rename(cached)  # only a complete archive is ever reused
        shutil.rmtree(building)
        timings["debootstrap (no cache)"] = time.monotonic() - started
        started = time.monotonic()
    destination.mkdir()
    subprocess.run(["tar", "-C", str(destination), "-xf", str(cached)], check=True)
    timings["unpack cached root"] = time.monotonic() - started


@pytest.fixture(scope="module")
def converged(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Converged]:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible is not installed (pip install -e '.[test]')")
    if os.geteuid() != 0:
        pytest.skip("the chroot apply needs root (debootstrap and chroot); .ci/run runs as root")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap; .ci/run installs it)")
    work = tmp_path_factory.mktemp("ansible-apply")
    timings: dict[str, float] = {}
    root = work / "root"
    debootstrap_root(root, timings)
    try:
        started = time.monotonic()
        wheelhouse = work / "wheelhouse"
        build = subprocess.run(
            [str(ANSIBLE_DIR / "build-wheelhouse.sh")], capture_output=True, text=True,
            env={**os.environ, "WHEELHOUSE": str(wheelhouse), "PYTHON": sys.executable},
        )  # fmt: skip
        assert build.returncode == 0, build.stdout + build.stderr
        timings["wheelhouse"] = time.monotonic() - started

        inventory = work / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {"target": {
            "ansible_connection": "community.general.chroot", "ansible_host": str(root),
            "ansible_python_interpreter": "/usr/bin/python3"}}}}))  # fmt: skip
        variables = work / "vars.json"
        variables.write_text(json.dumps({
            "moltbot_checkout": str(REPO), "moltbot_wheelhouse": str(wheelhouse),
            "moltbot_apt_update_cache": False,  # the target has no package index: wheels and debootstrap only
            "moltbot_daemon": {"timezone": "Europe/Berlin", "workers": 2},
            "moltbot_signal": {"url": "http://127.0.0.1:8080", "number": "+4915100000000",
                               "allowed": ["+4915100000001"], "linked_device": False},
            "moltbot_discord_bot_token": SECRET,
        }))  # fmt: skip
        variables.chmod(0o600)

        def converge(label: str) -> subprocess.CompletedProcess[str]:
            started = time.monotonic()
            result = run([ANSIBLE_PLAYBOOK, "-i", inventory, "-e", f"@{variables}", "tests/converge.yml"],
                         cwd=ANSIBLE_DIR)  # fmt: skip
            timings[label] = time.monotonic() - started
            assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
            return result

        first = converge("converge")
        second = converge("re-converge")
        report = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
        request.config.stash.setdefault(REPORT, []).append(f"ansible chroot apply: {report}")
        yield Converged(root, first, second, timings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mode_and_owner(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return oct(stat.S_IMODE(info.st_mode)), info.st_uid, info.st_gid


@pytest.mark.slow
def test_the_role_makes_the_user_venv_home_config_and_enabled_unit(converged: Converged) -> None:
    uid, gid = converged.ids("moltbot")
    assert uid < 1000, "a system user"
    passwd = next(
        line for line in converged.path("/etc/passwd").read_text().splitlines() if line.startswith("moltbot:")
    )
    assert passwd.endswith(":/var/lib/moltbot:/usr/sbin/nologin")
    assert converged.path("/opt/moltbot/venv/bin/moltbot").is_file()
    plugin = "opt/moltbot/venv/lib/python3*/site-packages/moltbot/ansible_callbacks/moltbot_recap.py"
    assert list(converged.root.glob(plugin)), "playbook tasks' callback plugin ships in the wheel"
    assert mode_and_owner(converged.path("/opt/moltbot/venv"))[1:] == (0, 0), "code owned by root"
    home = converged.path("/var/lib/moltbot")
    assert mode_and_owner(home) == ("0o755", 0, 0), "nobody but root may rename what is in it"
    assert mode_and_owner(home / "config") == ("0o750", 0, gid)
    assert mode_and_owner(home / "tasks") == ("0o755", 0, 0)
    assert mode_and_owner(home / "data") == ("0o700", uid, gid)
    assert mode_and_owner(home / "logs") == ("0o700", uid, gid)
    assert mode_and_owner(home / "runs") == ("0o711", uid, gid)
    assert mode_and_owner(home / "config" / "moltbot.toml") == ("0o640", 0, gid)
    assert mode_and_owner(home / "config" / "tasks.json") == ("0o640", 0, gid)
    assert mode_and_owner(home / "tasks" / "disk-usage.sh") == ("0o755", 0, 0)
    task_uid, task_gid = converged.ids("moltbot-task")
    assert task_uid < 1000 and task_gid != gid, "a system user of its own, not in the moltbot group"
    assert "moltbot-task" not in next(
        line for line in converged.path("/etc/group").read_text().splitlines() if line.startswith("moltbot:")
    )
    assert mode_and_owner(converged.path("/var/lib/moltbot-task")) == ("0o700", task_uid, task_gid)
    toml = (home / "config" / "moltbot.toml").read_text()
    assert '[daemon]\ntimezone = "Europe/Berlin"\nworkers = 2\ntask_user = "moltbot-task"\n' in toml
    assert 'allowed = ["+4915100000001"]' in toml and "linked_device = false" in toml
    bundled = json.loads((REPO / "tasks" / "tasks.json").read_text())
    assert json.loads((home / "config" / "tasks.json").read_text()) == bundled

    unit = converged.path("/etc/systemd/system/moltbot.service")
    assert unit.read_text() == (REPO / "deploy" / "moltbot.service").read_text()
    enabled = converged.path("/etc/systemd/system/multi-user.target.wants/moltbot.service")
    assert enabled.is_symlink() and os.readlink(enabled) == "/etc/systemd/system/moltbot.service"


@pytest.mark.slow
def test_the_secrets_are_root_only_credentials_and_never_printed(converged: Converged) -> None:
    credentials = converged.path("/etc/moltbot/credentials")
    assert mode_and_owner(credentials) == ("0o700", 0, 0)
    assert mode_and_owner(credentials / "DISCORD_BOT_TOKEN") == ("0o600", 0, 0)
    assert (credentials / "DISCORD_BOT_TOKEN").read_text() == SECRET
    assert (credentials / "LETTA_API_KEY").read_text() == "", "an unset one is empty: Letta is off"
    secrets = converged.path("/etc/moltbot/secrets.env")
    assert mode_and_owner(secrets) == ("0o600", 0, 0)
    assert SECRET not in secrets.read_text(), "the token is a credential, not a variable"
    for result in (converged.first, converged.second):
        assert SECRET not in result.stdout + result.stderr
    assert SECRET not in converged.path("/etc/systemd/system/moltbot.service").read_text()


@pytest.mark.slow
def test_moltbot_runs_inside_the_target_as_its_user(converged: Converged) -> None:
    uid, gid = converged.ids("moltbot")

    def moltbot(*args: str, capabilities: str = "") -> subprocess.CompletedProcess[str]:
        grant = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
        if capabilities:
            plus = ",".join(f"+{cap}" for cap in capabilities.split(","))
            grant = [f"--inh-caps={plus}", f"--ambient-caps={plus}", f"--bounding-set=-all,{plus}"]
        return subprocess.run(
            ["chroot", str(converged.root), "setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups",
             *grant, "--no-new-privs", "--", "/usr/bin/env", "-i", "MOLTBOT_HOME=/var/lib/moltbot",
             "/opt/moltbot/venv/bin/moltbot", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    check = moltbot("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 tasks OK" in check.stdout
    status = moltbot("status")  # creates the database in data/, which only the daemon's user may write
    assert status.returncode == 0, status.stdout + status.stderr
    # "daily at 03:30" in the toml's zone Europe/Berlin, shown in that zone (not the chroot's UTC): the
    # toml took effect
    assert re.search(r"^backup .* 03:30:00 ", status.stdout, re.MULTILINE), status.stdout
    assert "(times in Europe/Berlin)" in status.stdout
    assert converged.path("/var/lib/moltbot/data/moltbot.db").stat().st_uid == uid
    # A task runs in the deployed layout, as the task user: the foreground run started with the
    # capabilities the unit grants the daemon (without them it could not switch users).
    backup = moltbot("run", "backup", "--json", capabilities="setuid,setgid,kill")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert json.loads(backup.stdout)["status"] == "success", backup.stdout
    assert "/var/lib/moltbot/tasks/backup-dry-run.sh" in backup.stdout
    whoami = subprocess.run(
        ["chroot", str(converged.root), "id", "-u", "moltbot-task"], capture_output=True, text=True
    )
    assert whoami.returncode == 0, whoami.stderr


@pytest.mark.slow
def test_a_second_apply_changes_nothing(converged: Converged) -> None:
    assert recap(converged.first.stdout)["changed"] > 0
    assert recap(converged.second.stdout)["changed"] == 0, converged.second.stdout[-6000:]
    assert recap(converged.second.stdout)["failed"] == 0


@pytest.mark.slow
def test_steps_that_need_a_running_systemd_say_they_were_skipped(converged: Converged) -> None:
    for result in (converged.first, converged.second):
        assert "SKIPPED starting moltbot: systemd is not running on this host" in result.stdout
        assert re.search(
            r"TASK \[moltbot : Start moltbot\].*?\nskipping: \[target\]", result.stdout, re.DOTALL
        )


# --- roles applied to this machine (connection local), against fakes on 127.0.0.1 -------------


def apply_role_here(
    role: str, tmp_path: Path, variables: dict[str, str], post_tasks: str = ""
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / f"{role}.yml"
    playbook.write_text(
        f"- name: Apply {role}\n  hosts: all\n  gather_facts: false\n"
        f"  roles: [{{role: {ANSIBLE_DIR}/roles/{role}}}]\n{post_tasks}"
    )
    extra = [arg for name, value in variables.items() for arg in ("-e", f"{name}={value}")]
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", playbook, *extra]
    return run([*argv, "-e", f"ansible_python_interpreter={sys.executable}"], cwd=tmp_path)


@needs_ansible
@pytest.mark.parametrize(("pulled", "passes"), [(["llama3.2:latest"], True), (["qwen2.5:7b"], False)])
def test_ollama_client_checks_the_model_and_publishes_the_settings(
    tmp_path: Path, pulled: list[str], passes: bool
) -> None:
    from tests.fake_agents import FakeOllama

    keep_settings = (
        "  post_tasks:\n    - name: Keep the settings\n      ansible.builtin.copy:\n"
        "        content: '{{ ollama_client_settings | to_json }}'\n"
        f"        dest: {tmp_path}/settings.json\n        mode: '0600'\n"
    )
    ollama = FakeOllama(models=pulled).start()
    try:
        variables = {"ollama_client_host": ollama.url, "ollama_client_model": "llama3.2",
                     "ollama_client_check_model": "true"}  # fmt: skip
        result = apply_role_here("ollama_client", tmp_path, variables, keep_settings)
    finally:
        ollama.stop()
    output = result.stdout + result.stderr
    if passes:
        assert result.returncode == 0, output
        expected = {"host": ollama.url, "model": "llama3.2", "timeout_seconds": 120}
        assert json.loads((tmp_path / "settings.json").read_text()) == expected
    else:
        assert result.returncode != 0
        assert "has no model llama3.2 (it has: qwen2.5:7b)" in output
        assert "Fix: run `ollama pull llama3.2` on that server." in output


@needs_ansible
def test_signal_gateway_refuses_to_publish_beyond_loopback(tmp_path: Path) -> None:
    result = apply_role_here("signal_gateway", tmp_path, {"signal_gateway_bind_address": "0.0.0.0"})
    assert result.returncode != 0
    assert "signal_gateway_bind_address is 0.0.0.0: the gateway has no authentication" in result.stdout
    assert recap(result.stdout, "localhost")["changed"] == 0, "refused before any change"
