"""Discord tasks as core tasks: specs, canonical schedules, and two sources that never remove each other's."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from moltbot import store
from moltbot.clock import FakeClock
from moltbot.config.home import Home
from moltbot.core import Core
from moltbot.discord_tasks.message import parse_message
from moltbot.discord_tasks.tasks import to_spec
from moltbot.kinds import kind_of
from moltbot.schedules import parse_schedule
from tests.conftest import Env
from tests.test_discord_message import CASES, message

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("schedule", "extra", "one_time", "next_run", "following"), CASES)
def test_the_stored_schedule_reads_back_as_the_same_schedule(
    schedule: str, extra: dict[str, object], one_time: bool, next_run: str, following: list[str]
) -> None:
    task = parse_message("1001", message(schedule=schedule, one_time=one_time, next_run=next_run, **extra),
                         "42", BERLIN)  # fmt: skip
    assert task is not None
    spec = to_spec(task, BERLIN)
    again = parse_schedule(spec.schedule_text, BERLIN)  # what `next` and `resume` will use
    at = task.next_run
    for _ in range(5):
        assert again.next_after(at, task.next_run) == task.schedule_in(BERLIN).next_after(at, task.next_run)
        at = again.next_after(at, task.next_run) or at
    assert spec.task_id == "discord-1001" and spec.kind == "discord"
    assert kind_of(spec.kind).command(spec, Home(Path("/home"))) == [
        sys.executable, "-P", "-m", "moltbot", "discord-action", "discord-1001"
    ]  # fmt: skip


def test_sources_never_remove_each_others_tasks_and_intervals_count_from_next_run(env: Env) -> None:
    env.script("local.sh", "true\n")
    env.write_tasks({"task_id": "local", "script_path": "local.sh", "schedule": "daily at 03:00"})
    clock = FakeClock(datetime(2026, 1, 10, 8, 0, 7, tzinfo=UTC))
    core = Core(env.home, clock)
    core.open()
    core.sync(core.load_specs())
    task = parse_message(
        "2002", message(schedule="every_15_minutes", next_run="2026-01-10T09:15:00"), "42", BERLIN
    )
    assert task is not None
    core.sync([to_spec(task, BERLIN)], source="discord")
    discord_task = store.get_task("discord-2002")
    assert discord_task.next_run == datetime(
        2026, 1, 10, 8, 15, tzinfo=UTC
    )  # the message's next_run (Berlin)
    schedule = core.schedule_of(discord_task)
    following = schedule.next_after(discord_task.next_run, discord_task.anchor)
    assert following == discord_task.next_run + timedelta(minutes=15)  # from next_run, not from 08:00:07
    core.sync(core.load_specs())  # a tasks.json reload keeps the Discord task
    assert not store.get_task("discord-2002").removed
    core.sync([], source="discord")  # the message is gone: its task goes, the local one stays
    assert store.get_task("discord-2002").removed and not store.get_task("local").removed


def test_tasks_json_may_not_take_a_discord_id(env: Env) -> None:
    env.script("x.sh", "true\n")
    env.write_tasks({"task_id": "discord-1", "script_path": "x.sh", "schedule": "hourly"})
    result = env.cli("check")
    assert result.returncode == 3 and "belong to Discord Tasks-Channel tasks" in result.stderr


def test_a_config_reload_keeps_the_daemons_discord_specs(env: Env) -> None:
    from moltbot.daemon import Daemon

    env.script("local.sh", "true\n")
    env.write_tasks({"task_id": "local", "script_path": "local.sh", "schedule": "daily at 03:00"})
    core = Core(env.home, FakeClock(datetime(2026, 1, 10, 8, 0, tzinfo=UTC)))
    core.open()
    specs = core.load_specs()
    core.sync(specs)
    daemon = Daemon(core, specs)
    task = parse_message("3003", message(schedule="hourly"), "42", BERLIN)
    assert task is not None
    daemon.sources.set("discord", [to_spec(task, BERLIN)])
    daemon.reload()
    assert set(daemon.specs) == {"local", "discord-3003"}
    daemon.stopping.set()
    daemon.shutdown()
