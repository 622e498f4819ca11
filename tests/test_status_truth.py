"""Status tells the truth (issue #11, item 12), through the real CLI and a real daemon with Signal.

TZ is UTC (``Env.environ``) and ``[daemon] timezone`` is Asia/Kathmandu (+05:45),
so a time shown in the host's zone instead of the configured one is visible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from moltbot.core.one_shots import is_one_shot
from moltbot.schedules import parse_schedule
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, replies, say, signal_toml

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)

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
        # The event's kind is said once, in its text ("run 1 succeeded in 0.0s" for a "completed").
        assert line.startswith(f"[{there(event['timestamp'])} +0545] {event['task_id']}: "), line


def test_status_still_answers_when_moltbot_toml_is_broken_and_says_why(env: Env) -> None:
    env.script("job.sh", "echo hi\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    env.cli("status", check=True)  # registers the tasks while the config is good
    env.home.settings_toml.write_text('[daemon]\ntimezone = "Mars/Olympus_Mons"\n')
    result = env.cli("status")
    assert result.returncode == 0 and "job" in result.stdout
    assert f"{env.home.settings_toml}:2: daemon.timezone: unknown IANA zone" in result.stderr
    assert "(times in UTC)" in result.stdout


def test_a_one_shot_that_ran_is_done_in_tasks_next_and_status(env: Env) -> None:
    env.script("job.sh", "echo hi\n")
    later = (datetime.now(KATHMANDU) + timedelta(hours=1)).replace(tzinfo=None)
    env.write_tasks(
        {"task_id": "at-once", "script_path": "job.sh", "schedule": f"at {later:%Y-%m-%dT%H:%M}"},
        {"task_id": "in-once", "script_path": "job.sh", "schedule": "in 2 minutes"},
        {"task_id": "daily", "script_path": "job.sh", "schedule": "daily at 03:00"},
        {"task_id": "not-yet", "script_path": "job.sh", "schedule": "in 2 hours"},
        settings=IN_KATHMANDU,
    )
    for task_id in ("at-once", "in-once", "daily"):
        env.cli("run", task_id, check=True)  # before their time: a one-shot run by hand has run
    states = {entry["id"]: entry for entry in env.cli_json("status")["tasks"]}
    done = {
        name: f"done (ran {there(states[name]['last_run'], False)} +0545)" for name in ("at-once", "in-once")
    }

    listing = {line.split(":")[0]: line for line in env.cli("tasks", check=True).stdout.splitlines()}
    assert done["at-once"] in listing["at-once"] and done["in-once"] in listing["in-once"]
    assert "done" not in listing["daily"] and "done" not in listing["not-yet"]
    tasks_json = {item["task_id"]: item for item in env.cli_json("tasks")}
    assert is_utc(tasks_json["at-once"]["done_at"]) and tasks_json["daily"]["done_at"] is None

    assert env.cli("next", "at-once", check=True).stdout == f"at-once: {done['at-once']}\n"
    assert env.cli("next", "in-once", check=True).stdout == f"in-once: {done['in-once']}\n"
    assert env.cli_json("next", "at-once") == [] and len(env.cli_json("next", "not-yet")) == 1

    rows = {line.split()[0]: line.split() for line in env.cli("status", check=True).stdout.splitlines()[2:-1]}
    assert rows["at-once"][5] == "done" and rows["in-once"][5] == "done"  # NEXT RUN, after two date-times
    assert rows["daily"][5] != "done" and rows["not-yet"][2:4] == ["-", "-"]  # never ran: no result
    assert is_utc(states["at-once"]["done_at"]) and states["daily"]["done_at"] is None

    env.db()
    store.prune(datetime.now(UTC) + timedelta(seconds=1))  # its runs are past log_retention_days
    assert env.cli("next", "at-once", check=True).stdout == f"at-once: {done['at-once']}\n"


# Every form the README lists, the Discord tool's values, and the Discord tasks' canonical one-shot.
SCHEDULES = [
    *("every 30s", "every 5m", "every 2h", "every 1d", "every 2w", "every 2 days at 07:30", "daily at 09:00"),
    *("weekdays at 07:30", "weekends at 10:00", "weekly on mon at 08:00", "weekly on tue,thu at 18:00"),
    *("monthly on 1 at 06:00", "monthly on last at 23:00", "0 9 * * 1-5", "at 2026-12-24T18:00"),
    *("AT  2026-12-24T18:00:00.5+01:00", "at 2026-12-24T17:00:00+00:00", "in 10 minutes", "In 30s"),
    *("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "secondly", "every_5_minutes"),
    *("every_2_hours", "every_1_days", "every_2_weeks", "in_30_seconds", "in_5_minutes", "in_2_hours"),
    *("today_at_09:00", "tomorrow_at_07:30", "on_date"),
]


@pytest.mark.parametrize("text", SCHEDULES)
def test_a_one_shot_is_told_from_its_text_as_the_grammar_parses_it(text: str) -> None:
    schedule = parse_schedule(text, KATHMANDU, specific_date="2026-12-24")
    assert is_one_shot(f"{text}@{KATHMANDU.key}") is schedule.one_shot


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


def test_signal_shows_a_one_shot_that_ran_as_done_in_the_configured_zone(
    env: Env, gateway: FakeGateway, kathmandu_bot: Callable[..., DaemonProcess]
) -> None:
    env.script("job.sh", "echo hi\n")
    soon = (datetime.now(KATHMANDU) + timedelta(seconds=2)).replace(tzinfo=None)
    kathmandu_bot(
        {"task_id": "once", "script_path": "job.sh", "schedule": f"at {soon.isoformat()}"},
        {"task_id": "daily", "script_path": "job.sh", "schedule": "daily at 03:00"},
    )
    env.db()
    wait_until(lambda: [r for r in store.recent_runs("once", 5) if r.status == "success"], what="the run")
    (run,) = store.recent_runs("once", 5)
    assert run.started_at is not None
    done = f"done (ran {there(run.started_at, False)} +0545)"

    status = ask(gateway, "status").splitlines()
    (line,) = [line for line in status if " once " in f"{line} "]
    assert line.startswith("✅ once · ok ") and line.endswith(" · done"), line
    assert "next" in next(line for line in status if " daily " in f"{line} ")
    tasks = ask(gateway, "tasks").splitlines()
    assert any(line.startswith("✅ once: at ") and line.endswith(f" · {done}") for line in tasks), tasks
    assert ask(gateway, "next:once") == f"once: {done}"


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
    stopped = "⏹ long stopped after "
    wait_until(lambda: any(t.startswith(stopped) for t in gateway.texts_to(OWNER)), what="stop")

    (entry,) = env.cli_json("status")["tasks"]
    assert (entry["last_result"], entry["status"]) == ("interrupted", "idle")
    table = env.cli("status", check=True).stdout.splitlines()
    (row,) = [line.split() for line in table if line.startswith("long")]
    assert row[4] == "interrupted"  # RESULT, after the task, its state and the last run's date and time
    (line,) = [line for line in ask(gateway, "status").splitlines() if " long " in f"{line} "]
    assert line.startswith("⏹ long · interrupted "), line
    assert datetime.fromisoformat(entry["last_run"]) > datetime.now(UTC) - timedelta(minutes=1)
