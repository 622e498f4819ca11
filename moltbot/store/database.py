"""Opening the database: WAL mode, the schema check, migrations when behind (PostgreSQL too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from moltbot.store.connection import (
    BUSY_TIMEOUT_SECONDS,
    SCHEMA_VERSION,
    connection,
    database_path,
    is_postgresql,
    use_target,
    writers_held,
)

if TYPE_CHECKING:
    from moltbot.config.database import PostgresTarget

__all__ = ["checkpoint_wal", "open_db", "restart_wal", "schema_version", "wal_bytes"]

# The WAL file's layout (sqlite.org/fileformat.html): a header, then per page a frame header and the page.
WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24


def open_db(target: Path | PostgresTarget) -> None:
    """Use the database at ``target`` (created and migrated as needed) from now on: a SQLite file,
    or PostgreSQL (config/database.py)."""
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
    use_target(target)
    conn = connection()
    if not is_postgresql():
        conn.execute("PRAGMA journal_mode = wal")  # kept in the file; set once per process is plenty
    version = schema_version()
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{target} has schema {version}; this moltbot knows up to {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        from moltbot.store.schema import migrate  # Peewee, only when there is something to create

        migrate()


def schema_version() -> int:
    if is_postgresql():
        # A table of one row (PostgreSQL has no user_version); none yet: an empty database.
        exists = connection().execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        row = connection().execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])
    return int(connection().execute("PRAGMA user_version").fetchone()[0])


def checkpoint_wal() -> int:
    """Copy the WAL into the database without blocking writers (PASSIVE); how many
    bytes of the WAL are in use (written since it last started over).

    It never makes SQLite start the WAL over: that happens only when a write
    *begins* after a checkpoint copied all of it, and while commits keep coming
    one always begins first (``restart_wal``). PostgreSQL: nothing to do (0).
    """
    if is_postgresql():
        return 0
    conn = connection()
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames <= 0:  # -1: not in WAL mode
        return 0
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(WAL_HEADER_BYTES + frames * (page_size + FRAME_HEADER_BYTES))


def wal_bytes() -> int:
    """The size of the WAL file (0 when there is none, and on PostgreSQL)."""
    if is_postgresql():
        return 0
    try:
        return (database_path().parent / (database_path().name + "-wal")).stat().st_size
    except FileNotFoundError:
        return 0


def restart_wal(truncate: bool = False) -> bool:
    """Copy what is left of the WAL into the database, so that the next write starts the
    WAL over from its top (``truncate``: also cut the file to nothing, which frees its
    blocks at a cost that grows with its size); False when someone was in the way (a
    reader still in the WAL, another process writing): nothing is lost, try again later.

    This process's writers are held meanwhile: the next one begins with all of
    the WAL copied, which is what SQLite needs to start it over. Other processes
    are not waited for (busy timeout 0): a long ``sqlite3 .backup`` must not
    stall the daemon's writers, which wait behind this. After a passive
    checkpoint there is little left to copy. PostgreSQL: nothing to do (True).
    """
    if is_postgresql():
        return True
    conn = connection()
    with writers_held():
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            mode = "TRUNCATE" if truncate else "RESTART"
            busy, _, _ = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
    return not busy
