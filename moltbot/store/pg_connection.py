"""PostgreSQL under the store's one door: the same SQL as SQLite, the same transactions.

Imported only when the database is a ``postgresql://`` URL (psycopg2 costs ~10 ms to import;
``moltbot status`` on SQLite never pays it). The store writes its SQL once, with ``?``
placeholders; psycopg2 takes ``%s`` and reads every ``%`` as the start of one (even inside a quoted
``LIKE 'discord-%'``), so each query text is translated once and cached.

Connections are in autocommit: a read outside a write transaction is its own statement and leaves no
transaction open on the server. A write transaction takes the advisory lock ``WRITER_LOCK`` first:
writers on every node take turns, exactly as on one SQLite file (``BEGIN IMMEDIATE``), so a read,
decide, write sequence inside one transaction needs no other reasoning on PostgreSQL. The cost is
one lock per write transaction; moltbot's writes are small and few (benchmarks/bench_cluster.py).
The lock is a transaction-level one: the server frees it at COMMIT, at ROLLBACK, and when the
session dies, so a node killed or cut off mid-transaction cannot hold the others up for longer
than ``idle_in_transaction_session_timeout`` and the keepalives below.
"""

from __future__ import annotations

import select
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions

if TYPE_CHECKING:
    from moltbot.config.database import PostgresTarget

__all__ = ["WRITER_LOCK", "PgConnection", "begin_write", "is_transient", "translate"]

# Advisory lock keys (one 64-bit space per database): 'mbwr' in ASCII.
WRITER_LOCK = 0x6D627772
CONNECT_TIMEOUT_SECONDS = 5
# A write that waits longer than SQLite's busy timeout for the writer lock fails as "locked"
# (transient: the loop backs off, database_outage.py).
LOCK_TIMEOUT_MS = 15_000
# A node cut off inside a transaction holds the writer lock until the server gives up on it.
IDLE_IN_TRANSACTION_MS = 5_000
# Unacknowledged data on the socket for this long: the server is gone (a pulled cable, not a refusal).
TCP_USER_TIMEOUT_MS = 10_000
# No statement of the store's takes long; one that does (a server in trouble) fails as transient.
STATEMENT_TIMEOUT_MS = 60_000
_TRANSIENT_STATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "25P03",  # idle_in_transaction_session_timeout
}


@lru_cache(maxsize=1024)
def translate(query: str) -> str:
    """``?`` outside quoted literals becomes ``%s``; every ``%`` becomes ``%%``."""
    out: list[str] = []
    quoted = False
    for char in query:
        if char == "'":
            quoted = not quoted  # '' inside a literal toggles twice: still inside
            out.append(char)
        elif char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


class PgConnection:
    """A psycopg2 connection that runs the store's SQLite-style SQL (``execute`` returns the cursor)."""

    def __init__(self, raw: psycopg2.extensions.connection) -> None:
        self.raw = raw

    @classmethod
    def open(cls, target: PostgresTarget, application: str = "moltbot") -> PgConnection:
        options = (
            f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} -c TimeZone=UTC"
        )
        raw = psycopg2.connect(
            **target.connect_arguments(),
            application_name=application,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            options=options,
        )
        raw.autocommit = True
        return cls(raw)

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(translate(query), params)
        return cursor

    def close(self) -> None:
        if not self.raw.closed:
            self.raw.close()

    def notifications(self, timeout: float) -> list[str]:
        """The channels notified since the last call, waiting up to ``timeout`` for one (this
        connection LISTENs; the wait is a select on its socket, no polling)."""
        if not self.raw.notifies:
            select.select([self.raw], [], [], timeout)
        self.raw.poll()
        channels = [notice.channel for notice in self.raw.notifies]
        self.raw.notifies.clear()
        return channels


def begin_write(conn: Any) -> None:
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))
    except BaseException:
        if not conn.closed:
            conn.execute("ROLLBACK")
        raise


def is_transient(error: BaseException) -> bool:
    """A lost or refused connection, a lock or statement timeout, a deadlock: try again later."""
    if isinstance(error, psycopg2.InterfaceError):
        return True  # the connection is closed
    if not isinstance(error, psycopg2.Error):
        return False
    state = error.pgcode or ""
    return (
        state in _TRANSIENT_STATES
        or state.startswith("08")
        or (isinstance(error, psycopg2.OperationalError) and not state)
    )
