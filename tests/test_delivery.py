"""The core's outbox worker with Signal's channel, in-process against the fake gateway (real HTTP)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from tenacity import stop_after_attempt, wait_fixed, wait_none

from moltbot import retries, store
from moltbot.clock import FakeClock
from moltbot.config.integrations import SignalSettings
from moltbot.core import Core, Watcher
from moltbot.core.delivery import Delivery
from moltbot.core.outbox import OutboxWorker
from moltbot.signal_chat.delivery import SignalChannel
from moltbot.signal_chat.gateway import Gateway
from tests.conftest import Env
from tests.fake_gateway import BOT, FakeGateway, SendFault

pytestmark = pytest.mark.both_backends  # and on PostgreSQL (tests/pg.py)

ADMINS = ("+4915100000001", "+4915100000002")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def delivery(env: Env) -> Iterator[tuple[OutboxWorker, FakeGateway, Core]]:
    fake = FakeGateway().start()
    core = Core(env.home, FakeClock(NOW))
    core.open()
    settings = SignalSettings(
        url=fake.url, number=BOT, allowed=ADMINS[:1], admins=ADMINS, timeout_seconds=0.5
    )
    gateway = Gateway(settings)
    channel = SignalChannel(gateway, settings, lambda timestamp, text: None)
    yield OutboxWorker(channel, core.clock, core.health), fake, core
    gateway.close()
    fake.stop()


def test_alerts_waiting_together_go_out_merged_to_each_admin(
    delivery: tuple[OutboxWorker, FakeGateway, Core],
) -> None:
    sender, fake, core = delivery
    for text in ("❌ backup failed", "❌ sync failed", "❌ scrub timeout"):
        core.alert(text)
    alerts = Delivery(core.clock, core.health)
    alerts.add(sender.channel)
    alerts.hand_over_alerts()  # to each channel that takes alerts: here, Signal
    sender.deliver_due()  # merged, one row per admin
    sender.deliver_due()  # the per-admin rows
    for admin in ADMINS:
        (text,) = fake.texts_to(admin)
        assert text.startswith("⚠ 3 alerts") and "backup" in text and "scrub" in text
    assert store.pending_outbox() == []


def test_unavailable_is_postponed_and_uncertain_is_never_repeated(
    delivery: tuple[OutboxWorker, FakeGateway, Core], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, fake, core = delivery
    monkeypatch.setattr(retries, "OUTBOX_WAIT", wait_fixed(7))
    clock = core.clock
    assert isinstance(clock, FakeClock)
    fake.faults.append(SendFault(429, {"error": "rate limited", "challenge_tokens": ["t"]}, count=3))
    first = core.post(Watcher("signal", ADMINS[0]), "hello")
    sender.deliver_due()
    (row,) = store.pending_outbox()
    assert (row.id, row.status, row.attempts) == (first, "pending", 1)
    assert row.due_at == clock.now() + timedelta(seconds=7)  # retries.OUTBOX_WAIT after the first try
    assert fake.send_requests == 3  # the quick retries inside one attempt (retries.QUICK)
    fake.faults.append(SendFault(hang=True))
    second = core.post(Watcher("signal", ADMINS[0]), "are you there")
    sender.deliver_due()  # the first is not due yet; the second hangs until the client's timeout
    fake.release_hung_sends()
    rows = {row.id: row for row in store.pending_outbox()}
    assert rows[second].status == "failed" and "no answer" in (rows[second].last_error or "")
    clock.advance(seconds=7)
    sender.deliver_due()  # the first is due again: delivered
    assert fake.texts_to(ADMINS[0]) == ["hello"]  # once; the unanswered one never again
    assert [row.id for row in store.pending_outbox()] == [second]


def test_a_refused_send_is_given_up_at_once(
    delivery: tuple[OutboxWorker, FakeGateway, Core], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, fake, core = delivery
    monkeypatch.setattr(retries, "QUICK", retries.QUICK.copy(stop=stop_after_attempt(5), wait=wait_none()))
    fake.faults.append(SendFault(400, {"error": "Failed to send message: unregistered user"}))
    message_id = core.post(Watcher("signal", ADMINS[0]), "hello")
    sender.deliver_due()
    (row,) = store.pending_outbox()
    assert (row.id, row.status) == (message_id, "failed") and "unregistered" in (row.last_error or "")
    assert fake.send_requests == 1  # a 400 may have been delivered: never asked again


def test_a_very_long_text_travels_as_an_attachment(delivery: tuple[OutboxWorker, FakeGateway, Core]) -> None:
    sender, fake, core = delivery
    text = "\n".join(f"line {i}: " + "x" * 60 for i in range(200))  # ~14 kB
    core.post(Watcher("signal", ADMINS[0]), text)
    sender.deliver_due()
    (body,) = fake.sent
    assert len(body["message"].encode()) <= 2000 and body["message"].endswith("(the whole text is attached)")
    (attachment,) = body["base64_attachments"]
    prefix = "data:text/plain;filename=moltbot.txt;base64,"
    assert attachment.startswith(prefix) and base64.b64decode(attachment[len(prefix) :]).decode() == text


def test_merged_alerts_keep_what_to_do_next(delivery: tuple[OutboxWorker, FakeGateway, Core]) -> None:
    sender, fake, core = delivery
    core.alert("❌ backup failed (exit 3)\n  disk full\noutput:backup for the output, run:backup to retry")
    core.alert("❓ sync: wipe the old snapshots?\nthey are 2 TB\nyes / no (until 10:00)")
    core.alert("✅ scrub recovered after 3 failures (2 h)")
    alerts = Delivery(core.clock, core.health)
    alerts.add(sender.channel)
    alerts.hand_over_alerts()
    sender.deliver_due()
    sender.deliver_due()
    (text,) = fake.texts_to(ADMINS[0])
    lines = text.splitlines()
    assert lines[0] == "⚠ 3 alerts"
    assert "output:backup for the output, run:backup to retry" in lines  # the hint of each
    assert "yes / no (until 10:00)" in lines  # a question's answers
    assert "✅ scrub recovered after 3 failures (2 h)" in lines
    assert "  disk full" not in lines and len(lines) <= 1 + 2 * 3  # still phone-sized
