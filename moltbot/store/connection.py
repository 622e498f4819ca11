"""The store's connection: one connection per thread, write transactions, commit hooks.

Every other module of the store runs its SQL through ``sql()`` on this
thread's connection, so one transaction can span them all. Write
transactions start ``IMMEDIATE``: a deferred transaction that later upgrades
to a write lock gets SQLITE_BUSY at once instead of waiting, which the daemon
and a concurrent CLI would otherwise hit. Times are stored as fixed-width UTC
strings (``2026-11-23T09:00:00.000000Z``): readable with the sqlite3 shell,
and sortable as text, so ordering and indexes work on them.

PostgreSQL (several nodes on one database, #15) takes the same SQL through ``pg_connection.py``,
which translates its placeholders; a write transaction there first takes one advisory lock, so
writers take turns across every node as they do on one SQLite file, and every guarantee reasoned
about on SQLite (read, decide, write in one transaction) holds unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from moltbot.config.database import PostgresTarget

__all__ = [
    "SCHEMA_VERSION",
    "after_commit",
    "background_checkpoints",
    "connection",
    "database_path",
    "database_target",
    "from_db",
    "insert_id",
    "is_locked_error",
    "is_open",
    "is_postgresql",
    "listen",
    "listen_for_outbox",
    "note_outbox_write",
    "notifications",
    "notify",
    "outbox_may_have_changed",
    "sql",
    "to_db",
    "use_path",
    "use_target",
    "write_transaction",
    "writers_held",
]

# The schema version this code writes (store/schema.py has one migration per version).
SCHEMA_VERSION = 10

# SQLite's busy timeout: how long a write waits for another process's lock before
# it fails with "database is locked" (the daemon's loop then backs off: database_outage.py).
BUSY_TIMEOUT_SECONDS = 15.0
SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: a commit checkpoints past this many WAL pages

_path: Path | None = None
_postgres: PostgresTarget | None = None
_local = threading.local()
# Threads of one process take turns here rather than in SQLite: a writer
# that finds the database locked sleeps in SQLite's busy handler for
# milliseconds at a time, which showed up directly as firing lateness.
_writer = threading.RLock()
# The daemon checkpoints the WAL on a thread of its own (wal_checkpoints.py); a
# checkpoint inside a commit on the loop thread stalled run starts by
# milliseconds (benchmarks/: p99 lateness 6.3 -> 3 ms).
_auto_checkpoint = True
_after_commit: Callable[[], None] | None = None
# Told after a commit that queued outgoing messages (the outbox workers wait on it).
_outbox_listeners: list[Callable[[], None]] = []


class Cursor(Protocol):
    """What ``sql()`` returns on either backend (sqlite3's cursor, psycopg2's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, query: str, params: tuple[Any, ...] = ..., /) -> Any: ...


def use_path(path: Path) -> None:
    """From now on, every thread's connection is to the database at ``path``."""
    use_target(path)


def use_target(target: Path | PostgresTarget) -> None:
    """From now on, every thread's connection is to ``target`` (a SQLite file or PostgreSQL)."""
    global _path, _postgres
    if isinstance(target, Path):
        _path, _postgres = target, None
    else:
        _path, _postgres = None, target


def is_postgresql() -> bool:
    return _postgres is not None


def is_locked_error(error: BaseException) -> bool:
    """Whether ``error`` is transient: another process held the database beyond the busy timeout,
    or (PostgreSQL) the server was out of reach or cancelled the statement; the same statement
    succeeds later (on PostgreSQL the thread reconnects first)."""
    if type(error).__module__.startswith("psycopg2"):
        from moltbot.store.pg_connection import is_transient

        return is_transient(error)
    if not isinstance(error, sqlite3.OperationalError):
        return False
    text = str(error)
    return "database is locked" in text or "database is busy" in text


def is_open() -> bool:
    """Whether a database was chosen (``store.open_db``) in this process."""
    return _path is not None or _postgres is not None


