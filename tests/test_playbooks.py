"""Playbook tasks: real ansible-playbook runs against local hosts (connection: local) in a temp home.

Three inventory hosts are this machine over the local connection; a fourth points ssh at a closed
port on 127.0.0.1, so it is really unreachable. Nothing of moltbot or Ansible is mocked.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handlers import format as fmt
from moltbot import store
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, bot, replies, say

__all__ = ["bot"]  # the Signal fixture, used here too (gateway: conftest.py)

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible is not installed")

PLAYBOOK = """\
- name: Patch the machines
  hosts: all
  gather_facts: false
  tasks:
    - name: Look around
      ansible.builtin.ping:
    - name: Apply updates
      ansible.builtin.command: "true"
      changed_when: inventory_hostname == 'web2'
    - name: Check the disk
      ansible.builtin.fail:
        msg: "disk full on {{ inventory_hostname }}"
      when: inventory_hostname in (fail_hosts | default([]))
    - name: Say hello
      ansible.builtin.debug:
        msg: "hello from {{ inventory_hostname }}"
      tags: [hello]
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the with ends


def patch_all(env: Env, unreachable: bool = False, **fields: Any) -> dict[str, Any]:
    """A playbook task `patch-all` over web1, web2, db1 (and nas, unreachable, when asked)."""
    (env.home.tasks_dir / "patch.yml").write_text(PLAYBOOK)
    lines = ["[servers]", "web1", "web2", "db1"]
    if unreachable:
        lines.append(
            f"nas ansible_connection=ssh ansible_host=127.0.0.1 ansible_port={closed_port()} "
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o ConnectTimeout=5'"
        )
    lines += ["[servers:vars]", "ansible_connection=local", f"ansible_python_interpreter={sys.executable}"]
    (env.home.tasks_dir / "hosts.ini").write_text("\n".join(lines) + "\n")
    return {"task_id": "patch-all", "kind": "playbook", "playbook": "patch.yml", "inventory": "hosts.ini",
            "schedule": "daily at 04:00", "timeout_seconds": 120, **fields}  # fmt: skip


def run_now(env: Env, task: dict[str, Any]) -> tuple[dict[str, Any], store.Run]:
    env.write_tasks(task)
    result = json.loads(env.cli("run", "patch-all", "--json", timeout=180).stdout)
    env.db()
    run = store.get_run(result["run_id"])
    assert run is not None
    return result, run


def test_a_playbook_run_records_each_hosts_recap_and_reads_as_a_host_summary(env: Env) -> None:
    result, run = run_now(env, patch_all(env))
    assert result["success"] and result["exit_code"] == 0, result
    assert [(h["host"], h["ok"], h["changed"], h["failed"], h["skipped"]) for h in result["hosts"]] == [
        ("db1", 3, 0, 0, 1), ("web1", 3, 0, 0, 1), ("web2", 3, 1, 0, 1)
    ]  # fmt: skip
    assert "PLAY RECAP" in result["stdout"], "ansible's own output is the run's output"
    text = fmt.finished_run(run)
    assert text.startswith(f"patch-all ✅ 3 hosts: 2 ok, 1 changed (run {run.id}, ")
    assert text.splitlines()[1:] == ["✓ db1 ok", "✓ web1 ok", "✓ web2 changed (1)"]


def test_failed_and_unreachable_hosts_fail_the_run_and_say_why(env: Env) -> None:
    task = patch_all(env, unreachable=True, extra_vars={"fail_hosts": ["db1"]})
    result, run = run_now(env, task)
    assert not result["success"] and result["exit_code"] in (2, 4), result
    hosts = {h["host"]: h for h in result["hosts"]}
    assert hosts["db1"]["failed"] == 1 and hosts["nas"]["unreachable"] == 1
    text = fmt.finished_run(run)
    assert text.startswith("patch-all ❌ 4 hosts: 1 ok, 1 changed, 1 failed, 1 unreachable (run ")
    assert "✗ db1 failed: Check the disk: disk full on db1" in text
    assert "⚠ nas unreachable: unreachable at Look around: " in text
    # extra_vars reach ansible in a file, never on the command line
    assert '"fail_hosts"' not in result["stdout"] and "--extra-vars @" in result["stdout"]


