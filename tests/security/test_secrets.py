"""Secrets from files (``NAME_FILE``, systemd credentials), and a run gets only what its kind needs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from moltbot.kinds import kind_of
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_agents import FakeLetta, FakeOllama
from tests.fake_discord import BOT_ID, TOKEN, FakeDiscord
from tests.test_discord import HEARTBEAT, TASKS, contents, soon, task_message

DAEMON_ENVIRONMENT = {
    "PATH": "/usr/bin:/bin",
    "DISCORD_BOT_TOKEN": TOKEN,
    "LETTA_API_KEY": "letta-key",
    "LETTA_AGENT_ID": "agent-1",
    "OLLAMA_HOST": "http://127.0.0.1:11434",
    "TASKS_CHANNEL_ID": TASKS,
    "HEARTBEAT_LOG_CHANNEL_ID": HEARTBEAT,
}


def test_an_llm_run_gets_the_models_address_and_nothing_else_of_the_daemons_environment() -> None:
    assert kind_of("llm").environment(DAEMON_ENVIRONMENT) == {"OLLAMA_HOST": "http://127.0.0.1:11434"}
    assert kind_of("script").environment(DAEMON_ENVIRONMENT) == {}
    assert kind_of("playbook").environment(DAEMON_ENVIRONMENT) == {}
    assert "DISCORD_BOT_TOKEN" not in kind_of("discord").environment(DAEMON_ENVIRONMENT)


def test_a_discord_run_gets_the_letta_key_as_the_path_of_its_file(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "LETTA_API_KEY").write_text("letta-key\n")
    (credentials / "DISCORD_BOT_TOKEN").write_text(TOKEN)
    daemon = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(credentials), "LETTA_AGENT_ID": "agent-1"}
    passed = kind_of("discord").environment(daemon)
    assert passed == {"LETTA_AGENT_ID": "agent-1", "LETTA_API_KEY_FILE": str(credentials / "LETTA_API_KEY")}
    own_file = {**daemon, "LETTA_API_KEY_FILE": "/etc/moltbot/letta"}  # the daemon's own reference wins
    assert kind_of("discord").environment(own_file)["LETTA_API_KEY_FILE"] == "/etc/moltbot/letta"


def test_an_llm_run_needs_no_variable_of_the_tables_it_does_not_read(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    """[discord] and [letta] leave their ids to the environment, which an llm run no longer gets."""
    ollama = FakeOllama(answer=lambda body: {"role": "assistant", "content": "all quiet"}).start()
    try:
        env.write_tasks({"task_id": "ask", "kind": "llm", "prompt": "ok?", "schedule": "daily at 03:00"},
                        settings=f'[ollama]\nhost = "{ollama.url}"\n\n[discord]\n\n[letta]\n')  # fmt: skip
        start_daemon(**{k: v for k, v in DAEMON_ENVIRONMENT.items() if k not in ("PATH", "OLLAMA_HOST")})
        run = json.loads(env.cli("run", "ask", "--json").stdout)
        assert (run["status"], run["stdout"]) == ("success", "all quiet\n"), run
    finally:
        ollama.stop()


def test_the_discord_token_from_a_credential_and_the_letta_key_from_a_file(
    env: Env, discord: FakeDiscord, start_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"  # as systemd's LoadCredential= lays them out
    credentials.mkdir(mode=0o700)
    (credentials / "DISCORD_BOT_TOKEN").write_text(TOKEN + "\n")
    letta_key = tmp_path / "letta-key"
    letta_key.write_text("letta-key\n")
    letta = FakeLetta(password="letta-key", answer=lambda text: "🌱 " + text.splitlines()[2]).start()
    try:
        discord.post(TASKS, task_message("plants", "in_1_minutes", soon(), one_time=True,
                                         action_type="self_task", action_target=None),
                     author_id=BOT_ID)  # fmt: skip
        env.write_tasks(settings=(
            f'[discord]\napi_base = "{discord.api}"\ntasks_channel_id = "{TASKS}"\n'
            f'heartbeat_log_channel_id = "{HEARTBEAT}"\npoll_seconds = 0.3\n\n'
            f'[letta]\nbase_url = "{letta.url}"\nagent_id = "{letta.agent_id}"\n'
        ))  # fmt: skip
        start_daemon(CREDENTIALS_DIRECTORY=str(credentials), LETTA_API_KEY_FILE=str(letta_key))
        wait_until(lambda: contents(discord, HEARTBEAT) == ["🌱 Task: plants"], what="the agent's answer")
    finally:
        letta.stop()


def test_a_secret_file_that_cannot_be_read_is_a_configuration_error(env: Env, tmp_path: Path) -> None:
    env.write_tasks(settings='[letta]\nagent_id = "agent-1"\n')
    assert env.cli("check").returncode == 0
    missing = tmp_path / "no-such-key"
    broken = {**env.environ, "LETTA_API_KEY_FILE": str(missing)}
    result = subprocess.run(env.cli_argv("check"), env=broken, capture_output=True, text=True)
    assert result.returncode == 3
    assert (
        f"letta.api_key: LETTA_API_KEY_FILE: cannot read {missing}: No such file or directory"
        in result.stderr
    )
