"""Runs as the task user keep what runs promise: checkpoints across a shutdown and a crash, orphans
killed after a crash, a playbook's recap; and a daemon that could not keep tasks apart refuses to
start, as with a broken configuration (exit 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable

from moltbot.file_access import READ, SEARCH, WRITE
from tests.conftest import ROOT, Env, alive, dies_soon, wait_until
from tests.fake_agents import FakeOllama
from tests.posix_acl import grant_by_acl
from tests.users import Sandbox, sandbox, users

__all__ = ["sandbox", "users"]
Boxes = Callable[..., Sandbox]

COUNT = (
    'start=$(echo "${MOLTBOT_CHECKPOINT:-0}" | tr -dc 0-9)\n'
    "i=${start:-0}\n"
    'echo "start at $i"\n'
    "while [ $i -lt 8 ]; do\n"
    "  i=$((i+1))\n"
    '  moltbot checkpoint save "$i"\n'
    '  [ "$(moltbot checkpoint load)" = "$i" ] || exit 9\n'
    '  echo "item $i"\n'
    "  sleep 0.3\n"
    "done\n"
    "moltbot checkpoint clear\n"
)


def log_of(box: Sandbox, task: str, run_id: int) -> str:
    path = box.home.logs_dir / task / f"{run_id}.log"
    return path.read_text() if path.exists() else ""


def checkpoint(box: Sandbox, task: str) -> str | None:
    rows = box.query("SELECT data FROM checkpoint WHERE task_id = ?", task)
    return rows[0][0] if rows else None


def runs(box: Sandbox, task: str) -> list[list[object]]:
    where = "task_id = ? AND started_at IS NOT NULL ORDER BY id"
    return box.query(f"SELECT id, status, trigger, stdout_tail FROM run WHERE {where}", task)


def test_a_checkpoint_saved_as_the_task_user_survives_a_shutdown_and_the_run_resumes_from_it(
    sandbox: Boxes,
) -> None:
    box = sandbox()
    box.script("count.sh", COUNT)
    box.write_tasks({"task_id": "count", "script_path": "count.sh", "schedule": "in 1 seconds"})
    daemon = box.start()
    wait_until(lambda: "item 3" in log_of(box, "count", 1), what="some progress")
    assert checkpoint(box, "count") is None  # in the run's folder until the run ends: not the database's
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(20) == 0
    saved = int(checkpoint(box, "count") or 0)
    assert 3 <= saved < 8
    assert list(box.home.runs_dir.iterdir()) == []  # taken, and the folder gone

    box.start()
    wait_until(lambda: [run for run in runs(box, "count") if run[1] == "success"], what="the resumed run")
    (interrupted, resumed) = runs(box, "count")
    assert interrupted[1:3] == ["interrupted", "schedule"] and resumed[1:3] == ["success", "resume"]
    assert str(resumed[3]).startswith(f"start at {saved}\n")
    assert checkpoint(box, "count") is None  # cleared at the end


def test_the_bundled_python_checkpoint_demo_resumes_as_the_task_user(sandbox: Boxes) -> None:
    box = sandbox()
    demo = box.script("checkpoint-demo.py", (ROOT / "tasks" / "checkpoint-demo.py").read_text())
    box.write_tasks({"task_id": "demo", "script_path": demo.name, "schedule": "daily at 03:00",
                     "env": {"DEMO_ITEMS": "4", "DEMO_DELAY": "0"}})  # fmt: skip
    box.cli("checkpoint", "save", '{"next_item": 2}', "--task", "demo", check=True)
    box.start()
    result = json.loads(box.cli("run", "demo", "--json").stdout)
    assert (
        result["stdout"] == "resuming from checkpoint at item 2\nprocessed item 2\nprocessed item 3\n"
        "done: 2 items this run\n"
    ), result
    assert checkpoint(box, "demo") is None  # cleared, by the run's folder


def test_after_a_crash_the_task_users_orphans_are_killed_and_the_checkpoint_is_kept(sandbox: Boxes) -> None:
    box = sandbox()
    pids = box.users.task.home / "pids"
    box.script("hang.sh", f"moltbot checkpoint save 7\nsetsid sleep 300 &\necho $$ $! >{pids}\nsleep 300\n")
    box.write_tasks({"task_id": "hang", "script_path": "hang.sh", "schedule": "in 1 seconds"})
    daemon = box.start()
    wait_until(pids.exists, what="the run and its orphan")
    wait_until(lambda: len(pids.read_text().split()) == 2, what="both pids")
    script, orphan = map(int, pids.read_text().split())
    daemon.kill()
    assert alive(script) and alive(orphan)  # they survived their daemon (own session, another user)

    restarted = box.start()
    assert dies_soon(script) and dies_soon(orphan), restarted.output()
    assert checkpoint(box, "hang") == "7"
    assert runs(box, "hang")[0][1] == "interrupted"
    assert list(box.home.runs_dir.iterdir()) == []
    pids.unlink()


PLAYBOOK = """\
- name: Who runs this
  hosts: all
  gather_facts: false
  tasks:
    - name: Ask
      ansible.builtin.command: id -u
      register: who
      changed_when: false
    - name: Say
      ansible.builtin.debug:
        msg: "uid={{ who.stdout }}"