def test_limit_tags_and_check_mode_reach_ansible_playbook(env: Env) -> None:
    result, _run = run_now(env, patch_all(env, limit="web*", tags=["hello"], check_mode=True))
    assert result["success"], result
    assert "--limit web* --tags hello" in result["stdout"] and "--check" in result["stdout"]
    assert [h["host"] for h in result["hosts"]] == ["web1", "web2"]
    assert "hello from web1" in result["stdout"] and "Apply updates" not in result["stdout"]


def test_a_broken_playbook_task_is_refused_naming_the_field(env: Env) -> None:
    task = patch_all(env)
    env.write_tasks(
        {**task, "playbook": "missing.yml"},
        {**task, "task_id": "b", "inventory": "nowhere.ini", "tags": [1]},
        {**task, "task_id": "c", "script_path": "x.sh", "check_mode": "yes"},
        {**task, "task_id": "d", "inventory": "web1,web2", "extra_vars": ["x"]},
    )
    result = env.cli("check")
    assert result.returncode != 0
    errors = result.stderr
    assert "tasks[0].playbook (patch-all): playbook not found: " in errors and "missing.yml" in errors
    assert "tasks[1].inventory (b): inventory not found: " in errors
    assert "tasks[1].tags (b): expected a list of tag names" in errors
    assert "tasks[2].script_path (c): a playbook task has no script_path" in errors
    assert "tasks[2].check_mode (c): expected bool" in errors
    assert "tasks[3].extra_vars (d): expected dict" in errors
    assert "tasks[3].inventory" not in errors, "an inline host list is not a path"


def test_without_ansible_the_action_fails_with_the_fix(env: Env) -> None:
    env.write_tasks(patch_all(env))
    env.cli("reload", check=True)  # no daemon: syncs the store, where the action reads its task
    environ = {**env.environ, "PATH": "/usr/bin:/bin"}  # no ansible-playbook on it (the venv's bin is not)
    result = subprocess.run(
        [sys.executable, "-m", "moltbot", "playbook-action", "patch-all"],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "ansible-playbook not found on PATH: install Ansible" in result.stderr


def test_run_from_signal_answers_with_the_per_host_summary(
    env: Env, gateway: FakeGateway, bot: Callable[..., DaemonProcess]
) -> None:
    bot(patch_all(env))
    say(gateway, "run:patch-all")
    wait_until(
        lambda: any(t.startswith("patch-all ✅") for t in gateway.texts_to(OWNER)), timeout=120,
        what="the playbook's result",
    )  # fmt: skip
    texts = replies(gateway, 2)
    assert texts[0].startswith("▶ patch-all started (run ")
    (summary,) = [t for t in texts if t.startswith("patch-all ✅")]
    assert summary.startswith("patch-all ✅ 3 hosts: 2 ok, 1 changed (run ")
    assert summary.endswith("✓ db1 ok\n✓ web1 ok\n✓ web2 changed (1)")


def test_doctor_finds_ansible_playbook_for_playbook_tasks(env: Env) -> None:
    env.write_tasks(patch_all(env))
    report = json.loads(env.cli("doctor", "--json").stdout)
    (ansible,) = [check for check in report["checks"] if check["name"] == "ansible"]
    assert ansible["ok"] and ansible["detail"] == f"playbook tasks run {ANSIBLE_PLAYBOOK}"


def test_a_hung_playbook_times_out_and_leaves_no_process_behind(env: Env) -> None:
    task = patch_all(env, timeout_seconds=4)
    hang = "    - name: Hang\n      ansible.builtin.command: sh -c 'sleep 300; echo moltbot-hang-marker'\n"
    (env.home.tasks_dir / "patch.yml").write_text(PLAYBOOK + hang)
    result, run = run_now(env, task)
    assert result["status"] == "timeout", result
    assert run.recap is None and fmt.finished_run(run).startswith("❌ patch-all timed out after ")
    leftovers = subprocess.run(["pgrep", "-f", "moltbot-hang-marker"], capture_output=True, text=True)
    assert leftovers.stdout == "", "the run's whole process group is gone"


def test_tasks_lists_what_a_playbook_task_runs(env: Env) -> None:
    env.write_tasks(patch_all(env, limit="web*"))
    listing = env.cli("tasks", check=True).stdout
    assert listing.rstrip().endswith("runs ansible-playbook -i hosts.ini patch.yml"), listing
