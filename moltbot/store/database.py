"""Opening the database file: WAL mode, the schema check, migrations when behind."""

from __future__ import annotations

from pathlib import Path

from moltbot.store.connection import (
    BUSY_TIMEOUT_SECONDS,
    SCHEMA_VERSION,
    connection,
    database_path,
    use_path,
    writers_held,
)

__all__ = ["checkpoint_wal", "open_db", "restart_wal", "schema_version", "wal_bytes"]

# The WAL file's layout (sqlite.org/fileformat.html): a header, then per page a frame header and the page.
WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24


def open_db(path: Path) -> None:
    """Use the database at ``path`` (created and migrated as needed) from now on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    use_path(path)
    conn = connection()
    conn.execute("PRAGMA journal_mode = wal")  # kept in the file; set once per process is plenty
    version = schema_version()
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema {version}; this moltbot knows up to {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        from moltbot.store.schema import migrate  # Peewee, only when there is something to create

        migrate()


def schema_version() -> int:
    return int(connection().execute("PRAGMA user_version").fetchone()[0])


def checkpoint_wal() -> int:
    """Copy the WAL into the database without blocking writers (PASSIVE); how many
    bytes of the WAL are in use (written since it last started over).

    It never makes SQLite start the WAL over: that happens only when a write
    *begins* after a checkpoint copied all of it, and while commits keep coming
    one always begins first (``restart_wal``).
    """
    conn = connection()
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames <= 0:  # -1: not in WAL mode
        return 0
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(WAL_HEADER_BYTES + frames * (page_size + FRAME_HEADER_BYTES))


def wal_bytes() -> int:
    """The size of the WAL file (0 when there is none)."""
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
    checkpoint there is little left to copy.
    """
    conn = connection()
    with writers_held():
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            mode = "TRUNCATE" if truncate else "RESTART"
            busy, _, _ = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
    return not busy
