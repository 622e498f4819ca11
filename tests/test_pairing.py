"""Pairing a phone (#14): `moltbot pair` shows a code, the first sender who messages it to the bot
becomes an admin; `moltbot people` lists who may command, `people remove` unpairs. A real daemon
against the fake gateway; the CLI as the owner runs it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.test_signal import OWNER, bot, echo_task, replies, say

__all__ = ["bot"]
Bot = Callable[..., DaemonProcess]
NEWCOMER, NEWCOMER_UUID = "+4915100000042", "7a7a0a2c-1111-4222-8333-444455556666"
CODE = re.compile(r"^    pair ([2-9A-Z]{4}-[2-9A-Z]{4})$", re.M)


def open_code(env: Env) -> tuple[subprocess.Popen[str], str]:
    """`moltbot pair`, waiting in the background; the code it shows."""
    pair = subprocess.Popen(env.cli_argv("pair"), env=env.environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert pair.stdout is not None
    shown = ""
    while (found := CODE.search(shown)) is None:
        line = pair.stdout.readline()
        assert line, f"moltbot pair ended without a code: {pair.communicate()}"
        shown += line
    return pair, found[1]


def test_a_code_sent_from_a_phone_pairs_it_until_removed(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot(echo_task(env))
    pair, code = open_code(env)
    say(gateway, "status", sender=NEWCOMER_UUID, number=NEWCOMER)  # before the code: a stranger
    say(gateway, f"Pair {code.lower()}!", sender=NEWCOMER_UUID, number=NEWCOMER)  # as a phone types it
    out, err = pair.communicate(timeout=30)
    assert pair.returncode == 0, err
    assert out.strip().endswith("paired: +49…0042 / 7a7a…")
    (welcome,) = replies(gateway, 1, recipient=NEWCOMER)
    assert welcome.startswith("paired ✓ +49…0042 / 7a7a…") and "send help" in welcome
    told = "🔗 paired: +49…0042 / 7a7a… (by moltbot pair)"  # merged with the refusal alert, maybe
    wait_until(lambda: any(told in text for text in gateway.texts_to(OWNER)), what="the admins told")
    newcomer_got = gateway.texts_to(NEWCOMER) + gateway.texts_to(NEWCOMER_UUID)
    assert not any("🔗" in text for text in newcomer_got), newcomer_got  # told once, in their own words

    say(gateway, "status", sender=NEWCOMER_UUID, number=NEWCOMER)  # now an admin: answered
    assert replies(gateway, 2, recipient=NEWCOMER)[1].startswith("moltbot")
    listed = env.cli("people", check=True).stdout
    assert "+49…0042 / 7a7a…" in listed and "paired on " in listed and "moltbot.toml" in listed
    (paired,) = [p for p in env.cli_json("people") if p["uuid"] == NEWCOMER_UUID]
    assert (paired["number"], paired["roles"]) == (NEWCOMER, ["allowed", "admin"])

    env.cli("notify", "disk at 91%", check=True)  # an admin: alerts reach them too
    wait_until(lambda: "disk at 91%" in gateway.texts_to(NEWCOMER_UUID), what="an alert to the paired")

    removed = env.cli("people", "remove", "7a7a", check=True).stdout
    assert removed.startswith("removed: +49…0042 / 7a7a…")
    before, answered = len(gateway.texts_to(NEWCOMER)), len(gateway.texts_to(OWNER))
    say(gateway, "status", sender=NEWCOMER_UUID, number=NEWCOMER)
    say(gateway, "status")  # the owner's answer comes after the stranger's refusal
    replies(gateway, answered + 1)
    assert len(gateway.texts_to(NEWCOMER)) == before  # refused again, without a word


def test_people_remove_names_what_it_cannot_remove(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    bot()
    unknown = env.cli("people", "remove", "+4915100009999")
    assert unknown.returncode == 1 and "nobody paired is '+4915100009999'" in unknown.stderr
    configured = env.cli("people", "remove", OWNER)
    assert configured.returncode == 1 and "moltbot.toml" in configured.stderr
    assert env.cli("people", "remove").returncode == 2


def test_pair_needs_signal_and_refuses_a_linked_device(env: Env) -> None:
    env.write_tasks()
    missing = env.cli("pair")
    assert missing.returncode == 2 and "no [signal]" in missing.stderr
    linked_device = '[signal]\nurl = "http://127.0.0.1:9"\nnumber = "+4915100000000"\nlinked_device = true\n'
    env.write_tasks(settings=linked_device)
    linked = env.cli("pair")
    assert linked.returncode == 2 and "linked_device" in linked.stderr
