"""Status tells the truth (issue #11, item 12), through the real CLI and a real daemon with Signal.

TZ is UTC (``Env.environ``) and ``[daemon] timezone`` is Asia/Kathmandu (+05:45),
so a time shown in the host's zone instead of the configured one is visible.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.conftest import Env

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
