"""`moltbot reload` (SIGHUP) applies moltbot.toml: a real daemon, the real CLI, the fake gateway.

What a reload did comes back from the daemon itself (its recorded outcome), so the CLI says what
was applied and what still needs a restart; nothing of moltbot is mocked.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from moltbot import store
from moltbot.config.home import Home
from moltbot.core import Core
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway, SendFault
from tests.test_signal import OWNER, OWNER_UUID, bot, say, signal_toml

__all__ = ["bot"]  # the Signal fixture (gateway: conftest.py)

NEWCOMER = "+4915100000007"
NEWCOMER_UUID = "7a7a7a7a-1111-4222-8333-444455556666"


def reloaded(env: Env) -> str:
    result = env.cli("reload")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_signal_added_to_a_running_daemon_answers_after_reload(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> None:
    daemon = start_daemon()
    env.write_tasks(settings=signal_toml(gateway))
    assert "[signal] started" in reloaded(env)
    wait_until(gateway.connected, what="the new bridge's websocket")
    say(gateway, "status")
    wait_until(lambda: gateway.texts_to(OWNER), what="the answer")
    assert gateway.texts_to(OWNER)[0].startswith("moltbot: 0 tasks")
    assert "reloaded: tasks.json (no change); [signal] started" in daemon.output()


def test_a_changed_allowed_list_answers_the_newcomer_and_refuses_the_removed(
    env: Env, gateway: FakeGateway, bot: Callable[..., DaemonProcess]
) -> None:
    daemon = bot()
    env.write_tasks(settings=signal_toml(gateway, allowed=f'[["{NEWCOMER}", "{NEWCOMER_UUID}"]]'))
    assert "[signal] restarted" in reloaded(env)
    wait_until(gateway.connected, what="the new bridge's websocket")
    say(gateway, "status", sender=OWNER_UUID, number=OWNER)
    say(gateway, "tasks", sender=NEWCOMER_UUID, number=NEWCOMER)
    wait_until(lambda: gateway.texts_to(NEWCOMER), what="the newcomer's answer")
    wait_until(lambda: f"refused a message from {OWNER_UUID}" in daemon.output(), what="the refusal")
    assert gateway.texts_to(OWNER) == []


def test_a_broken_moltbot_toml_keeps_everything_and_says_where(
    env: Env, gateway: FakeGateway, bot: Callable[..., DaemonProcess]
) -> None:
    daemon = bot()
    good = env.home.settings_toml.read_text()
    env.home.settings_toml.write_text(good + "timeout_secnds = 3\n")
    refused = env.cli("reload")  # the CLI checks first and sends nothing
    assert refused.returncode == 3 and "moltbot.toml:8: signal.timeout_secnds" in refused.stderr
    daemon.signal(signal.SIGHUP)  # systemctl reload does not check first: the daemon does
    core = Core(Home(env.home.root))
    core.open(create_home=False)
    outcome = wait_until(core.last_reload, what="the daemon's answer")
    assert not outcome.ok and "moltbot.toml:8: signal.timeout_secnds" in outcome.text
    assert outcome.text.startswith("reload failed, nothing changed")
    assert "keeping the last good config" in daemon.output()
    say(gateway, "status")  # the bridge it had still answers
    wait_until(lambda: gateway.texts_to(OWNER), what="the answer of the bridge kept")


def test_a_daemon_change_is_named_as_needing_a_restart(
    env: Env, start_daemon: Callable[..., DaemonProcess]
) -> None:
    env.script("a.sh", "true\n")
    start_daemon()
    env.write_tasks(
        {"task_id": "a", "script_path": "a.sh", "schedule": "daily at 03:00"},
        settings="[daemon]\nworkers = 2\nlog_retention_days = 7\n",
    )
    said = reloaded(env)
    assert said.strip() == (
        "reloaded: tasks.json (added a); needs a restart: [daemon] workers, log_retention_days "
        "(systemctl restart moltbot)"
    )
    assert "4 workers" not in said and env.cli_json("status")["task_count"] == 1


def test_messages_queued_before_a_signal_restart_are_delivered_after_it_once(
    env: Env, gateway: FakeGateway, bot: Callable[..., DaemonProcess]
) -> None:
    bot()
    held = True
    gateway.fault_for = lambda body: SendFault(503) if held else None  # queued, retried, not sent
    texts = ["first", "second", "third"]
    for text in texts:
        assert env.cli("notify", text).returncode == 0
    env.db()
    wait_until(lambda: all(m.attempts for m in store.pending_outbox()), what="each tried once")
    env.write_tasks(settings=signal_toml(gateway, timeout_seconds="3"))
    assert "[signal] restarted" in reloaded(env)
    held = False
    wait_until(lambda: not store.pending_outbox(), what="every row sent")  # sent rows are done for good
    assert sorted(gateway.texts_to(OWNER)) == sorted(texts)
