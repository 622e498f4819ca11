"""Copying a SQLite database into PostgreSQL (``moltbot migrate --to``): every table, row for row.

The store is open on the PostgreSQL target (its schema made there); the SQLite file is read on a
connection of its own. Values go over as they are (times are the same fixed-width UTC text on both),
except SQLite's 0/1 booleans, which become PostgreSQL's. One transaction: a copy that fails halfway
leaves the target empty. The identity sequences then continue after the copied ids. Both sides are
then read back, and each table's rows compared by count and by a hash of the rows in key order.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from moltbot.store.connection import connection, sql, write_transaction

__all__ = ["TableCopy", "copy_sqlite", "target_has_tasks"]

_BATCH = 1000
# Per-daemon state that a new database must not inherit (the next daemon writes its own).
_SKIPPED_META = ("health",)


class TableCopy(NamedTuple):
    table: str
    source_rows: int
    target_rows: int
    same: bool  # the rows hash the same on both sides


def target_has_tasks() -> bool:
    return bool(sql("SELECT count(*) FROM task").fetchone()[0])


def _tables(source: sqlite3.Connection) -> list[str]:
    rows = source.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return sorted(row[0] for row in rows)


def _columns(table: str) -> dict[str, str]:
    """The target table's columns and their types, in order."""
    rows = sql(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return {name: kind for name, kind in rows}


def _order(columns: list[str]) -> str:
    return "id" if "id" in columns else ", ".join(columns)


def _where(table: str) -> str:
    return f" WHERE key NOT IN ({', '.join(repr(k) for k in _SKIPPED_META)})" if table == "meta" else ""


def _rows(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    while batch := cursor.fetchmany(_BATCH):
        yield batch


def copy_sqlite(path: Path) -> list[TableCopy]:
    """Copy every table of the SQLite file at ``path`` into the open (empty) PostgreSQL store."""
    from psycopg2.extras import execute_values

    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [table for table in _tables(source) if _columns(table)]
        with write_transaction():
            raw = connection().raw  # type: ignore[attr-defined]
            for table in tables:
                target = _columns(table)
                names = [row[1] for row in source.execute(f"PRAGMA table_info({table})") if row[1] in target]
                booleans = {i for i, name in enumerate(names) if target[name] == "boolean"}
                query = f"SELECT {', '.join(names)} FROM {table}{_where(table)} ORDER BY {_order(names)}"
                insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES %s"
                with raw.cursor() as cursor:
                    for batch in _rows(source.execute(query)):
                        values = [
                            tuple(
                                bool(v) if i in booleans and v is not None else v for i, v in enumerate(row)
                            )
                            for row in batch
                        ]
                        execute_values(cursor, insert, values, page_size=_BATCH)
                if "id" in names:
                    sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
        return [_compare(source, table) for table in tables]
    finally:
        source.close()


def _digest(rows: Iterator[list[tuple[Any, ...]]]) -> tuple[int, str]:
    count, digest = 0, hashlib.sha256()
    for batch in rows:
        for row in batch:
            count += 1
            # 0/1 and False/True, 2.5 and 2.5: the same value on both sides.
            digest.update(repr(tuple(int(v) if isinstance(v, bool) else v for v in row)).encode())
    return count, digest.hexdigest()


def _compare(source: sqlite3.Connection, table: str) -> TableCopy:
    target = _columns(table)
    names = [row[1] for row in source.execute(f"PRAGMA table_info({table})") if row[1] in target]
    query = f"SELECT {', '.join(names)} FROM {table}{_where(table)} ORDER BY {_order(names)}"
    source_count, source_hash = _digest(_rows(source.execute(query)))
    with connection().raw.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(query.replace("%", "%%"))
        target_count, target_hash = _digest(_rows(cursor))
    return TableCopy(table, source_count, target_count, source_hash == target_hash)
