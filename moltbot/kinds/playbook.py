"""``playbook`` tasks: a run of ``ansible-playbook`` whose per-host recap is kept with the run.

The run is ``moltbot playbook-action TASK`` (timeouts, retries, the log and
alerts are the core's, unchanged). The action runs ansible-playbook as its
child, output straight into the run's log, with a small callback plugin
(``moltbot/ansible_callbacks/moltbot_recap.py``) that writes the recap to a
file. The action stores it on the run before it exits, that is before the
daemon records the run's end, so the reply queued by that end can show it.
ansible-playbook's exit code is the run's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moltbot.config.reader import TaskReader
from moltbot.config.spec import under_tasks
from moltbot.file_modes import task_umask
from moltbot.kinds.base import ActionContext, TaskKind, read_user

__all__ = ["PLAYBOOK", "PlaybookError", "command_line", "find_ansible_playbook", "is_host_list"]

CALLBACK_DIR = Path(__file__).resolve().parent.parent / "ansible_callbacks"
RECAP_FILE_ENV = "MOLTBOT_RECAP_FILE"


class PlaybookError(Exception):
    """The playbook could not be started (the run fails with this reason)."""


class PlaybookKind(TaskKind):
    name = "playbook"
    fields = ("playbook", "inventory", "limit", "tags", "extra_vars", "check_mode", "user")
    as_task_user = True  # a playbook is the owner's code (its local steps, lookups and filters run here)

    def read(self, reader: TaskReader) -> None:
        for name in ("playbook", "inventory"):
            value = reader.get(name, (str,), "", required=True)
            if value and not (name == "inventory" and is_host_list(value, reader.tasks_dir)):
                reader.check_path(name, value, executable=False)
        reader.get("limit", (str,), "")
        tags = reader.get("tags", (str, list), "")
        if isinstance(tags, list) and not all(isinstance(tag, str) and tag for tag in tags):
            reader.problem("tags", "expected a list of tag names")
        reader.get("extra_vars", (dict,), {})
        reader.get("check_mode", (bool,), False)
        read_user(reader)
        why = "a playbook task has no {}: use playbook, inventory, limit, tags, extra_vars"
        for name in ("script_path", "args"):
            reader.refuse((name,), why.format(name))

    def describe(self, definition: Mapping[str, Any]) -> str:
        return f"ansible-playbook -i {definition.get('inventory')} {definition.get('playbook')}"

    def act(self, context: ActionContext, definition: Mapping[str, Any]) -> int:
        try:
            code, recap = run(definition, context.home.tasks_dir, os.environ)
        except PlaybookError as exc:
            print(f"moltbot: {exc}", file=sys.stderr)
            return 1
        run_id = os.environ.get("MOLTBOT_RUN_ID", "")
        if recap is not None and run_id.isdigit():
            context.set_run_recap(int(run_id), recap)
        return code


PLAYBOOK = PlaybookKind()


def is_host_list(inventory: str, tasks_dir: Path) -> bool:
    """Ansible's inline inventory (``host1,host2``, ``localhost,``): a comma, and no such path."""
    return "," in inventory and not under_tasks(inventory, tasks_dir).exists()


def command_line(
    task: Mapping[str, Any], tasks_dir: Path, ansible_playbook: str, vars_file: Path | None
) -> list[str]:
    """The ansible-playbook command line for a task's fields (validated by ``read``)."""
    inventory = str(task["inventory"])
    argv = [
        ansible_playbook,
        "-i",
        inventory if is_host_list(inventory, tasks_dir) else str(under_tasks(inventory, tasks_dir)),
    ]
    if task.get("limit"):
        argv += ["--limit", str(task["limit"])]
    tags = task.get("tags")
    if tags:
        argv += ["--tags", tags if isinstance(tags, str) else ",".join(tags)]
    if vars_file is not None:
        argv += ["--extra-vars", f"@{vars_file}"]  # a file: the values never show up in ps
    if task.get("check_mode"):
        argv += ["--check"]
    return [*argv, str(under_tasks(str(task["playbook"]), tasks_dir))]


def find_ansible_playbook(environ: Mapping[str, str]) -> str:
    import shutil

    found = shutil.which("ansible-playbook", path=environ.get("PATH"))
    if found is None:
        raise PlaybookError(
            "ansible-playbook not found on PATH: install Ansible into moltbot's venv "
            "(pip install ansible-core) or from Debian (apt install ansible-core)"
        )
    return found


def run(task: Mapping[str, Any], tasks_dir: Path, environ: Mapping[str, str]) -> tuple[int, str | None]:
    """Run the task's playbook (output to our stdout/stderr); its exit code and the recap JSON."""
    # Here, not at the top: every daemon loads this module, only a playbook's run needs these.
    import json
    import subprocess
    import tempfile

    ansible_playbook = find_ansible_playbook(environ)
    with tempfile.TemporaryDirectory(prefix="moltbot-playbook-") as scratch:  # 0700
        recap_file = Path(scratch) / "recap.json"
        vars_file = None
        if task.get("extra_vars"):
            vars_file = Path(scratch) / "extra-vars.json"
            vars_file.write_text(json.dumps(task["extra_vars"]))
        env = {
            **environ,
            RECAP_FILE_ENV: str(recap_file),
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(
                filter(None, [str(CALLBACK_DIR), environ.get("ANSIBLE_CALLBACK_PLUGINS")])
            ),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join(
                filter(None, ["moltbot_recap", environ.get("ANSIBLE_CALLBACKS_ENABLED")])
            ),
            "ANSIBLE_NOCOLOR": "1",  # the log and the chat get plain text
            "ANSIBLE_RETRY_FILES_ENABLED": "0",  # no .retry files next to the playbook
        }
        argv = command_line(task, tasks_dir, ansible_playbook, vars_file)
        print("$ " + " ".join(argv), flush=True)
        # Our own process group is the run's: a timeout or `stop` signals ansible-playbook too.
        # What the playbook writes is the task's: the umask moltbot was started with (file_modes.py).
        code = subprocess.run(argv, cwd=tasks_dir, env=env, check=False, umask=task_umask()).returncode
        recap = recap_file.read_text() if recap_file.exists() else None
    return code, recap
