"""A sender allowed by number is not trusted whatever UUID the envelope carries.

A number can pass to someone else (recycled, re-registered after a SIM swap): the UUID (ACI) is the
account. When the config pairs a number with its UUID (``["+49…", "<uuid>"]``, one person), or the
envelope's UUID is that of another entry, the mismatch is refused. Through the fake gateway.
"""

from __future__ import annotations

import pytest

from moltbot import store
from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.security.test_signal_input import Bot
from tests.test_signal import OWNER, OWNER_UUID, STRANGER_UUID, VIEWER_UUID, bot, echo_task, say

__all__ = ["bot"]  # the Signal fixture, used here too (gateway: conftest.py)
NEW_NUMBER = "+4915100000555"


def answered(gateway: FakeGateway, recipient: str, count: int) -> list[str]:
    def answers() -> list[str]:
        return [t for t in gateway.texts_to(recipient) if t.startswith("moltbot:")]

    wait_until(lambda: len(answers()) >= count, what=f"{count} status answer(s) to {recipient}")
    return answers()


def refused(daemon: DaemonProcess, env: Env, uuid: str, why: str) -> None:
    assert f"signal: refused a message from {uuid} ({OWNER}): {why}" in daemon.output()
    env.db()
    assert store.recent_runs("job", 5) == [], "nothing ran"


def test_a_number_paired_with_a_uuid_is_refused_with_another_uuid(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    daemon = bot(echo_task(env), allowed=f'[["{OWNER}", "{OWNER_UUID}"]]')
    say(gateway, "run:job", sender=STRANGER_UUID, number=OWNER)  # the owner's number, someone else's account
    say(gateway, "status", sender=OWNER_UUID, number=OWNER)
    assert len(answered(gateway, OWNER, 1)) == 1
    refused(daemon, env, STRANGER_UUID, f"{OWNER} belongs to another UUID")
    assert not [t for t in gateway.texts_to(OWNER) if not t.startswith("moltbot:")], (
        "no reply to the stranger"
    )
    # The account is the person: with its number hidden, or a new one, the owner is still answered.
    say(gateway, "status", sender=OWNER_UUID, number=None)
    say(gateway, "status", sender=OWNER_UUID, number=NEW_NUMBER)
    answered(gateway, OWNER_UUID, 1)
    answered(gateway, NEW_NUMBER, 1)
    # Alerts (here: the refusal) go to the paired UUID, not to a number that may have changed hands.
    wait_until(lambda: any(t.startswith("⚠ ignored 1 message") for t in gateway.texts_to(OWNER_UUID)),
               what="the refusal alert to the owner's UUID")  # fmt: skip


def test_a_number_of_one_entry_with_the_uuid_of_another_is_refused(
    env: Env, gateway: FakeGateway, bot: Bot
) -> None:
    daemon = bot(echo_task(env), allowed=f'["{OWNER}"]', viewers=f'["{VIEWER_UUID}"]')
    say(gateway, "run:job", sender=VIEWER_UUID, number=OWNER)  # the admin's number, the viewer's account
    say(gateway, "status", sender=STRANGER_UUID, number=OWNER)  # a number alone: any account (as before)
    answered(gateway, OWNER, 1)
    refused(daemon, env, VIEWER_UUID, f"{OWNER} and {VIEWER_UUID} are different entries")


def test_a_pair_is_one_number_and_one_uuid(env: Env) -> None:
    from moltbot.config.errors import ConfigError
    from moltbot.config.settings import load_settings

    allowed = f'[["{OWNER_UUID.upper()}", "{OWNER}"], "{VIEWER_UUID}"]'
    env.home.settings_toml.write_text(f'[signal]\nnumber = "+4915100000000"\nallowed = {allowed}\n')
    signal = load_settings(env.home.settings_toml).signal
    assert signal is not None and signal.pairs == ((OWNER, OWNER_UUID),)  # either order; UUIDs lower-case
    assert signal.allowed == (OWNER, OWNER_UUID, VIEWER_UUID)
    assert signal.alert_recipients == (OWNER_UUID, VIEWER_UUID)  # one per person
    env.home.settings_toml.write_text(
        f'[signal]\nnumber = "+4915100000000"\nallowed = [["{OWNER}", "{NEW_NUMBER}"]]\n'
    )
    with pytest.raises(
        ConfigError, match=r"signal.allowed: expected E.164 numbers, UUIDs or \[number, UUID\] pairs"
    ):
        load_settings(env.home.settings_toml)
