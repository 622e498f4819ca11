"""A pairing code pairs one person, once, within its ten minutes, 1:1 (#14): one test per attack.

The core's pairing (``core/people.py``) on a real SQLite store with an injected clock (expiry,
guessing, racing, reading the database), and through the daemon and the fake gateway what a
stranger can try from a phone (a group, a long message)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from moltbot.clock import FakeClock
from moltbot.core import Core, Watcher
from moltbot.core.people import MOST_WRONG, PAIRING_MINUTES, code_in
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import GROUP, bot, replies, say, signal_toml

__all__ = ["bot"]
NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
STRANGER, STRANGER_UUID = "+4915100000666", "6e6e0a2c-1111-4222-8333-444455556666"
OTHER_UUID = "7f7f0a2c-1111-4222-8333-444455556666"
CHAT = Watcher("signal", STRANGER)


@pytest.fixture
def core(env: Env, gateway: FakeGateway) -> Core:
    env.write_tasks(settings=signal_toml(gateway))
    opened = Core(env.home, FakeClock(NOW))
    opened.open()
    return opened


def test_the_database_keeps_no_usable_code(core: Core, env: Env) -> None:
    code, _ = core.people.open_pairing("cli:owner")
    rows = sqlite3.connect(env.home.db_path).execute("SELECT * FROM pairing").fetchall()
    assert rows and not any(code in str(row) or code.replace("-", "") in str(row) for row in rows)


def test_a_code_expires_after_ten_minutes(core: Core) -> None:
    code, _ = core.people.open_pairing("cli:owner")
    assert isinstance(core.clock, FakeClock)
    core.clock.advance(minutes=PAIRING_MINUTES, seconds=1)
    assert core.people.pair(f"pair {code}", STRANGER_UUID, STRANGER, CHAT) is None
    assert core.people.paired() == []


def test_a_code_pairs_once_and_a_race_has_one_winner(core: Core) -> None:
    code, _ = core.people.open_pairing("cli:owner")
    first = core.people.pair(code, STRANGER_UUID, STRANGER, CHAT)
    assert first is not None and first.uuid == STRANGER_UUID
    assert core.people.pair(code, OTHER_UUID, None, CHAT) is None  # the same code again
    assert [person.uuid for person in core.people.paired()] == [STRANGER_UUID]


def test_guessing_closes_the_code_before_it_can_be_found(core: Core) -> None:
    code, pairing = core.people.open_pairing("cli:owner")
    wrong = "2222-2222" if code != "2222-2222" else "3333-3333"
    for _ in range(MOST_WRONG):
        assert core.people.pair(wrong, OTHER_UUID, None, CHAT) is None
    closed = core.people.pairing(pairing.id)
    assert closed is not None and closed.outcome == "too many wrong codes"
    assert core.people.pair(code, STRANGER_UUID, STRANGER, CHAT) is None  # even the right one now
    assert core.people.paired() == []


@pytest.mark.parametrize(
    "text", ["x" * 100 + " pair 4KX9-QF7M", "pair 4KX9-QF7", "pair 4KX9-QF7MM", "pair 0KX9-QF7M", "status"]
)
def test_only_a_short_message_of_the_codes_alphabet_is_read_as_a_code(text: str) -> None:
    assert code_in(text) is None


def test_a_code_from_a_group_pairs_nobody(
    env: Env, gateway: FakeGateway, bot: Callable[..., DaemonProcess]
) -> None:
    daemon = bot()
    shown = env.cli("pair", "--no-wait", check=True).stdout
    code = re.search(r"pair ([2-9A-Z]{4}-[2-9A-Z]{4})", shown)
    assert code is not None
    say(gateway, f"pair {code[1]}", sender=STRANGER_UUID, number=STRANGER, group=GROUP)
    say(gateway, "status")  # answered after the group message was handled
    replies(gateway, 1)
    assert not any(person["uuid"] == STRANGER_UUID for person in env.cli_json("people"))
    say(gateway, f"pair {code[1]}", sender=STRANGER_UUID, number=STRANGER)  # 1:1 now: spent already
    say(gateway, "status")
    replies(gateway, 2)
    assert gateway.texts_to(STRANGER) == []
    refused = "refused a message from " + STRANGER_UUID
    wait_until(lambda: refused in daemon.output(), what="the refusal logged")
