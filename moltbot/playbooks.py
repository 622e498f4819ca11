"""Playbook tasks: a run of ``ansible-playbook`` whose per-host recap is kept with the run.

A playbook task's process is ``moltbot playbook-action TASK`` (as for llm tasks), so timeouts,
retries, the log and alerts are the core's, unchanged. The action runs ansible-playbook as its
child, output straight into the run's log, with a small callback plugin
(``ansible_callbacks/moltbot_recap.py``) that writes the recap to a file. The action stores it on
the run before it exits, that is before the daemon records the run's end, so the reply queued by
that end can show it. ansible-playbook's exit code is the run's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moltbot.config import under_tasks

CALLBACK_DIR = Path(__file__).parent / "ansible_callbacks"
RECAP_FILE_ENV = "MOLTBOT_RECAP_FILE"
OUTCOMES = ("ok", "changed", "failed", "unreachable")  # the order a summary names them in


class PlaybookError(Exception):
    """The playbook could not be started (the run fails with this reason)."""


@dataclass(frozen=True)
class HostRecap:
    """One host's line of the PLAY RECAP, and the last failure's message."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    message: str = ""

    @property
    def outcome(self) -> str:
        """The worst thing that happened to the host: unreachable, failed, changed or ok."""
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


def parse_recap(text: str | None) -> list[HostRecap]:
    """The hosts of a stored recap (empty for runs that have none)."""
    if not text:
        return []
    fields = {"host", "ok", "changed", "failed", "unreachable", "skipped", "message"}
    return [HostRecap(**{k: v for k, v in host.items() if k in fields}) for host in json.loads(text)["hosts"]]


def outcome_counts(hosts: Sequence[HostRecap]) -> dict[str, int]:
    """How many hosts ended in each outcome, in OUTCOMES order, zeros left out."""
    counts = {outcome: sum(1 for host in hosts if host.outcome == outcome) for outcome in OUTCOMES}
    return {outcome: count for outcome, count in counts.items() if count}


def is_host_list(inventory: str, tasks_dir: Path) -> bool:
    """Ansible's inline inventory (``host1,host2``, ``localhost,``): a comma, and no such path."""
    return "," in inventory and not under_tasks(inventory, tasks_dir).exists()


def command(
    task: Mapping[str, Any], tasks_dir: Path, ansible_playbook: str, vars_file: Path | None
) -> list[str]:
    """The ansible-playbook command line for a task's fields (validated by config.load_tasks)."""
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
    found = shutil.which("ansible-playbook", path=environ.get("PATH"))
    if found is None:
        raise PlaybookError(
            "ansible-playbook not found on PATH: install Ansible into moltbot's venv "
            "(pip install ansible-core) or from Debian (apt install ansible-core)"
        )
    return found


def run(task: Mapping[str, Any], tasks_dir: Path, environ: Mapping[str, str]) -> tuple[int, str | None]:
    """Run the task's playbook (output to our stdout/stderr); its exit code and the recap JSON."""
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
        argv = command(task, tasks_dir, ansible_playbook, vars_file)
        print("$ " + " ".join(argv), flush=True)
        # Our own process group is the run's: a timeout or `stop` signals ansible-playbook too.
        code = subprocess.run(argv, cwd=tasks_dir, env=env, check=False).returncode
        recap = recap_file.read_text() if recap_file.exists() else None
    return code, recap
