"""Daemon sessions: which node runs what, and (PostgreSQL) the lease that says it is still alive.

Every daemon start opens a session (a row); the runs it starts carry its id and its node's name. On
PostgreSQL the session holds a lease, renewed by its node (cluster.py) and judged by the server's
clock alone (a node's clock may be wrong; all nodes share the server's). A session whose lease ran
out is settled by any other node: its runs are interrupted and re-run per their ``missed`` policy,
the session ended. The run id is the fencing token: a run's end is recorded only while it is still
``running`` in the session that started it (store/runs.py), so a node that comes back after its
runs were settled changes nothing. A new session per start: a restart under the same name never
revives an old lease.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from moltbot.store.connection import from_db, insert_id, is_postgresql, notify, sql, to_db, write_transaction

__all__ = [
    "CREATE_SESSIONS",
    "REQUESTS_CHANNEL",
    "Session",
    "current_node",
    "current_session",
    "end_session",
    "expired_sessions",
    "live_sessions",
    "open_session",
    "renew_lease",
    "try_leadership",
    "use_node",
    "wake_nodes",
]

CREATE_SESSIONS = (
    "CREATE TABLE IF NOT EXISTS daemon_session (id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, started_at TEXT NOT NULL, lease_until TEXT, "
    "ended_at TEXT, ended_how TEXT)",
)
# The server's clock as the store writes times (fixed-width UTC text: it compares with the columns).
_FORMAT = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
SERVER_NOW = f"to_char(clock_timestamp() AT TIME ZONE 'UTC', {_FORMAT})"
_SERVER_LATER = f"to_char((clock_timestamp() + make_interval(secs => ?)) AT TIME ZONE 'UTC', {_FORMAT})"

_node = ""
_session: int | None = None


class Session(NamedTuple):
    id: int
    node: str
    host: str
    pid: int
    started_at: datetime
    lease_until: datetime | None


def use_node(node: str) -> None:
    """This process's node name (recorded on the runs it starts), before it opens a session."""
    global _node
    _node = node


def current_node() -> str:
    return _node


def current_session() -> int | None:
    return _session


def open_session(node: str, host: str, pid: int, now: datetime, lease_seconds: float) -> int:
    """A new session for this daemon (its lease starts now on PostgreSQL)."""
    global _node, _session
    lease = _SERVER_LATER if is_postgresql() else "NULL"
    params = (node, host, pid, to_db(now), *((lease_seconds,) if is_postgresql() else ()))
    with write_transaction():
        session = insert_id(
            "INSERT INTO daemon_session (node, host, pid, started_at, lease_until) "
            f"VALUES (?, ?, ?, ?, {lease})",
            params,
        )
    assert session is not None
    _node, _session = node, session
    return session


def renew_lease(session: int, lease_seconds: float) -> bool:
    """PostgreSQL: extend the lease (one statement, no writer lock: a renewal never waits behind
    another node's transaction); False when it had run out or the session was settled meanwhile."""
    # The server gives up on the statement before the next renewal is due (cluster.py renews every sixth).
    sql(f"SET statement_timeout = {int(lease_seconds / 6 * 1000)}")
    cursor = sql(
        f"UPDATE daemon_session SET lease_until = {_SERVER_LATER} "
        f"WHERE id = ? AND ended_at IS NULL AND lease_until > {SERVER_NOW}",
        (lease_seconds, session),
    )
    return cursor.rowcount == 1


REQUESTS_CHANNEL = "moltbot_requests"  # NOTIFY: queued runs, stops, pauses (cluster.py listens)


def wake_nodes() -> None:
    """PostgreSQL: every node's daemon looks at the queue (inside a transaction: at its commit)."""
    notify(REQUESTS_CHANNEL)


LEADER_LOCK = 0x6D626C64  # 'mbld': held by the node that does the work one node does for all


def try_leadership() -> bool:
    """PostgreSQL: take the leader lock on this thread's connection, if no other session holds it.
    It is the session's: the server frees it when the connection ends (a dead node's included)."""
    return bool(sql("SELECT pg_try_advisory_lock(?)", (LEADER_LOCK,)).fetchone()[0])


def end_session(session: int, now: datetime, how: str) -> None:
    global _session
    with write_transaction():
        sql(
            "UPDATE daemon_session SET ended_at = ?, ended_how = ? WHERE id = ? AND ended_at IS NULL",
            (to_db(now), how, session),
        )
    if session == _session:
        _session = None


_COLUMNS = "id, node, host, pid, started_at, lease_until"


def _session_of(row: tuple[object, ...]) -> Session:
    id_, node, host, pid, started_at, lease_until = row
    started = from_db(str(started_at))
    assert started is not None
    return Session(int(str(id_)), str(node), str(host), int(str(pid)), started, from_db(lease_until))  # type: ignore[arg-type]


def expired_sessions() -> list[Session]:
    """PostgreSQL: sessions not ended whose lease the server's clock says ran out."""
    rows = sql(
        f"SELECT {_COLUMNS} FROM daemon_session "
        f"WHERE ended_at IS NULL AND lease_until < {SERVER_NOW} ORDER BY id"
    )
    return [_session_of(row) for row in rows]


def live_sessions() -> list[Session]:
    """Sessions not ended (on PostgreSQL: with a lease still running), oldest first."""
    lease = f" AND lease_until >= {SERVER_NOW}" if is_postgresql() else ""
    rows = sql(f"SELECT {_COLUMNS} FROM daemon_session WHERE ended_at IS NULL{lease} ORDER BY id")
    return [_session_of(row) for row in rows]
