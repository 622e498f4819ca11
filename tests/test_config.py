"""Config loading: the original format, the extensions, and errors that say where."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest

from moltbot.config.errors import ConfigError
from moltbot.config.settings import load_settings
from moltbot.config.tasks import load_tasks
from moltbot.kinds import kind_of
from tests.conftest import Env

UTC_ZONE = ZoneInfo("UTC")


def load(env: Env):  # type: ignore[no-untyped-def]
    return load_tasks(env.home.tasks_json, env.home.tasks_dir, UTC_ZONE)


def problems(env: Env) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(env)
    return [str(problem) for problem in caught.value.problems]


def test_the_original_format_loads_unchanged(env: Env) -> None:
    env.script("scrape-all.sh", "echo scraping\n")
    env.home.tasks_json.write_text(
        """{
  "tasks": [
    {
      "task_id": "scrape-all",
      "name": "Web Scraper",
      "script_path": "scrape-all.sh",
      "interval_minutes": 60,
      "enabled": true,
      "priority": 5
    }
  ]
}
"""
    )
    (spec,) = load(env)
    assert (spec.task_id, spec.name, spec.schedule_text, spec.priority) == (
        "scrape-all",
        "Web Scraper",
        "every 60m",
        5,
    )
    assert (spec.timeout_seconds, spec.overlap, spec.missed, spec.notify) == (
        300.0,
        "skip",
        "once",
        "failure",
    )


def test_the_extended_fields(env: Env) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks(
        {
            "task_id": "job",
            "name": "Job",
            "script_path": "job.sh",
            "schedule": "weekdays at 07:30",
            "timezone": "Europe/Berlin",
            "timeout_seconds": 12.5,
            "retries": 2,
            "retry_backoff_seconds": 5,
            "overlap": "queue",
            "missed": "all",
            "args": ["--verbose"],
            "env": {"TARGET": "nas"},
            "description": "d",
            "notify": "always",
        }
    )
    (spec,) = load(env)
    assert spec.timezone.key == "Europe/Berlin" and spec.schedule_key == "weekdays at 07:30@Europe/Berlin"
    assert (spec.kind, spec.retries, spec.overlap, spec.missed, dict(spec.env)) == (
        "script",
        2,
        "queue",
        "all",
        {"TARGET": "nas"},
    )
    assert kind_of(spec.kind).command(spec, env.home) == [str(env.home.tasks_dir / "job.sh"), "--verbose"]


def test_invalid_json_names_the_line(env: Env) -> None:
    env.home.tasks_json.write_text('{\n  "tasks": [\n    {"task_id": "a",}\n  ]\n}\n')
    (problem,) = problems(env)
    assert problem.startswith(f"{env.home.tasks_json}:3:21: invalid JSON")


def test_each_problem_names_file_line_and_field(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.script("not-executable.sh", "true\n", executable=False)
    env.write_tasks(
        {"task_id": "a", "script_path": "ok.sh", "interval_minutes": 5, "intreval_minutes": 3},
        {"task_id": "b", "script_path": "missing.sh", "schedule": "daily at 9"},
        {
            "task_id": "c",
            "script_path": "not-executable.sh",
            "schedule": "every 1h",
            "timezone": "Mars/Olympus",
        },
        {"task_id": "a", "script_path": "ok.sh", "schedule": "every 1h"},
        {"task_id": "d", "script_path": "../../etc/passwd", "schedule": "every 1h", "priority": "high"},
        {"task_id": "e", "script_path": "ok.sh", "schedule": "every 1h", "overlap": "parallel"},
    )
    found = problems(env)
    expected = {
        "tasks[0].intreval_minutes (a)": "unknown field 'intreval_minutes' (did you mean 'interval_minutes'",
        "tasks[1].script_path (b)": "script not found",
        "tasks[1].schedule (b)": "unknown schedule 'daily at 9'",
        "tasks[2].timezone (c)": "unknown IANA zone 'Mars/Olympus'",
        "tasks[2].script_path (c)": "script is not executable",
        "tasks[3].task_id (a)": "duplicate task_id 'a' (first at tasks[0])",
        "tasks[4].priority (d)": 'expected int, got "high"',
        "tasks[4].script_path (d)": "'../../etc/passwd' resolves outside",
        "tasks[5].overlap (e)": "expected one of skip, queue, got 'parallel'",
    }
    assert len(found) == len(expected), found
    file_lines = env.home.tasks_json.read_text().splitlines()
    for problem in found:
        match = re.fullmatch(r"(.+):(\d+): (tasks\[\d\]\.(\w+) \(\w\)): (.+)", problem)
        assert match, problem
        path, line, label, field, message = match.groups()
        assert path == str(env.home.tasks_json)
        assert message.startswith(expected[label]), (label, message)
        # The reported line is the one holding that field of that task.
        assert f'"{field}"' in file_lines[int(line) - 1], (problem, file_lines[int(line) - 1])


def test_an_absolute_script_path_may_live_elsewhere(env: Env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "elsewhere.sh"
    outside.write_text("#!/bin/sh\ntrue\n")
    outside.chmod(0o755)
    env.write_tasks({"task_id": "x", "script_path": str(outside), "schedule": "every 1h"})
    (spec,) = load(env)
    assert kind_of(spec.kind).command(spec, env.home) == [str(outside)]


def test_schedule_and_interval_together_is_an_error(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks({"task_id": "a", "script_path": "ok.sh", "schedule": "every 1h", "interval_minutes": 5})
    (problem,) = problems(env)
    assert "give either 'schedule' or 'interval_minutes'" in problem


def test_settings_defaults_and_errors(env: Env) -> None:
    assert load_settings(env.home.settings_toml).workers == 4  # no file: defaults
    env.home.settings_toml.write_text(
        '[daemon]\ntimezone = "Europe/Berlin"\nworkers = 2\n\n[signal]\nurl = "http://127.0.0.1:8080/"\n'
        'number = "+4915100000000"\nallowed = ["+4915100000001"]\n'
    )
    settings = load_settings(env.home.settings_toml)
    assert settings.signal is not None
    assert (settings.timezone.key, settings.workers, settings.signal.url) == (
        "Europe/Berlin",
        2,
        "http://127.0.0.1:8080",
    )
    assert settings.signal.alert_recipients == ("+4915100000001",)  # admins default to the allowed
    env.home.settings_toml.write_text(
        '[daemon]\nworkers = 0\nwrokers = 3\ntimezone = "Nowhere"\n\n[sginal]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(env.home.settings_toml)
    text = str(caught.value)
    assert f"{env.home.settings_toml}:2: daemon.workers: must be positive" in text
    assert (
        f"{env.home.settings_toml}:3: daemon.wrokers: unknown field 'wrokers' (did you mean 'workers'?)"
        in text
    )
    assert f"{env.home.settings_toml}:4: daemon.timezone: unknown IANA zone 'Nowhere'" in text
    assert f"{env.home.settings_toml}:6: sginal: unknown section 'sginal' (did you mean 'signal'?)" in text


def test_signal_section_errors_name_line_and_field(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.home.settings_toml.write_text(
        '[signal]\nnumber = "015100000000"\nallowed = ["+4915100000001", "alice"]\n'
        "linked_device = 1\nmax_command_age = 60\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(env.home.settings_toml)
    text, path = str(caught.value), env.home.settings_toml
    assert f"{path}:2: signal.number: the bot's registered number in E.164 form" in text
    assert (
        f"{path}:3: signal.allowed: expected E.164 numbers, UUIDs or [number, UUID] pairs, got 'alice'"
        in text
    )
    assert f"{path}:4: signal.linked_device: expected bool, got 1" in text
    assert f"{path}:5: signal.max_command_age: unknown field" in text and "max_command_age_seconds" in text
    # The environment overrides the file (per-host values, kept out of shared config).
    monkeypatch.setenv("SIGNAL_NUMBER", "+4915100000009")
    monkeypatch.setenv("SIGNAL_API_URL", "http://127.0.0.1:9999")
    path.write_text(
        '[signal]\nnumber = "+4915100000000"\nallowed = ["0B0E0A2C-1111-2222-3333-444455556666"]\n'
    )
    signal = load_settings(path).signal
    assert signal is not None
    assert (signal.number, signal.url) == ("+4915100000009", "http://127.0.0.1:9999")
    assert signal.allowed == ("0b0e0a2c-1111-2222-3333-444455556666",)  # UUIDs compare lower-case


def test_check_command_reports_and_exits_nonzero(env: Env) -> None:
    env.write_tasks({"task_id": "a", "script_path": "nope.sh", "schedule": "every 1h"})
    result = env.cli("check")
    assert result.returncode == 3
    assert "script not found" in result.stderr and "1 problem(s) found" in result.stderr
    env.script("nope.sh", "true\n")
    ok = env.cli("check")
    assert ok.returncode == 0 and "1 tasks OK" in ok.stdout


def test_discord_and_ollama_sections(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    path = env.home.settings_toml
    path.write_text('[discord]\ntasks_channel_id = "12"\npoll_seconds = 0\ntimezone = "Mars/Base"\n\n'
                    '[ollama]\nmodel = 3\nhots = "x"\n')  # fmt: skip
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TASKS_CHANNEL_ID", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert f"{path}:2: discord.tasks_channel_id: expected a Discord id (digits), got '12'" in text
    assert f"{path}:3: discord.poll_seconds: must be positive" in text
    assert f"{path}:4: discord.timezone: unknown IANA zone 'Mars/Base'" in text
    assert f"{path}:7: ollama.model: expected str, got 3" in text
    assert f"{path}:8: ollama.hots: unknown field 'hots' (did you mean 'host'?)" in text
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "secret-token")
    monkeypatch.setenv("TASKS_CHANNEL_ID", "700000000000000001")  # the original's variable names work
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")
    path.write_text("[discord]\n\n[ollama]\n")
    settings = load_settings(path)
    assert settings.discord is not None and settings.ollama is not None
    assert settings.discord.tasks_channel_id == "700000000000000001"
    assert settings.discord.timezone.key == "Europe/Berlin" and "secret-token" not in repr(settings.discord)
    assert settings.ollama.host == "http://10.0.0.5:11434"


def test_llm_tasks_need_a_prompt_and_a_known_destination(env: Env) -> None:
    env.write_tasks(
        {"task_id": "ask", "kind": "llm", "prompt": "hi", "schedule": "hourly",
         "deliver_to": "discord:123456789012345678"},
        {"task_id": "bad", "kind": "llm", "schedule": "hourly", "deliver_to": "email:me",
         "script_path": "x.sh"},
        {"task_id": "odd", "kind": "robot", "script_path": "x.sh", "schedule": "hourly"},
    )  # fmt: skip
    result = env.cli("check")
    assert result.returncode == 3
    assert "tasks[1] (bad): missing required field 'prompt'" in result.stderr
    assert "deliver_to (bad): expected 'signal:admins' or 'discord:<channel id>'" in result.stderr
    assert "script_path (bad): an llm task has a prompt, not a script" in result.stderr
    assert "kind (odd): expected 'script', 'llm' or 'playbook', got 'robot'" in result.stderr
    assert "(ask)" not in result.stderr


def test_the_discord_authorization_settings(env: Env) -> None:
    path = env.home.settings_toml
    tasks, heartbeat, owner = "700000000000000001", "700000000000000003", "900000000000000005"
    path.write_text(f'[discord]\ntasks_channel_id = "{tasks}"\nallowed_authors = ["me"]\n'
                    f'allowed_targets = ["{tasks}"]\nmin_interval_seconds = 0\nmax_tasks = 1.5\n'
                    'allowed_author = []\n')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert f"{path}:3: discord.allowed_authors: expected Discord ids (digits), got 'me'" in text
    assert f"{path}:4: discord.allowed_targets: the Tasks Channel cannot be a target" in text
    assert f"{path}:5: discord.min_interval_seconds: must be positive" in text
    assert f"{path}:6: discord.max_tasks: expected int, got 1.5" in text
    assert (
        f"{path}:7: discord.allowed_author: unknown field 'allowed_author' (did you mean 'allowed_authors'?)"
        in text
    )
    path.write_text(f'[discord]\ntasks_channel_id = "{tasks}"\nheartbeat_log_channel_id = "{heartbeat}"\n'
                    f'default_user_id = "{owner}"\n')  # fmt: skip
    defaults = load_settings(path).discord
    assert defaults is not None
    assert (defaults.allowed_authors, defaults.min_interval_seconds, defaults.max_tasks) == ((), 60, 100)
    assert defaults.targets == (heartbeat, owner)  # where the original's tasks go without a target
    path.write_text(f'[discord]\ntasks_channel_id = "{tasks}"\nheartbeat_log_channel_id = "{heartbeat}"\n'
                    f'allowed_authors = [{owner}]\nallowed_targets = []\n')  # fmt: skip
    given = load_settings(path).discord
    assert given is not None and given.allowed_authors == (owner,) and given.targets == ()


# --- syntax errors: line, column and a hint for the usual mistakes (#14) -----------------------

ENTRY = '  {"task_id": "a", "script_path": "a.sh", "schedule": "hourly"}'


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        (
            '{"tasks": [\n' + ENTRY + ",\n]}\n",
            ":3:1: ",
            "a comma before ']': JSON allows none after the last item",
        ),
        ('{"tasks": [\n  {"task_id": a}\n]}\n', ":2:15: ", 'text needs double quotes: "a"'),
        ("{'tasks': []}\n", ":1:2: ", "JSON strings take double quotes, not single ones"),
        ('{"tasks": [\n' + ENTRY + "\n" + ENTRY + "\n]}\n", ":3:3: ", "a comma is missing before this"),
    ],
)
def test_a_json_syntax_error_names_line_column_and_the_likely_mistake(
    env: Env, text: str, where: str, hint: str
) -> None:
    env.home.tasks_json.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_tasks(env.home.tasks_json, env.home.tasks_dir, ZoneInfo("UTC"))
    message = str(caught.value)
    assert message.startswith(f"{env.home.tasks_json}{where}invalid JSON: "), message
    assert hint in message, message


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("[daemon]\ntimezone = Europe/Berlin\n", ":2:12: ", 'text needs quotes: "Europe/Berlin"'),
        ("[daemon]\nworkers = 2,\n", ":2:12: ", "a comma after a value: TOML has them only inside [ ]"),
    ],
)
def test_a_toml_syntax_error_names_line_column_and_the_likely_mistake(
    env: Env, text: str, where: str, hint: str
) -> None:
    env.home.settings_toml.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(env.home.settings_toml)
    message = str(caught.value)
    assert message.startswith(f"{env.home.settings_toml}{where}invalid TOML: "), message
    assert hint in message, message
    assert "(at line" not in message  # said once, in front


def test_problems_are_listed_in_file_order(env: Env) -> None:
    env.home.settings_toml.write_text("[daemon]\nworkerz = 2\n\n[bogus]\nx = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env.home.settings_toml)
    assert [problem.line for problem in caught.value.problems] == [2, 4], caught.value


def test_a_huge_duration_and_approve_with_a_chain_are_refused(env: Env) -> None:
    # Review of #13: a duration past datetime's range crashed the daemon's dead-man check; a chained
    # run of an approve task was queued without asking.
    env.script("a.sh", "true\n")
    env.write_tasks(
        {"task_id": "a", "script_path": "a.sh", "schedule": "hourly",
         "expect_success_within": "999999d999999d999999d999999d"},
        {"task_id": "b", "script_path": "a.sh", "after": ["a"], "approve": True},
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_tasks(env.home.tasks_json, env.home.tasks_dir, ZoneInfo("UTC"))
    text = str(caught.value)
    assert "tasks[0].expect_success_within (a): " in text and "at most 3660d" in text
    assert "tasks[1].approve (b): cannot be combined with after/after_failure" in text


def test_check_prints_the_problems_in_file_order(env: Env) -> None:
    # The problems were sorted, but the message printed was made from the list as found.
    env.home.tasks_json.write_text(
        '{\n  "tasks": [\n    {"task_id": "a", "script_path": "nope.sh",\n     "schdule": "every 1h"},\n'
        '    {"task_id": "b", "script_path": "nope.sh", "schedule": "every 1h",\n     "colour": 1}\n  ]\n}\n'
    )
    checked = env.cli("check")
    lines = [int(line.split(":")[1]) for line in checked.stderr.splitlines() if "tasks.json:" in line]
    assert len(lines) >= 4 and lines == sorted(lines), checked.stderr
