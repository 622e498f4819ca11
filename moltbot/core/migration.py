"""``moltbot migrate --to postgresql://…``: a home's SQLite database copied into PostgreSQL, so an
owner can grow to several nodes without losing history (store/copy.py does the copying)."""

from __future__ import annotations

import os

from moltbot import store
from moltbot.config.database import PASSWORD_SECRET, PostgresTarget, database_url_problem
from moltbot.config.home import Home
from moltbot.config.secrets import secret
from moltbot.core.lock import daemon_pid
from moltbot.store.copy import TableCopy, copy_sqlite, target_has_tasks

__all__ = ["MigrationRefused", "migrate_to_postgresql"]


class MigrationRefused(Exception):
    """Why nothing was copied, and what to do."""


def migrate_to_postgresql(home: Home, url: str) -> list[TableCopy]:
    # The command line is visible to every user of the host (ps): never a password there.
    problem = database_url_problem(url)
    if problem is not None:
        raise MigrationRefused(f"--to {problem}")
    if not home.db_path.exists():
        raise MigrationRefused(f"{home.db_path} does not exist: nothing to copy")
    pid = daemon_pid(home.lock_path)
    if pid is not None:
        raise MigrationRefused(
            f"the daemon (pid {pid}) is running on {home.db_path}: stop it first "
            "(systemctl stop moltbot), so that nothing changes while it is copied"
        )
    store.open_db(home.db_path)  # brought to this version's schema first: the copy is of today's tables
    store.open_db(PostgresTarget(url, secret(PASSWORD_SECRET, os.environ)))
    if target_has_tasks():
        raise MigrationRefused("the PostgreSQL database already has tasks: copy only into an empty one")
    return copy_sqlite(home.db_path)
