"""Credentials in a URL never reach the daemon's log, nor what status shows of its channels.

A gateway behind a reverse proxy with basic auth is configured as ``http://user:password@host``.
The HTTP client logged every request's URL at INFO, credentials included; library loggers stay at
WARNING, and every URL moltbot writes has its userinfo masked.
"""

from __future__ import annotations

from tests.conftest import DaemonProcess, Env, wait_until
from tests.fake_gateway import FakeGateway
from tests.security.test_signal_input import Bot
from tests.test_signal import OWNER, bot, echo_task, say

__all__ = ["bot"]  # the Signal fixture, used here too (gateway: conftest.py)
SECRET = "s3cr3t-in-the-url"


def test_credentials_in_the_gateway_url_are_never_logged(env: Env, gateway: FakeGateway, bot: Bot) -> None:
    url = gateway.url.replace("http://", f"http://admin:{SECRET}@")
    gateway.stop()  # down at first: the errors name the gateway's URL
    daemon: DaemonProcess = bot(echo_task(env), wait_connected=False, url=f'"{url}"')
    wait_until(lambda: "gateway unreachable at" in env.cli("status").stdout, what="the outage in status")
    status = env.cli("status").stdout
    gateway.restart()  # then every request is logged by the HTTP client, at INFO
    wait_until(gateway.connected, what="the daemon's websocket")
    say(gateway, "status")
    wait_until(lambda: any(t.startswith("moltbot:") for t in gateway.texts_to(OWNER)), what="the answer")
    assert "gateway unreachable at http://***@127.0.0.1:" in status
    assert "gateway unreachable at http://***@127.0.0.1:" in daemon.output()
    assert SECRET not in daemon.output() and SECRET not in status


def test_only_the_userinfo_of_urls_is_masked() -> None:
    from moltbot.redact import redact_urls

    text = "at https://tok3n@h:1/p?mail=a@b.c, ws://u:p@h/v1 (http://h/x?to=a@b), mail a@b.c"
    assert (
        redact_urls(text) == "at https://***@h:1/p?mail=a@b.c, ws://***@h/v1 (http://h/x?to=a@b), mail a@b.c"
    )
