"""Status tells the truth (issue #11, item 12), through the real CLI and a real daemon with Signal.

TZ is UTC (``Env.environ``) and ``[daemon] timezone`` is Asia/Kathmandu (+05:45),
so a time shown in the host's zone instead of the configured one is visible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, replies, say, signal_toml

KATHMANDU = ZoneInfo("Asia/Kathmandu")
IN_KATHMANDU = '[daemon]\ntimezone = "Asia/Kathmandu"\n'


def there(instant: str | datetime, seconds: bool = True) -> str:
    """An instant (ISO-8601 from --json, or aware) as Kathmandu's wall clock shows it."""
    moment = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    return moment.astimezone(KATHMANDU).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def is_utc(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() == timedelta(0)


def test_status_and_logs_show_the_configured_zone_while_json_stays_utc(env: Env) -> None:
    env.script("job.sh", "echo hi\n")
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"}, settings=IN_KATHMANDU
    )
    env.cli("run", "job", check=True)
    (entry,) = env.cli_json("status")["tasks"]
    assert is_utc(entry["last_run"]) and is_utc(entry["next_run"])
    table = env.cli("status", check=True).stdout
    assert there(entry["last_run"]) in table
    assert f"{there(entry['next_run'])[:10]} 03:00:00" in table  # daily at 03:00, Kathmandu's wall clock
    assert table.rstrip().endswith("(times in Asia/Kathmandu)")

    events = env.cli_json("logs")
    lines = env.cli("logs", check=True).stdout.splitlines()
    assert len(events) == len(lines) >= 3  # added, started, completed
    for event, line in zip(events, lines, strict=True):
        assert is_utc(event["timestamp"])
        assert line.startswith(f"[{there(event['timestamp'])} +0545] {event['task_id']}: {event['action']}")


def test_status_still_answers_when_moltbot_toml_is_broken_and_says_why(env: Env) -> None:
    env.script("job.sh", "echo hi\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    env.cli("status", check=True)  # registers the tasks while the config is good
    env.home.settings_toml.write_text('[daemon]\ntimezone = "Mars/Olympus_Mons"\n')
    result = env.cli("status")
    assert result.returncode == 0 and "job" in result.stdout
    assert f"{env.home.settings_toml}:2: daemon.timezone: unknown IANA zone" in result.stderr
    assert "(times in UTC)" in result.stdout


def test_stop_without_a_daemon_records_the_foreground_run_as_interrupted(env: Env) -> None:
    env.script("long.sh", "echo begun\nsleep 300\n")
    env.write_tasks({"task_id": "long", "script_path": "long.sh", "schedule": "daily at 03:00"})
    foreground = subprocess.Popen(
        [sys.executable, "-m", "moltbot", "run", "long", "--json"],
        env=env.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env.db()
        wait_until(lambda: (task := store.get_task("long")) and task.current_run_id, what="the run to start")
        assert "stopping run" in env.cli("stop", "long", check=True).stdout
        out, _ = foreground.communicate(timeout=30)
    finally:
        foreground.kill()
    result = json.loads(out)
    assert result["status"] == "interrupted", result
    assert result["message"].startswith("interrupted: stopped on request after ")
    (entry,) = env.cli_json("status")["tasks"]
    assert (entry["last_result"], entry["status"], entry["error_count"]) == ("interrupted", "idle", 0)


# --- through Signal, against the daemon ------------------------------------------------------


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway(ping_seconds=1.0).start()
    yield fake
    fake.stop()


@pytest.fixture
def kathmandu_bot(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess]
) -> Callable[..., DaemonProcess]:
    """The daemon with Signal on the fake gateway and ``[daemon] timezone`` Asia/Kathmandu (TZ=UTC)."""

    def start(*tasks: dict[str, object]) -> DaemonProcess:
        env.write_tasks(*tasks, settings=IN_KATHMANDU + signal_toml(gateway))
        daemon = start_daemon()
        wait_until(gateway.connected, what="the daemon's websocket")
        return daemon

    return start


def ask(gateway: FakeGateway, text: str) -> str:
    """Send a command; its reply."""
    before = len(gateway.texts_to(OWNER))
    say(gateway, text)
    return replies(gateway, before + 1)[before]


def test_a_stopped_run_is_the_tasks_last_result_everywhere(
    env: Env, gateway: FakeGateway, kathmandu_bot: Callable[..., DaemonProcess]
) -> None:
    marker = env.home.root / "ran-once"
    env.script("long.sh", f"[ -e {marker} ] || {{ touch {marker}; exit 0; }}\necho begun\nsleep 300\n")
    kathmandu_bot({"task_id": "long", "script_path": "long.sh", "schedule": "daily at 03:00"})
    assert ask(gateway, "run:long").startswith("▶ long started")
    wait_until(lambda: any(t.startswith("✅ long finished") for t in gateway.texts_to(OWNER)), what="run 1")
    assert env.cli_json("status")["tasks"][0]["last_result"] == "success"
    assert ask(gateway, "run:long").startswith("▶ long started")
    env.db()
    wait_until(lambda: (task := store.get_task("long")) and task.current_run_id, what="run 2 to start")
    assert "stopping run" in env.cli("stop", "long", check=True).stdout
    wait_until(lambda: any(t.startswith("⏹ long interrupted") for t in gateway.texts_to(OWNER)), what="stop")

    (entry,) = env.cli_json("status")["tasks"]
    assert (entry["last_result"], entry["status"]) == ("interrupted", "idle")
    table = env.cli("status", check=True).stdout.splitlines()
    (row,) = [line.split() for line in table if line.startswith("long")]
    assert row[4] == "interrupted"  # RESULT, after the task, its state and the last run's date and time
    (line,) = [line for line in ask(gateway, "status").splitlines() if " long " in f"{line} "]
    assert line.startswith("⏹ long · interrupted "), line
    assert datetime.fromisoformat(entry["last_run"]) > datetime.now(UTC) - timedelta(minutes=1)
