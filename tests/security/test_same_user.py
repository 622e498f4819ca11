"""Without ``[daemon] task_user`` (the quick start) tasks run as the daemon's own user: they still cannot
read the daemon's secrets or a helper's from /proc, since moltbot's processes are non-dumpable.

As root (CI) the daemon runs as a user of its own, as under the unit; root itself could read any
/proc file (CAP_SYS_PTRACE), which would prove nothing. Without root the tests run as you.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_agents import FakeOllama
from tests.users import sandbox, users

__all__ = ["sandbox", "users"]
TOKEN = "discord-token-nobody-may-read"
SameUser = tuple[Env, Callable[..., DaemonProcess], list[str]]


@pytest.fixture
def same_user(request: pytest.FixtureRequest) -> SameUser:
    """A home, a way to start the daemon, and the prefix that runs a command as the daemon's user."""
    if os.geteuid() == 0:
        box = request.getfixturevalue("sandbox")(task_user=False)
        return box, lambda **extra: box.start(task_user=False, **extra), box.users.daemon.setpriv()
    return request.getfixturevalue("env"), request.getfixturevalue("start_daemon"), []


def test_a_task_cannot_read_the_daemons_environment(same_user: SameUser) -> None:
    env, start, _ = same_user
    env.script("peek.sh", "tr '\\0' '\\n' </proc/$PPID/environ\n")
    env.write_tasks({"task_id": "peek", "script_path": "peek.sh", "schedule": "daily at 03:00"})
    start(DISCORD_BOT_TOKEN=TOKEN)
    run = json.loads(env.cli("run", "peek", "--json").stdout)
    assert run["status"] == "failed", run
    assert "Permission denied" in run["stderr"]
    assert TOKEN not in run["stdout"] + run["stderr"]


@pytest.fixture
def held_ollama() -> Iterator[tuple[FakeOllama, threading.Event]]:
    """A model that answers only once released: the llm task's helper process stays up meanwhile."""
    release = threading.Event()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        release.wait(30)
        return {"role": "assistant", "content": "fine"}

    ollama = FakeOllama(answer=answer).start()
    yield ollama, release
    release.set()
    ollama.stop()


def helper_pid(kind: str) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{kind}-action".encode() in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


def test_a_same_user_process_cannot_read_a_helpers_environment(
    same_user: SameUser, held_ollama: tuple[FakeOllama, threading.Event]
) -> None:
    env, start, as_daemon_user = same_user
    ollama, release = held_ollama
    settings = f'[ollama]\nhost = "{ollama.url}"\nmodel = "llama3.2"\n'
    env.write_tasks({"task_id": "ask", "kind": "llm", "prompt": "ok?", "schedule": "daily at 03:00"},
                    settings=settings)  # fmt: skip
    daemon = start()
    running = subprocess.Popen(env.cli_argv("run", "ask"), env=env.environ, stdout=subprocess.PIPE)
    try:
        wait_until(lambda: ollama.requests, what="the helper to ask the model")
        pid = wait_until(lambda: helper_pid("llm"), what="the helper's process")
        peek = subprocess.run(
            [*as_daemon_user, "cat", f"/proc/{pid}/environ"], capture_output=True, text=True
        )
        assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek
        assert "MOLTBOT_RUN_ID" not in peek.stdout
    finally:
        release.set()
        running.communicate(timeout=30)
    assert running.returncode == 0, daemon.output()
