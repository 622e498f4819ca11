"""People: who may command moltbot on Signal, from moltbot.toml and from pairing.

``moltbot pair`` opens a one-time code (``CODE_LENGTH`` characters of an alphabet without
look-alikes, valid ``PAIRING_MINUTES``); the first sender who messages it to the bot, 1:1, is
paired: an allowed admin (commands and alerts), kept in the database (``store/people.py``),
on top of ``[signal] allowed`` and ``admins``, which stay as they are. The bridge and the
questions read ``signal_settings()``: moltbot.toml's section with the paired people added, so
a pairing or a removal counts from the next message on, with no restart or reload.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from moltbot import store
from moltbot.clock import Clock
from moltbot.records import PairedPerson, Pairing, Watcher

if TYPE_CHECKING:
    from moltbot.config.integrations import SignalSettings
    from moltbot.config.settings import Settings

__all__ = ["CODE_LENGTH", "PAIRING_MINUTES", "Listed", "People", "UnknownPerson", "shown"]

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a screen, typed on a phone
CODE_LENGTH = 8  # 31**8: about 2**40, against at most MOST_WRONG guesses per code
PAIRING_MINUTES = 10
MOST_WRONG = 5  # wrong codes while one is open: then it is closed (a stranger is guessing)
MAX_CODE_MESSAGE = 40  # characters: a longer message is no code, and is not looked at further
_NOT_CODE = re.compile(r"[^0-9A-Z]")


class UnknownPerson(LookupError):
    """No paired person by that number, UUID or prefix; ``suggestion``: the closest, if any."""


class Listed(NamedTuple):
    """One person as ``moltbot people`` shows them: their addresses and where each role comes from."""

    number: str | None
    uuid: str | None
    roles: tuple[str, ...]  # allowed, viewer, admin (gets alerts)
    source: str  # "moltbot.toml" or "paired on …"


def shown(number: str | None, uuid: str | None) -> str:
    """``+49…0001 / 0b0e…``: enough to recognise someone, not to copy their address."""
    parts = [f"{number[:3]}…{number[-4:]}" if number else "", f"{uuid[:4]}…" if uuid else ""]
    return " / ".join(part for part in parts if part)


def code_in(text: str) -> str | None:
    """The code a message carries (``4KX9-QF7M``, ``pair 4kx9qf7m``, with a phone's punctuation),
    or None. Bounded first: a long message is not read."""
    if len(text) > MAX_CODE_MESSAGE:
        return None
    letters = _NOT_CODE.sub("", text.upper())
    letters = letters.removeprefix("PAIR")
    if len(letters) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in letters):
        return None
    return letters


class People:
    def __init__(self, clock: Clock, settings: Callable[[], Settings]) -> None:
        self.clock = clock
        self._settings = settings

    # --- pairing ----------------------------------------------------------------------------

    def open_pairing(self, by: str) -> tuple[str, Pairing]:
        """A new code (shown once, kept only as a salted hash) and its record."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        salt = secrets.token_hex(16)
        now = self.clock.now()
        until = now + timedelta(minutes=PAIRING_MINUTES)
        pairing = store.add_pairing(salt, _hash(salt, code), now, until, by)
        return f"{code[:4]}-{code[4:]}", pairing

    def pairing(self, pairing_id: int) -> Pairing | None:
        return store.get_pairing(pairing_id)

    def cancel(self, pairing_id: int, outcome: str = "cancelled") -> bool:
        return store.close_pairing(pairing_id, self.clock.now(), outcome)

    def pair(
        self,
        text: str,
        uuid: str,
        number: str | None,
        reply_to: Watcher,
        in_group: bool = False,
        admins: Callable[[], Sequence[Watcher]] = tuple,
    ) -> PairedPerson | None:
        """A message from someone not allowed: if it is an open code, they are paired (once), told
        so, and the admins hear of it, in one transaction. None: not a code, or a wrong one (counted).
        A right code sent to a group pairs nobody, and is spent: everyone in the group has read it.
        ``admins``: who hears of it, as they were before (an alert would reach the newcomer too);
        asked only when someone is paired: most strangers' messages are no code."""
        code = code_in(text)
        now = self.clock.now()
        pairings = store.open_pairings(now) if code else []
        if code is None or not pairings:
            return None
        match = next((p for p in pairings if hmac.compare_digest(_hash(p.salt, code), p.code_hash)), None)
        if match is None:
            for pairing in pairings:
                store.wrong_code(pairing.id, now, MOST_WRONG)
            return None
        if in_group:
            store.close_pairing(match.id, now, "sent in a group")
            return None
        told = admins()  # before the newcomer is one of them
        with store.write_transaction():
            person = store.pair_person(match.id, uuid, number, now)
            if person is not None:
                who = shown(number, uuid)
                welcome = f"paired ✓ {who}. You can now command moltbot; send help."
                store.enqueue_message(reply_to, welcome, now)
                for admin in told:
                    store.enqueue_message(admin, f"🔗 paired: {who} (by moltbot pair)", now)
        return person

    # --- who is who -------------------------------------------------------------------------

    def paired(self) -> list[PairedPerson]:
        return store.paired_people()

    def signal_settings(self) -> SignalSettings | None:
        """``[signal]`` as configured now, with the paired people (``with_paired``)."""
        signal = self._settings().signal
        return None if signal is None else self.with_paired(signal)

    def with_paired(self, signal: SignalSettings) -> SignalSettings:
        """``signal`` with the paired people added: allowed, admins (when admins are listed), and
        each as a pair of number and UUID when the number is known (so the number counts only
        with that UUID). A linked device is its owner's alone: nobody is added."""
        people = [] if signal.linked_device else store.paired_people()
        if not people:
            return signal
        addresses = tuple(a for person in people for a in (person.uuid, person.number) if a)
        pairs = tuple((person.number, person.uuid) for person in people if person.number)
        return dataclasses.replace(
            signal,
            allowed=(*signal.allowed, *addresses),
            pairs=(*signal.pairs, *pairs),
            admins=(*signal.admins, *(person.uuid for person in people)) if signal.admins else (),
        )

    def listed(self) -> list[Listed]:
        """Everyone who may command or gets alerts: moltbot.toml's entries, then the paired."""
        signal = self._settings().signal
        found: list[Listed] = []
        if signal is not None:
            uuid_of = dict(signal.pairs)
            number_of = {uuid: number for number, uuid in signal.pairs}
            people: dict[str, list[str]] = {}
            for role, addresses in (("allowed", signal.allowed), ("viewer", signal.viewers),
                                    ("admin", signal.alert_recipients)):  # fmt: skip
                for address in addresses:
                    key = uuid_of.get(address, address)
                    people.setdefault(key, [])
                    if role not in people[key]:
                        people[key].append(role)
            for key, roles in people.items():
                is_uuid = key not in uuid_of and not key.startswith("+")
                number = number_of.get(key) if is_uuid else key
                found.append(Listed(number, key if is_uuid else None, tuple(roles), "moltbot.toml"))
        for person in store.paired_people():
            source = f"paired on {person.paired_at:%Y-%m-%d}"
            found.append(Listed(person.number, person.uuid, ("allowed", "admin"), source))
        return found

    def remove(self, who: str) -> tuple[PairedPerson, bool]:
        """Unpair the person ``who`` names (number, UUID, or a UUID's prefix); with whether
        moltbot.toml still allows them. UnknownPerson (with the closest) when nobody is."""
        people = store.paired_people()
        wanted = who.strip().lower()
        found = [p for p in people if wanted in (p.uuid, (p.number or "").lower())]
        if not found and len(wanted) >= 4:
            found = [p for p in people if p.uuid.startswith(wanted)]
        if len(found) != 1:
            signal = self._settings().signal
            if not found and signal is not None and who.strip() in (*signal.allowed, *signal.viewers):
                raise UnknownPerson(f"{who} is listed in moltbot.toml, not paired: edit [signal] there")
            if found:
                raise UnknownPerson(f"{who!r} names {len(found)} paired people; give more of the UUID")
            names = [a for p in people for a in (p.uuid, p.number) if a]
            close = difflib.get_close_matches(who, names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownPerson(f"nobody paired is {who!r}{hint} (moltbot people lists them)")
        person = found[0]
        store.remove_person(person.id)
        signal = self._settings().signal
        config = (*signal.allowed, *signal.viewers) if signal is not None else ()
        return person, person.uuid in config or (person.number is not None and person.number in config)


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()
