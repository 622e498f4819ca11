"""Alerts go to people, not addresses: one person listed by number and by UUID gets one message.

A real daemon against the fake gateway, which knows that a number and a UUID are one account
(``accounts``) and counts what reached each person, whichever address it was sent to.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import BOT, FakeGateway, text_frame
from tests.test_signal import OWNER, OWNER_UUID, STRANGER_UUID, now_ms

OTHER = "+4915100000002"
OTHER_UUID = "7a7a7a7a-1111-4222-8333-444455556666"


def settings(gateway: FakeGateway, people: str) -> str:
    return f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\ntimeout_seconds = 2\n{people}\n'


@pytest.mark.parametrize(
    "people",
    [
        f'allowed = [["{OWNER}", "{OWNER_UUID}"]]',  # the README's example
        f'allowed = [["{OWNER}", "{OWNER_UUID}"]]\nadmins = ["{OWNER}", "{OWNER_UUID}"]',
        f'allowed = [["{OWNER}", "{OWNER_UUID}"]]\nadmins = [["{OWNER}", "{OWNER_UUID}"], "{OTHER_UUID}"]',
        f'allowed = [["{OWNER}", "{OWNER_UUID}"], ["{OTHER}", "{OTHER_UUID}"]]\n'
        f'admins = ["{OWNER}", "{OTHER}"]',
    ],
    ids=["readme", "admins-both-addresses", "admins-pair", "admins-numbers-of-pairs"],
)
def test_a_person_gets_one_message_per_alert(
    env: Env, gateway: FakeGateway, start_daemon: Callable[..., DaemonProcess], people: str
) -> None:
    gateway.accounts = {OWNER: OWNER_UUID, OTHER: OTHER_UUID}
    env.write_tasks(settings=settings(gateway, people))
    assert env.cli("check").stderr == ""
    start_daemon()
    wait_until(gateway.connected, what="the daemon's websocket")
    assert gateway.push(text_frame(STRANGER_UUID, "status", now_ms(), "+4915100000777"))
    wait_until(lambda: gateway.texts_to_person(OWNER_UUID), what="the refusal notice")
    wait_until(lambda: json.loads(env.cli("outbox", "--json").stdout) == [], what="nothing left to send")
    (notice,) = gateway.texts_to_person(OWNER_UUID)
    assert notice.startswith("⚠ ignored 1 message(s)")
    assert gateway.texts_to(OWNER) == []  # a pair's alerts go to its UUID: the number may change hands
    if "OTHER" in people or OTHER_UUID in people:
        assert len(gateway.texts_to_person(OTHER_UUID)) == 1


def test_check_suggests_a_pair_for_a_number_and_a_uuid_listed_apart(env: Env, gateway: FakeGateway) -> None:
    env.write_tasks(settings=settings(gateway, f'allowed = ["{OWNER}", "{OWNER_UUID}"]'))
    checked = env.cli("check")
    assert checked.returncode == 0, checked.stderr
    assert "moltbot.toml:5: signal.allowed: warning:" in checked.stderr
    assert f'[["{OWNER}", "{OWNER_UUID}"]]' in checked.stderr and "twice" in checked.stderr
