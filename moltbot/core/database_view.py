"""The Core's view of its database: which one, whether the daemon's is still the file at the path,
and which nodes share it (a part of ``Core``, kept apart: api.py stays readable in one sitting)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from moltbot import store
from moltbot.clock import Clock
from moltbot.config.database import redacted
from moltbot.config.home import Home, HomeError
from moltbot.core.lock import daemon_pid
from moltbot.records import Node

if TYPE_CHECKING:
    from moltbot.config.database import PostgresTarget

__all__ = ["DatabaseView"]


class DatabaseView:
    home: Home
    clock: Clock
    # Whether this daemon does the work one node does for all (the Discord channel's sync): the
    # holder of the leader lock among several nodes (cluster.py); always, on one box.
    leads: Callable[[], bool] = staticmethod(lambda: True)

    def open(self, create_home: bool = True) -> None:
        """Open the database; first create the home's layout (and the bundled examples) if missing."""
        if create_home:
            self.home.ensure()
        target = self.database_target()
        try:
            store.open_db(target)
        except Exception as exc:
            if isinstance(target, Path) or not store.is_locked_error(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HomeError(
                f"cannot reach the database {target}: {redacted(first)}",
                "check that PostgreSQL runs and takes this node (pg_hba.conf), the URL, and the password "
                "(MOLTBOT_DATABASE_PASSWORD_FILE or the credential)",
            ) from None

    def daemon_pid(self) -> int | None:
        return daemon_pid(self.home.lock_path)

    def database_target(self) -> Path | PostgresTarget:
        """This home's database (config/database.py); HomeError when its URL or password is unusable."""
        from moltbot.config.database import database_target
        from moltbot.config.secrets import SecretError

        try:
            return database_target(self.home)
        except (ValueError, SecretError) as exc:
            raise HomeError(str(exc), "README: Two boxes on one PostgreSQL") from None

    def check_database(self) -> int:
        """Write to the database (raises when it cannot); its schema version."""
        store.set_meta("doctor", self.clock.now().isoformat())
        return store.schema_version()

    def nodes(self) -> list[Node]:
        """The daemons sharing this database (PostgreSQL; none listed on SQLite: one box, one daemon)."""
        if not store.is_postgresql():
            return []
        return [Node(s.node, s.host, s.started_at) for s in store.live_sessions()]

    def database_split(self) -> str | None:
        """Why the running daemon's database is not the file this home's path names (deleted or
        replaced under it); None when it is, or no daemon runs."""
        from moltbot.core.database_identity import split

        if not isinstance(self.database_target(), Path):
            return None  # a server's database: no file to replace under the daemon
        pid = self.daemon_pid()
        return split(self.home, pid) if pid and pid > 0 else None
