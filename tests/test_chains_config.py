"""Chains in tasks.json: `after` and `after_failure` checked in `moltbot check` (file, line, field)."""

from __future__ import annotations

import re

from tests.conftest import Env


def check(env: Env) -> list[str]:
    """`moltbot check`'s problems, as printed (exit 3 when there are any)."""
    result = env.cli("check")
    lines = [line for line in result.stderr.splitlines() if str(env.home.tasks_json) in line]
    assert (result.returncode == 3) == bool(lines), result
    return lines


def located(env: Env, problem: str, field: str) -> None:
    """The problem names the file, the line holding ``field`` of that task, and the field."""
    match = re.match(rf"{re.escape(str(env.home.tasks_json))}:(\d+): tasks\[\d+\]\.{field} ", problem)
    assert match, problem
    assert f'"{field}"' in env.home.tasks_json.read_text().splitlines()[int(match[1]) - 1], problem


def test_a_chained_task_needs_no_schedule_and_check_accepts_it(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "ok.sh", "schedule": "daily at 03:00"},
        {"task_id": "upload", "script_path": "ok.sh", "after": ["backup"]},
        {"task_id": "cleanup", "script_path": "ok.sh", "after": ["upload"], "after_failure": ["backup"]},
    )
    result = env.cli("check")
    assert result.returncode == 0, result.stderr
    assert "3 tasks OK" in result.stdout


def test_unknown_self_and_discord_references_are_refused_with_line_and_field(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "ok.sh", "schedule": "every 1h"},
        {"task_id": "upload", "script_path": "ok.sh", "after": ["bakup"]},
        {"task_id": "loop", "script_path": "ok.sh", "after_failure": ["loop"]},
        {"task_id": "post", "script_path": "ok.sh", "after": ["discord-123"]},
        {"task_id": "bad", "script_path": "ok.sh", "after": "backup"},
        {"task_id": "never", "script_path": "ok.sh"},
    )
    found = check(env)
    assert len(found) == 5, found
    upload, loop, post, bad, never = found
    assert "tasks[1].after (upload): unknown task 'bakup' (did you mean 'backup'?)" in upload
    located(env, upload, "after")
    assert "tasks[2].after_failure (loop): a task cannot run after itself" in loop
    located(env, loop, "after_failure")
    assert "Discord Tasks-Channel tasks cannot be chained" in post
    located(env, post, "after")
    assert 'expected a list of task ids, got "backup"' in bad
    located(env, bad, "after")
    assert "missing 'schedule' (or 'after', 'after_failure', or the original 'interval_minutes')" in never


def test_a_cycle_is_an_error_naming_the_cycle(env: Env) -> None:
    env.script("ok.sh", "true\n")
    env.write_tasks(
        {"task_id": "backup", "script_path": "ok.sh", "schedule": "every 1h", "after_failure": ["upload"]},
        {"task_id": "upload", "script_path": "ok.sh", "after": ["backup"]},
        {"task_id": "a", "script_path": "ok.sh", "after": ["c"]},
        {"task_id": "b", "script_path": "ok.sh", "after": ["a"]},
        {"task_id": "c", "script_path": "ok.sh", "after": ["b"]},
    )
    first, second = check(env)
    assert "tasks[0].after_failure (backup): cycle: backup → upload → backup" in first
    located(env, first, "after_failure")
    assert "tasks[2].after (a): cycle: a → b → c → a" in second
    located(env, second, "after")
