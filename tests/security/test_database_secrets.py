"""The PostgreSQL password (#15): never in moltbot.toml, on a command line, in a log, or handed to a
task as a value; a task run as the daemon's user gets the file's path, as with every secret."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from moltbot.config.database import PostgresTarget
from tests.conftest import Env, wait_until

PASSWORD = "hunter2-db-secret"


def test_a_password_in_moltbot_toml_is_refused_where_it_is_and_not_repeated(env: Env) -> None:
    env.write_tasks(settings=f'[daemon]\ndatabase = "postgresql://moltbot:{PASSWORD}@db.lan/moltbot"\n')
    result = env.cli("check")
    assert result.returncode == 3
    assert "moltbot.toml:2" in result.stderr and "database" in result.stderr
    assert "MOLTBOT_DATABASE_PASSWORD" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    status = env.cli("status")  # every command refuses it before connecting anywhere
    assert status.returncode == 3 and PASSWORD not in status.stdout + status.stderr


def test_a_url_that_is_not_postgresql_says_what_is_expected(env: Env) -> None:
    env.write_tasks(settings='[daemon]\ndatabase = "mysql://moltbot@db.lan/moltbot"\n')
    result = env.cli("status")
    assert result.returncode == 3 and "expected a postgresql:// URL" in result.stderr


def test_a_task_gets_the_password_file_not_the_password(
    env: Env, pg_database: PostgresTarget, start_daemon, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    secret_file = tmp_path / "db-password"
    secret_file.write_text(PASSWORD + "\n")
    secret_file.chmod(0o600)
    dump = _dumping_task(env, pg_database, tmp_path)
    daemon = start_daemon(MOLTBOT_DATABASE_PASSWORD_FILE=str(secret_file))
    seen = json.loads(wait_until(lambda: dump.exists() and dump.read_text(), what="the task's environment"))
    assert seen["MOLTBOT_DATABASE_URL"] == pg_database.url
    assert seen["MOLTBOT_DATABASE_PASSWORD_FILE"] == str(secret_file)
    assert PASSWORD not in json.dumps(seen)
    assert daemon.stop() == 0
    assert PASSWORD not in daemon.output()


def test_a_password_in_the_query_string_is_refused_and_masked(env: Env) -> None:
    from moltbot.config.database import redacted

    env.write_tasks(
        settings=f'[daemon]\ndatabase = "postgresql://moltbot@db.lan/moltbot?password={PASSWORD}"\n'
    )
    result = env.cli("check")
    assert result.returncode == 3 and "MOLTBOT_DATABASE_PASSWORD" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert PASSWORD not in redacted(
        f"postgresql://moltbot@db.lan/moltbot?sslmode=require&password={PASSWORD}"
    )
    assert PASSWORD not in redacted(f"postgresql://moltbot:{PASSWORD}@db.lan/moltbot")


def test_a_password_given_as_a_variable_reaches_neither_a_task_nor_the_fence_keeper(
    env: Env, pg_database: PostgresTarget, start_daemon, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dump = _dumping_task(env, pg_database, tmp_path)
    daemon = start_daemon(MOLTBOT_DATABASE_PASSWORD=PASSWORD, DISCORD_BOT_TOKEN="a-discord-token")
    seen = json.loads(wait_until(lambda: dump.exists() and dump.read_text(), what="the task's environment"))
    assert seen["MOLTBOT_DATABASE_URL"] == pg_database.url and PASSWORD not in json.dumps(seen)
    keepers = [
        pid for pid in os.listdir("/proc")
        if pid.isdigit() and b"moltbot.fence_keeper" in _read(f"/proc/{pid}/cmdline")
    ]  # fmt: skip
    assert keepers, "the daemon's fence keeper"
    for pid in keepers:
        environ = _read(f"/proc/{pid}/environ")
        assert PASSWORD.encode() not in environ and b"a-discord-token" not in environ
    assert daemon.stop() == 0


def _dumping_task(env: Env, database: PostgresTarget, folder: Path) -> Path:
    """A one-shot in a second that writes its environment as JSON (the file it will write)."""
    dump = folder / "task-env.json"
    script = f"import json, os\njson.dump(dict(os.environ), open('{dump}.tmp', 'w'))\n"
    script += f"os.rename('{dump}.tmp', '{dump}')\n"  # whole or not at all for the reader
    env.script("dump.sh", "#!/usr/bin/env python3\n" + script)
    env.write_tasks({"task_id": "dump", "script_path": "dump.sh", "schedule": "in 1 seconds"})
    env.database = database
    return dump


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def test_an_unreachable_server_is_said_plainly_without_the_password(env: Env) -> None:
    env.database = PostgresTarget("postgresql://moltbot@127.0.0.1:1/moltbot")  # nothing listens there
    result = env.cli("status")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "cannot reach the database postgresql://moltbot@127.0.0.1:1/moltbot" in result.stderr
    with_password = env.environ | {
        "MOLTBOT_DATABASE_URL": f"postgresql://moltbot:{PASSWORD}@127.0.0.1:1/moltbot"
    }
    result = subprocess.run(
        env.cli_argv("status"), env=with_password, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3 and PASSWORD not in result.stdout + result.stderr