def connection() -> sqlite3.Connection:
    """This thread's connection to the current database (opened on first use)."""
    if _postgres is not None:
        return _pg_connection(_postgres)
    if _path is None:
        raise RuntimeError("the store is not open (call store.open_db first)")
    if getattr(_local, "path", None) != _path:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (and so does no one else).
        # timeout: SQLite's busy timeout, for the CLI and the daemon writing at once.
        fresh = sqlite3.connect(str(_path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        fresh.execute("PRAGMA synchronous = normal")  # WAL + NORMAL survives a process crash
        if not _auto_checkpoint:
            fresh.execute("PRAGMA wal_autocheckpoint = 0")
        fresh.execute("PRAGMA foreign_keys = 1")
        _local.path, _local.conn, _local.depth = _path, fresh, 0
    conn: sqlite3.Connection = _local.conn
    return conn


def _pg_connection(target: PostgresTarget) -> sqlite3.Connection:
    from moltbot.store.pg_connection import PgConnection

    current = getattr(_local, "conn", None)
    if getattr(_local, "path", None) != target or not isinstance(current, PgConnection) or current.closed:
        if _local.__dict__.get("depth"):
            # The connection was lost inside a transaction: it is gone with it (the caller's
            # error says so); a new one must not pretend to continue it.
            raise RuntimeError("the database connection was lost inside a transaction")
        if isinstance(current, PgConnection):
            current.close()
        _local.path, _local.conn, _local.depth = target, PgConnection.open(target), 0
    conn: sqlite3.Connection = _local.conn
    return conn


def close_this_thread() -> None:
    """Close this thread's connection, if it has one (the next use opens a new one)."""
    current = getattr(_local, "conn", None)
    if current is not None:
        current.close()
    _local.path = _local.conn = None
    _local.depth = 0


def database_path() -> Path:
    if _path is None:
        raise RuntimeError("the store is not open (call store.open_db first)")
    return _path


def database_target() -> Path | PostgresTarget:
    if _postgres is not None:
        return _postgres
    return database_path()


def sql(query: str, params: tuple[Any, ...] = ()) -> Cursor:
    return connection().execute(query, params)


def notify(channel: str) -> None:
    """PostgreSQL: wake the nodes that listen on ``channel`` (inside a transaction: at its commit,
    and not at all if it rolls back). Nothing on SQLite: one daemon, woken by a signal."""
    if _postgres is not None:
        sql("SELECT pg_notify(?, '')", (channel,))


def listen(channels: tuple[str, ...]) -> None:
    """PostgreSQL: this thread's connection hears ``channels`` from now on (``notifications``)."""
    for channel in channels:
        sql(f"LISTEN {channel}")


def notifications(timeout: float) -> list[str]:
    """The channels this thread's connection heard since the last call (waiting up to ``timeout``)."""
    notified: list[str] = connection().notifications(timeout)  # type: ignore[attr-defined]
    return notified


def insert_id(query: str, params: tuple[Any, ...] = ()) -> int | None:
    """Run an ``INSERT`` of one row into a table with an ``id``; that id (None when an
    ``ON CONFLICT DO NOTHING`` inserted nothing)."""
    if _postgres is not None:
        row = sql(query + " RETURNING id", params).fetchone()
        return None if row is None else int(row[0])
    cursor = connection().execute(query, params)
    return cursor.lastrowid if cursor.rowcount == 1 else None


def background_checkpoints(after_commit: Callable[[], None] | None) -> None:
    """From now on, commits in this process never checkpoint the WAL themselves;
    ``after_commit`` is told of each commit, and the caller checkpoints. None:
    they do again (SQLite's default), on connections opened from now on and this thread's."""
    global _auto_checkpoint, _after_commit
    _auto_checkpoint, _after_commit = after_commit is None, after_commit
    if getattr(_local, "path", None) is not None and _postgres is None:
        pages = SQLITE_AUTOCHECKPOINT_PAGES if after_commit is None else 0
        _local.conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")


@contextmanager
def writers_held() -> Iterator[None]:
    """This process's writers wait until the block ends (outside any transaction).

    They wait on the writer lock, which hands over at once, rather than in
    SQLite's busy handler, which sleeps whole milliseconds at a time.
    """
    with _writer:
        yield


@contextmanager
def write_transaction() -> Iterator[None]:
    """One IMMEDIATE transaction; a nested use is a savepoint inside it.

    The daemon records a batch of run ends and claims in one transaction (one
    commit per loop pass, not two per run); the savepoints keep each item
    all-or-nothing when one of them fails.
    """
    with _writer:
        conn = connection()
        if _local.depth:
            savepoint = f"s{_local.depth}"
            conn.execute(f"SAVEPOINT {savepoint}")
            _local.depth += 1
            # What a rolled-back savepoint asked for at commit is forgotten with it.
            registered = len(getattr(_local, "after_commit", []))
            outbox_written = getattr(_local, "outbox_written", False)
            try:
                yield
            except BaseException:
                _unless_lost(conn, f"ROLLBACK TO {savepoint}")
                _local.after_commit = getattr(_local, "after_commit", [])[:registered]
                _local.outbox_written = outbox_written
                raise
            finally:
                _local.depth -= 1
                _unless_lost(conn, f"RELEASE {savepoint}")
            return
        if _postgres is not None:
            from moltbot.store.pg_connection import begin_write

            begin_write(conn)
        else:
            conn.execute("BEGIN IMMEDIATE")
        _local.depth = 1
        try:
            yield
        except BaseException:
            _rollback(conn)
            raise
        else:
            conn.execute("COMMIT")
            if _after_commit is not None:
                _after_commit()
            if getattr(_local, "outbox_written", False):
                _local.outbox_written = False
                outbox_may_have_changed()
            callbacks, _local.after_commit = getattr(_local, "after_commit", []), []
            for callback in callbacks:
                callback()
        finally:
            _local.depth = 0
            _local.outbox_written = False
            _local.after_commit = []


def _unless_lost(conn: sqlite3.Connection, statement: str) -> None:
    """Run ``statement``, unless the PostgreSQL connection is gone (and the transaction with it)."""
    if _postgres is None or not getattr(conn, "closed", False):
        conn.execute(statement)


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the transaction; on PostgreSQL a lost connection is closed instead (the server
    rolled it back), and the caller's error is what propagates."""
    try:
        conn.execute("ROLLBACK")
    except Exception:
        if _postgres is None:
            raise
        conn.close()


def listen_for_outbox(listener: Callable[[], None], listen: bool = True) -> None:
    """Call ``listener`` after each commit that queued an outgoing message (``listen=False``: stop)."""
    if listen:
        _outbox_listeners.append(listener)
    elif listener in _outbox_listeners:
        _outbox_listeners.remove(listener)


def outbox_may_have_changed() -> None:
    """Another process (a task's run) may have queued messages: tell the listeners."""
    for listener in list(_outbox_listeners):
        listener()


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current transaction commits (now, outside one).

    Waking the daemon inside a transaction would let it look before the
    change is visible, and then sleep through it.
    """
    if getattr(_local, "depth", 0):
        _local.after_commit = [*getattr(_local, "after_commit", []), callback]
    else:
        callback()


def note_outbox_write() -> None:
    """Inside a write transaction: it queues a message (the listeners hear at commit)."""
    _local.outbox_written = True


def to_db(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; times must be aware")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
