"""The Ansible tree: syntax, the production lint profile, and a real apply of the moltbot role.

The real apply (tests/debian_target.py, the session fixture `converged` in conftest.py) builds a
minimal Debian root with debootstrap (cached between runs on one machine), converges the role into it
through Ansible's chroot connection from a wheelhouse built there (the target has no package index),
and converges again; the tests here check what it made, run moltbot inside it as the moltbot user,
and prove that the second apply changed nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.debian_target import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, BIN, REPO, SECRET, Converged, run

needs_ansible = pytest.mark.skipif(
    not ANSIBLE_PLAYBOOK.exists(), reason="ansible is not installed (pip install -e '.[test]')"
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


def _render_toml(tmp_path: Path, *variables: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    rendered = tmp_path / "moltbot.toml"
    extra = [arg for variable in variables for arg in ("-e", variable)]
    result = run(
        [BIN / "ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.template",
         "-a", f"src={ANSIBLE_DIR}/roles/moltbot/templates/moltbot.toml.j2 dest={rendered}",
         "-e", f"@{ANSIBLE_DIR}/roles/moltbot/defaults/main.yml", *extra,
         "-e", '{"moltbot_ollama": {}}', "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=tmp_path,
    )  # fmt: skip
    return result, rendered


@needs_ansible
def test_a_group_on_postgresql_gets_the_url_and_each_host_its_node_name(tmp_path: Path) -> None:
    url = "postgresql://moltbot@db.lan:5432/moltbot"
    result, rendered = _render_toml(tmp_path, f"moltbot_database_url={url}", "moltbot_node=nas-2")
    assert result.returncode == 0, result.stdout + result.stderr
    import tomllib

    daemon = tomllib.loads(rendered.read_text())["daemon"]
    assert (daemon["database"], daemon["node"]) == (url, "nas-2")
    result, rendered = _render_toml(tmp_path)  # the default: SQLite, no node written
    assert result.returncode == 0
    assert "database" not in rendered.read_text() and "node" not in rendered.read_text()


@needs_ansible
def test_the_role_refuses_a_database_url_with_a_password(tmp_path: Path) -> None:
    playbook = tmp_path / "refuse.yml"
    playbook.write_text(
        "- name: Refuse\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Configure\n      ansible.builtin.include_role:\n"
        f"        name: {ANSIBLE_DIR}/roles/moltbot\n        tasks_from: configure\n"
    )
    result = run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", playbook,
         "-e", "moltbot_database_url=postgresql://moltbot:hunter2@db.lan/moltbot",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "moltbot_database_url has a password in it" in result.stdout


# --- the real apply ----------------------------------------------------------------------------


def recap(output: str, host: str = "target") -> dict[str, int]:
    match = re.search(rf"^{host}\s*:\s*(.*)$", output, re.MULTILINE)
    assert match, output
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


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
def test_the_gateway_firewall_is_written_for_moltbot_and_loaded_at_boot(converged: Converged) -> None:
    rules = converged.path("/etc/signal-gateway/firewall.nft")
    assert mode_and_owner(rules) == ("0o644", 0, 0)
    text = rules.read_text()
    assert "ip daddr 127.0.0.1 tcp dport 8080 meta skuid != { root, moltbot } reject with tcp reset" in text
    assert 'oifname "br-signal-gw" ct state new drop' in text
    enabled = converged.path("/etc/systemd/system/sysinit.target.wants/signal-gateway-firewall.service")
    assert (
        enabled.is_symlink() and os.readlink(enabled) == "/etc/systemd/system/signal-gateway-firewall.service"
    )
    unit = converged.path(os.readlink(enabled)).read_text()
    assert "ExecStart=/usr/sbin/nft -f /etc/signal-gateway/firewall.nft" in unit and "Before=" in unit
    assert "docker.service" in unit.split("Before=")[1].splitlines()[0], "loaded before Docker starts"
    # The target's nft accepts it, its users resolved from the target's passwd (checked, not loaded:
    # in a network namespace of its own).
    check = subprocess.run(["unshare", "--net", "chroot", str(converged.root), "nft", "-c", "-f",
                            "/etc/signal-gateway/firewall.nft"], capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "SKIPPED the Docker daemon and the signal-api container" in converged.first.stdout


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
