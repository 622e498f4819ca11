"""Chains never cross into the Discord Tasks Channel: whoever may post there cannot have the owner's
tasks trigger theirs (nor theirs trigger the owner's)."""

from __future__ import annotations

import dataclasses

from moltbot import store
from moltbot.core import Core
from moltbot.core.foreground import run_in_foreground
from moltbot.discord_tasks.message import parse_message
from moltbot.discord_tasks.tasks import to_spec
from tests.conftest import Env
from tests.fake_discord import BOT_ID
from tests.test_discord import soon, task_message
from tests.test_discord_tasks import BERLIN


def test_a_discord_task_asking_to_run_after_the_owners_backup_never_does(env: Env) -> None:
    env.script("backup.sh", "echo backed up\n")
    env.write_tasks({"task_id": "backup", "script_path": "backup.sh", "schedule": "daily at 03:00"})
    core = Core(env.home)
    core.open()
    core.sync_if_changed()
    planted = {"after": ["backup"], "after_failure": ["backup"]}
    task = parse_message("3002", task_message("x", "hourly", soon(3600), False, **planted), BOT_ID, BERLIN)
    assert task is not None and not planted.keys() & task.data.keys()  # dropped when read
    posted = to_spec(task, BERLIN)
    # Even a Discord task whose stored definition did say so (a future reader's bug) is no chain's end.
    leaked = dataclasses.replace(posted, task_id="discord-3003", raw={**posted.raw, **planted})
    core.sync([posted, leaked], source="discord")
    assert core.definition("discord-3003")["after"] == ["backup"]
    assert run_in_foreground(core, "backup", "test").status == "success"
    assert [run for name in ("discord-3002", "discord-3003") for run in store.recent_runs(name, 10)] == []
    assert all(not (state.after or state.after_failure) for state in core.task_states())


def test_the_owners_tasks_cannot_be_chained_to_a_discord_task(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks({"task_id": "upload", "script_path": "ok.sh", "after": ["discord-3001"]})
    result = env.cli("check")
    assert result.returncode == 3
    assert "Discord Tasks-Channel tasks cannot be chained" in result.stderr
