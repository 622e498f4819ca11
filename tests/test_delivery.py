"""The outbox sender in-process against the fake gateway on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from moltbot.config import SignalSettings
from moltbot.scheduler import Core
from moltbot.signal_chat.delivery import Delivery
from moltbot.signal_chat.gateway import Gateway
from moltbot.store import messages
from tests.conftest import Env
from tests.fake_gateway import BOT, FakeGateway, SendFault

ADMINS = ("+4915100000001", "+4915100000002")


@pytest.fixture
def delivery(env: Env) -> Iterator[tuple[Delivery, FakeGateway]]:
    fake = FakeGateway().start()
    core = Core(env.home)
    core.open()
    settings = SignalSettings(url=fake.url, number=BOT, allowed=ADMINS[:1], admins=ADMINS, timeout_seconds=2)
    gateway = Gateway(settings)
    sent: list[int] = []
    yield Delivery(core, gateway, settings, lambda timestamp, text: sent.append(timestamp)), fake
    gateway.close()
    fake.stop()


def test_alerts_waiting_together_go_out_merged_to_each_admin(delivery: tuple[Delivery, FakeGateway]) -> None:
    sender, fake = delivery
    now = sender.core.clock.now()
    for text in ("❌ backup failed", "❌ sync failed", "❌ scrub timeout"):
        messages.enqueue_message("alerts", "admins", text, now)
    sender.deliver_due()
    sender.deliver_due()  # the per-admin rows made by the first pass
    for admin in ADMINS:
        (text,) = fake.texts_to(admin)
        assert text.startswith("⚠ 3 alerts") and "backup" in text and "scrub" in text
    assert messages.pending_outbox() == []


def test_unavailable_is_postponed_and_uncertain_is_never_repeated(
    delivery: tuple[Delivery, FakeGateway],
) -> None:
    sender, fake = delivery
    now = sender.core.clock.now()
    fake.faults.append(SendFault(429, {"error": "rate limited", "challenge_tokens": ["t"]}, count=3))
    first = messages.enqueue_message("signal", ADMINS[0], "hello", now)
    sender.deliver_due()
    (row,) = messages.pending_outbox()
    assert (row.id, row.status, row.attempts) == (first, "pending", 1) and row.due_at > now
    assert fake.send_requests == 3  # tenacity's bounded retries inside one attempt
    fake.faults.append(SendFault(hang=True))
    second = messages.enqueue_message("signal", ADMINS[0], "are you there", now)
    sender.deliver_due()  # the first is not due yet; the second hangs until the client's timeout
    fake.release_hung_sends()
    rows = {row.id: row for row in messages.pending_outbox()}
    assert rows[second].status == "failed" and "no answer" in (rows[second].last_error or "")
    sender.deliver_due()  # the first is due again by now (its backoff was 2 s): delivered
    sender.deliver_due()
    assert fake.texts_to(ADMINS[0]) == ["hello"]  # once; the unanswered one never again


def test_a_very_long_text_travels_as_an_attachment(delivery: tuple[Delivery, FakeGateway]) -> None:
    import base64

    sender, fake = delivery
    text = "\n".join(f"line {i}: " + "x" * 60 for i in range(200))  # ~14 kB
    messages.enqueue_message("signal", ADMINS[0], text, sender.core.clock.now())
    sender.deliver_due()
    (body,) = fake.sent
    assert len(body["message"].encode()) <= 2000 and body["message"].endswith("(the whole text is attached)")
    (attachment,) = body["base64_attachments"]
    prefix = "data:text/plain;filename=moltbot.txt;base64,"
    assert attachment.startswith(prefix) and base64.b64decode(attachment[len(prefix) :]).decode() == text
