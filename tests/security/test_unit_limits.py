"""The unit bounds the memory and the tasks (processes and threads) of moltbot and every run.

A runaway task or a flood of runs must not take the host down: past ``MemoryMax=`` the kernel's
OOM killer picks within the unit (the biggest process: the runaway task, not the small daemon),
and ``OOMPolicy=continue`` keeps that one run's end from stopping the unit and every other run;
past ``TasksMax=`` a fork fails inside the unit only. The shipped unit is the role's template with
its defaults (tests/test_ansible.py); ``systemd-analyze verify`` accepts it (tests/test_deploy.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "moltbot.service"
DEFAULTS = REPO / "ansible" / "roles" / "moltbot" / "defaults" / "main.yml"


def setting(name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", UNIT.read_text(), re.MULTILINE)
    assert match, f"{name}= is not in {UNIT.name}"
    return match.group(1)


def test_the_unit_bounds_memory_and_tasks_with_the_roles_defaults() -> None:
    defaults = yaml.safe_load(DEFAULTS.read_text())
    memory, tasks = setting("MemoryMax"), setting("TasksMax")
    assert memory == str(defaults["moltbot_service_memory_max"])
    assert tasks == str(defaults["moltbot_service_tasks_max"])
    # Room for the host: a share of its memory below all of it; a real bound on processes, far
    # below the kernel's default pid_max (32768), far above an idle daemon's ~10 threads and a
    # playbook run's few dozen processes, times the workers.
    assert re.fullmatch(r"\d+%", memory) and 10 <= int(memory[:-1]) <= 75, memory
    assert 256 <= int(tasks) <= 4096, tasks
    assert setting("OOMPolicy") == "continue"