"""


def test_a_playbook_runs_as_the_task_user_and_its_recap_is_kept(sandbox: Boxes) -> None:
    box = sandbox()
    (box.home.tasks_dir / "who.yml").write_text(PLAYBOOK)
    inventory = f"localhost ansible_connection=local ansible_python_interpreter={box.users.python}\n"
    (box.home.tasks_dir / "hosts.ini").write_text(inventory)
    box.write_tasks({"task_id": "who", "kind": "playbook", "playbook": "who.yml", "inventory": "hosts.ini",
                     "schedule": "daily at 04:00", "timeout_seconds": 120})  # fmt: skip
    box.start()
    result = json.loads(box.cli("run", "who", "--json", timeout=180).stdout)
    assert result["status"] == "success", result
    assert f"uid={box.users.task.uid}" in result["stdout"]
    assert [(host["host"], host["ok"]) for host in result["hosts"]] == [("localhost", 2)], result
    assert list(box.home.runs_dir.iterdir()) == []


def test_an_llm_task_is_moltbots_own_action_and_runs_as_the_daemons_user(sandbox: Boxes) -> None:
    box = sandbox()
    ollama = FakeOllama(answer=lambda body: {"role": "assistant", "content": "all quiet"}).start()
    try:
        box.write_tasks({"task_id": "ask", "kind": "llm", "prompt": "ok?", "schedule": "daily at 03:00"},
                        settings=box.settings + f'\n[ollama]\nhost = "{ollama.url}"\n')  # fmt: skip
        box.start()
        result = json.loads(box.cli("run", "ask", "--json").stdout)
        assert (result["status"], result["stdout"]) == ("success", "all quiet\n"), result
    finally:
        ollama.stop()


def refused(box: Sandbox, capabilities: str = "setuid,setgid,kill", **extra_env: str) -> str:
    """The daemon's output when it refuses to start (exit 3)."""
    started = subprocess.run(box.daemon_argv(capabilities), cwd=ROOT, env={**box.environ, **extra_env},
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert started.returncode == 3, started.stdout + started.stderr
    return started.stderr


def test_a_daemon_without_the_capabilities_to_switch_users_refuses_to_start(sandbox: Boxes) -> None:
    error = refused(sandbox(), capabilities="")
    assert "[daemon] task_user is set, but the daemon lacks CAP_SETUID, CAP_SETGID, CAP_KILL" in error


def test_a_daemon_refuses_scripts_the_task_user_could_change(sandbox: Boxes) -> None:
    box = sandbox()
    script = box.script("job.sh", "true\n")
    os.chown(script, box.users.task.uid, 0)
    box.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    assert f"{script} can be changed by the task user {box.users.task.name}" in refused(box)


def test_a_daemon_refuses_a_configuration_an_acl_lets_the_task_user_change(sandbox: Boxes) -> None:
    # `ls -l` shows root's 0755 folder; `setfacl -m u:moltbot-task:rwx config` gave it away anyway.
    box = sandbox()
    grant_by_acl(box.home.config_dir, box.users.task.uid, WRITE | SEARCH | READ)
    assert f"{box.home.config_dir} can be changed by the task user" in refused(box)


def test_a_daemon_refuses_a_home_the_task_user_could_rename_things_in(sandbox: Boxes) -> None:
    box = sandbox()
    box.home.root.chmod(0o777)
    assert f"{box.home.root} can be changed by the task user" in refused(box)


def test_a_daemon_refuses_a_secret_file_the_task_user_could_read(sandbox: Boxes) -> None:
    box = sandbox()
    secret = box.home.root.parent / "letta-key"
    secret.write_text("key\n")
    secret.chmod(0o644)
    error = refused(box, LETTA_API_KEY_FILE=str(secret))
    assert f"{secret} (a secret) can be read by the task user" in error


# --- the configuration (no root needed) ---------------------------------------------------------


def check(env: Env, *problems: str) -> None:
    result = env.cli("check")
    assert result.returncode == 3, result.stdout + result.stderr
    for problem in problems:
        assert problem in result.stderr, result.stderr


def test_a_task_may_name_a_user_only_with_a_task_user(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00", "user": "nobody"}
    )
    check(env, "tasks[0].user (job): needs [daemon] task_user in moltbot.toml")


def test_tasks_may_not_run_as_root(env: Env) -> None:
    env.write_tasks(settings='[daemon]\ntask_user = "root"\n')
    check(env, "daemon.task_user: tasks may not run as root")


def test_a_tasks_user_must_exist_and_not_be_root_and_llm_tasks_name_none(env: Env) -> None:
    env.script("job.sh", "true\n")
    daily = {"script_path": "job.sh", "schedule": "daily at 03:00"}
    env.write_tasks(
        {"task_id": "root", **daily, "user": "root"},
        {"task_id": "ghost", **daily, "user": "no-such-user-mb"},
        {"task_id": "ask", "kind": "llm", "prompt": "?", "schedule": "daily at 03:00", "user": "nobody"},
        settings='[daemon]\ntask_user = "nobody"\n',
    )
    check(
        env,
        "tasks[0].user (root): tasks may not run as root",
        "tasks[1].user (ghost): no user 'no-such-user-mb' on this host",
        "tasks[2].user (ask): an llm task is moltbot's own action",
    )


def test_without_the_daemon_a_run_by_hand_says_it_cannot_switch_users(sandbox: Boxes) -> None:
    """``moltbot run`` with no daemon runs in the foreground, as whoever typed it: without the
    unit's capabilities it cannot start the task as the task user, and says so."""
    box = sandbox()
    box.script("job.sh", "true\n")
    box.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    result = json.loads(box.cli("run", "job", "--json").stdout)
    assert result["status"] == "failed"
    assert f"as {box.users.task.name}: Operation not permitted" in result["message"], result


# --- doctor: what keeps tasks out, checked as the daemon checks it ------------------------------


def test_doctor_reports_the_task_user_and_a_deployments_read_only_configuration(sandbox: Boxes) -> None:
    box = sandbox()  # config/ and tasks/ root's, read-only to the daemon's user, as the role makes them
    checks = {check["name"]: check for check in json.loads(box.cli("doctor", "--json").stdout)["checks"]}
    assert checks["home"]["ok"] is True, checks["home"]
    assert checks["home"]["detail"].endswith("config and tasks readable, data and logs writable")  # type: ignore[union-attr]
    assert checks["task user"]["ok"] is True, checks["task user"]
    assert f"tasks run as {box.users.task.name}:" in checks["task user"]["detail"]  # type: ignore[operator]


def test_doctor_fails_a_task_user_an_acl_lets_change_the_configuration(sandbox: Boxes) -> None:
    box = sandbox()
    grant_by_acl(box.home.tasks_dir, box.users.task.uid, WRITE | SEARCH | READ)
    result = box.cli("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1 and checks["task user"]["ok"] is False
    assert (
        checks["task user"]["detail"] == f"{box.home.tasks_dir} can be changed by the task user mbtest-task"
    )
    assert "drop ACLs that grant it" in checks["task user"]["fix"]


def test_doctor_warns_when_tasks_run_as_the_daemons_own_user(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    result = subprocess.run(
        env.cli_argv("doctor", "--json"), env={**env.environ, "LETTA_API_KEY": "plain"}, capture_output=True
    )
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    check = checks["task user"]
    assert (check["ok"], check["required"]) == (False, False)  # a quick start is not broken by it
    assert check["detail"] == (
        "not set: tasks run as moltbot's own user, so they can read its database and catch LETTA_API_KEY as "
        "moltbot hands it on"
    )
    assert "[daemon] task_user" in check["fix"]
