"""``moltbot migrate --to postgresql://…``: a populated SQLite home copied into PostgreSQL (#15)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from moltbot import store
from moltbot.config.database import PostgresTarget
from tests.conftest import Env

TABLES = ("task", "run", "event", "checkpoint", "outbox", "meta")


def _populated(env: Env) -> None:
    env.script("ok.sh", 'echo "done $MOLTBOT_RUN_ID"\nmoltbot checkpoint save \'{"at": 3}\'\n')
    env.script("bad.sh", "echo oops >&2\nexit 3\n")
    env.write_tasks(
        {"task_id": "ok", "script_path": "ok.sh", "schedule": "every 1h"},
        {"task_id": "bad", "script_path": "bad.sh", "schedule": "daily at 03:00"},
    )
    for task in ("ok", "ok", "bad"):
        env.cli("run", task)
    env.cli("notify", "disk at 91%", check=True)


def _sqlite_counts(env: Env) -> dict[str, int]:
    with closing(sqlite3.connect(env.home.db_path)) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def test_migrate_copies_every_table_and_the_copy_compares_equal(
    env: Env, pg_database: PostgresTarget
) -> None:
    _populated(env)
    before = _sqlite_counts(env)
    assert before["run"] == 3 and before["event"] >= 6 and before["checkpoint"] == 1 and before["outbox"] >= 1

    result = env.cli("migrate", "--to", pg_database.url)
    assert result.returncode == 0, result.stderr
    assert "✗" not in result.stdout and "run" in result.stdout and "copied and compared" in result.stdout

    store.open_db(pg_database)
    for table in TABLES:
        (count,) = store.connection().execute(f"SELECT count(*) FROM {table}").fetchone()
        assert count == before[table] - (1 if table == "meta" and _has_health(env) else 0), table
    ok_runs = [(r.status, r.exit_code) for r in store.recent_runs("ok", 10)]
    assert ok_runs == [("success", 0), ("success", 0)]
    assert store.load_checkpoint("ok") == '{"at": 3}'
    # New rows continue after the copied ids.
    with store.write_transaction():
        store.add_event(store.from_db("2030-01-01T00:00:00.000000Z"), "ok", "note", "after the copy")  # type: ignore[arg-type]

    again = env.cli("migrate", "--to", pg_database.url)
    assert again.returncode == 1 and "already has tasks" in again.stderr


def _has_health(env: Env) -> bool:
    with closing(sqlite3.connect(env.home.db_path)) as conn:
        return bool(conn.execute("SELECT count(*) FROM meta WHERE key = 'health'").fetchone()[0])


def test_migrate_refuses_a_password_on_the_command_line_and_a_running_daemon(
    env: Env, pg_database: PostgresTarget, start_daemon
) -> None:  # type: ignore[no-untyped-def]
    _populated(env)
    with_password = pg_database.url.replace("postgres@", "postgres:hunter2@")
    refused = env.cli("migrate", "--to", with_password)
    assert refused.returncode == 2 and "MOLTBOT_DATABASE_PASSWORD" in refused.stderr
    assert "hunter2" not in refused.stderr + refused.stdout

    start_daemon()
    busy = env.cli("migrate", "--to", pg_database.url)
    assert busy.returncode == 1 and "stop it first" in busy.stderr
