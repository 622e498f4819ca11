"""Letta is asked one request at a time through a lock file that no other local user can hold.

The lock file serialises moltbot's processes (each Discord task's action is one). In the shared
``/tmp`` any local user could create and hold it, and every Letta task would wait forever; it lives
in the daemon's own ``data/``.
"""

from __future__ import annotations

import fcntl
import stat
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_agents import FakeLetta
from tests.fake_discord import BOT_ID, TOKEN, FakeDiscord
from tests.test_discord import HEARTBEAT, TASKS, contents, task_message


def test_a_lock_held_in_tmp_by_someone_else_does_not_block_letta_tasks(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # An agent id of this test's own: other test runs on this machine use the fake's default one.
    letta = FakeLetta(agent_id=f"agent-{uuid.uuid4().hex[:12]}", answer=lambda text: "🌱 answered").start()
    squatted = Path(tempfile.gettempdir()) / f"moltbot-letta-{letta.agent_id}.lock"
    try:
        with open(squatted, "a") as squatter:
            fcntl.flock(squatter, fcntl.LOCK_EX)  # another local user, holding the old shared lock
            due = datetime.now(UTC) + timedelta(seconds=1)
            message = task_message(
                "plants", "in_1_minutes", due, True, action_type="self_task", action_target=None
            )
            discord.post(TASKS, message, author_id=BOT_ID)  # as the original tool writes them
            env.write_tasks(settings=(
                f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
                f'heartbeat_log_channel_id = "{HEARTBEAT}"\npoll_seconds = 0.3\n\n'
                f'[letta]\nbase_url = "{letta.url}"\n'
            ))  # fmt: skip
            start_daemon(DISCORD_BOT_TOKEN=TOKEN, LETTA_AGENT_ID=letta.agent_id)
            wait_until(lambda: contents(discord, HEARTBEAT) == ["🌱 answered"], what="the agent's answer")
    finally:
        squatted.unlink(missing_ok=True)
        letta.stop()
    (lock,) = env.home.data_dir.glob(f"*{letta.agent_id}*")
    assert lock.name == f"letta-{letta.agent_id}.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
