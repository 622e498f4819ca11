"""moltbot doctor against the fake gateway, Discord and Ollama on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import Env
from tests.fake_agents import FakeOllama
from tests.fake_discord import TOKEN, FakeDiscord
from tests.fake_gateway import BOT, FakeGateway

TASKS = "700000000000000001"


@pytest.fixture
def services() -> Iterator[tuple[FakeGateway, FakeDiscord, FakeOllama]]:
    gateway, discord, ollama = FakeGateway().start(), FakeDiscord().start(), FakeOllama().start()
    yield gateway, discord, ollama
    gateway.stop()
    discord.stop()
    ollama.stop()


def doctor(env: Env, token: str = TOKEN) -> tuple[int, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "moltbot", "doctor", "--json"],
        env={**env.environ, "DISCORD_BOT_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout)


def configure(
    env: Env, gateway: FakeGateway, discord: FakeDiscord, ollama: FakeOllama, model: str = "llama3.2"
) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"},
        settings=(
            f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["+4915100000001"]\n'
            "timeout_seconds = 3\n\n"
            f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n\n'
            f'[ollama]\nhost = "{ollama.url}"\nmodel = "{model}"\n'
        ),
    )


def test_all_in_order(env: Env, services: tuple[FakeGateway, FakeDiscord, FakeOllama]) -> None:
    configure(env, *services)
    code, report = doctor(env)
    names = [check["name"] for check in report["checks"]]  # type: ignore[index, union-attr]
    assert names == ["home", "config", "task user", "database", "signal gateway", "signal account",
                     "signal senders", "discord token", "discord tasks channel", "ollama", "clock",
                     "daemon"]  # fmt: skip
    required_failures = [c["name"] for c in report["checks"] if not c["ok"] and c["required"]]  # type: ignore[index, union-attr]
    assert code == 1 and required_failures == ["daemon"], report  # no daemon here: nobody listens


def test_failures_name_their_fix_and_exit_non_zero(
    env: Env, services: tuple[FakeGateway, FakeDiscord, FakeOllama]
) -> None:
    gateway, discord, ollama = services
    gateway.mode = "normal"
    configure(env, gateway, discord, ollama, model="mistral")
    code, report = doctor(env, token="revoked")
    failed = {check["name"]: check for check in report["checks"] if not check["ok"]}  # type: ignore[union-attr]
    assert code == 1 and report["ok"] is False
    assert "MODE=json-rpc" in failed["signal gateway"]["fix"]
    assert "Reset Token" in failed["discord token"]["fix"]
    assert failed["ollama"]["fix"] == "ollama pull mistral"
    gateway.stop()
    code, report = doctor(env)
    failed = {check["name"]: check for check in report["checks"] if not check["ok"]}  # type: ignore[union-attr]
    assert "start signal-cli-rest-api" in failed["signal gateway"]["fix"]


def test_a_broken_config_is_the_first_finding(env: Env) -> None:
    env.write_tasks({"task_id": "x", "script_path": "missing.sh", "schedule": "hourly"})
    result = env.cli("doctor")
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert failures[0].startswith("✗ config: 1 problem(s)")
    assert "fix: moltbot check lists them all" in result.stdout
