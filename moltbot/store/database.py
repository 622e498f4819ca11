"""Opening the database file: WAL mode, the schema check, migrations when behind."""

from __future__ import annotations

from pathlib import Path

from moltbot.store.connection import SCHEMA_VERSION, connection, use_path

__all__ = ["checkpoint_wal", "open_db", "schema_version"]


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


def checkpoint_wal() -> None:
    """Copy the WAL into the database without blocking writers (PASSIVE)."""
    connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
