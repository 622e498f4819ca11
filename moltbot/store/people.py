"""Paired people in the store, and the one-time codes that pair them.

A code is kept only as a salted hash: whoever reads the database cannot pair with it. It is
consumed by a conditional update (open, not expired), in the transaction that adds the person,
so two senders racing with the right code cannot both be paired; too many wrong codes while it
is open close it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from moltbot.records import PairedPerson, Pairing
from moltbot.store.connection import from_db, insert_id, sql, to_db, write_transaction

__all__ = [
    "CREATE_PEOPLE",
    "add_pairing",
    "close_pairing",
    "get_pairing",
    "open_pairings",
    "pair_person",
    "paired_people",
    "remove_person",
    "wrong_code",
]

CREATE_PEOPLE = (
    "CREATE TABLE IF NOT EXISTS person (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, "
    "number TEXT, paired_at TEXT NOT NULL, paired_by TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pairing (id INTEGER PRIMARY KEY AUTOINCREMENT, salt TEXT NOT NULL, "
    "code_hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, created_by TEXT NOT NULL, "
    "wrong INTEGER NOT NULL DEFAULT 0, closed_at TEXT, outcome TEXT, person_id INTEGER)",
)
_PAIRING = "id, salt, code_hash, created_at, expires_at, created_by, wrong, closed_at, outcome, person_id"
_PERSON = "id, uuid, number, paired_at"


def add_pairing(salt: str, code_hash: str, now: datetime, expires_at: datetime, created_by: str) -> Pairing:
    with write_transaction():
        new_id = insert_id(
            "INSERT INTO pairing (salt, code_hash, created_at, expires_at, created_by) "
            "VALUES (?, ?, ?, ?, ?)",
            (salt, code_hash, to_db(now), to_db(expires_at), created_by),
        )
        found = get_pairing(new_id or 0)
    assert found is not None
    return found


def get_pairing(pairing_id: int) -> Pairing | None:
    row = sql(f"SELECT {_PAIRING} FROM pairing WHERE id = ?", (pairing_id,)).fetchone()
    return _pairing(row) if row else None


def open_pairings(now: datetime) -> list[Pairing]:
    """Codes that may still pair someone, newest first."""
    rows = sql(
        f"SELECT {_PAIRING} FROM pairing WHERE closed_at IS NULL AND expires_at > ? ORDER BY id DESC",
        (to_db(now),),
    ).fetchall()
    return [_pairing(row) for row in rows]


def pair_person(pairing_id: int, uuid: str, number: str | None, now: datetime) -> PairedPerson | None:
    """Consume the code and keep the person, in one transaction; None: the code was closed meanwhile."""
    with write_transaction():
        taken = sql(
            "UPDATE pairing SET closed_at = ?, outcome = 'paired' "
            "WHERE id = ? AND closed_at IS NULL AND expires_at > ?",
            (to_db(now), pairing_id, to_db(now)),
        )
        if taken.rowcount != 1:
            return None
        sql(
            "INSERT INTO person (uuid, number, paired_at, paired_by) VALUES (?, ?, ?, 'moltbot pair') "
            "ON CONFLICT (uuid) DO UPDATE SET number = excluded.number, paired_at = excluded.paired_at",
            (uuid, number, to_db(now)),
        )
        row = sql(f"SELECT {_PERSON} FROM person WHERE uuid = ?", (uuid,)).fetchone()
        sql("UPDATE pairing SET person_id = ? WHERE id = ?", (row[0], pairing_id))
    return _person(row)


def wrong_code(pairing_id: int, now: datetime, most: int) -> bool:
    """A wrong code while this one was open; True when that was one too many (the code is closed)."""
    with write_transaction():
        sql("UPDATE pairing SET wrong = wrong + 1 WHERE id = ? AND closed_at IS NULL", (pairing_id,))
        closed = sql(
            "UPDATE pairing SET closed_at = ?, outcome = 'too many wrong codes' "
            "WHERE id = ? AND closed_at IS NULL AND wrong >= ?",
            (to_db(now), pairing_id, most),
        )
        return closed.rowcount == 1


def close_pairing(pairing_id: int, now: datetime, outcome: str) -> bool:
    with write_transaction():
        closed = sql(
            "UPDATE pairing SET closed_at = ?, outcome = ? WHERE id = ? AND closed_at IS NULL",
            (to_db(now), outcome, pairing_id),
        )
        return closed.rowcount == 1


def paired_people() -> list[PairedPerson]:
    rows = sql(f"SELECT {_PERSON} FROM person ORDER BY id").fetchall()
    return [_person(row) for row in rows]


def remove_person(person_id: int) -> bool:
    with write_transaction():
        return sql("DELETE FROM person WHERE id = ?", (person_id,)).rowcount == 1


def _pairing(row: tuple[Any, ...]) -> Pairing:
    created, expires = from_db(row[3]), from_db(row[4])
    assert created is not None and expires is not None
    return Pairing(row[0], row[1], row[2], created, expires, row[5], row[6], from_db(row[7]), row[8], row[9])


def _person(row: tuple[Any, ...]) -> PairedPerson:
    paired_at = from_db(row[3])
    assert paired_at is not None
    return PairedPerson(row[0], row[1], row[2], paired_at)
