"""What a received frame means: a command to consider, or something to ignore (and why).

Frames are signal-cli's receive notifications as the gateway forwards them:
``{"envelope": {...}, "account": "+..."}`` (GATEWAY-NOTES 1.5). Only text
is ever a command: receipts, typing, reactions, stories, calls, group
updates and undecryptable envelopes (``exception``) are not. Authorization
is not decided here (see bridge.py); only where a reply would go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moltbot.config.integrations import SignalSettings
from moltbot.signal_chat.gateway import rest_group_id

__all__ = ["Ignored", "Inbound", "classify"]


@dataclass(frozen=True)
class Inbound:
    sender_uuid: str
    sender_number: str | None  # None when the sender hides it
    chat: str  # where replies go: a number or UUID, or group.<base64>
    group_id: str | None  # the internal id (groupInfo.groupId) of a group chat
    text: str
    timestamp: int  # the sender's, in ms: the message's identity
    edit: bool = False  # an edited message: never run, only answered


@dataclass(frozen=True)
class Ignored:
    reason: str
    sender_uuid: str | None = None


def classify(frame: Any, settings: SignalSettings, own_sends: set[int] | None = None) -> Inbound | Ignored:
    """One frame -> an Inbound to authorize, or why it is not one."""
    found = _classify(frame, settings, own_sends)
    if isinstance(found, Inbound) and not _unicode(found.text, found.sender_uuid, found.sender_number):
        # JSON's "\ud800" decodes to a lone surrogate, which no UTF-8 store, log or send can carry;
        # real Signal never sends one, a broken gateway has.
        return Ignored("not valid Unicode (a lone surrogate in its text or sender)")
    return found


def _unicode(*values: str | None) -> bool:
    try:
        for value in values:
            if value is not None:
                value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _classify(frame: Any, settings: SignalSettings, own_sends: set[int] | None) -> Inbound | Ignored:
    if not isinstance(frame, dict):
        return Ignored("not a JSON object")
    if "error" in frame and "envelope" not in frame:
        return Ignored(f"gateway error frame: {str(frame['error'])[:200]}")
    envelope = frame.get("envelope")
    if not isinstance(envelope, dict):
        return Ignored("no envelope")
    if frame.get("account") not in (None, settings.number):
        return Ignored("for another account")
    sender = envelope.get("sourceUuid")
    sender = sender.lower() if isinstance(sender, str) and sender else None
    if "exception" in frame or "exception" in envelope:
        return Ignored("undecryptable (exception)", sender)
    if sender is None:
        return Ignored("no sender UUID")
    number = envelope.get("sourceNumber") if isinstance(envelope.get("sourceNumber"), str) else None
    if settings.linked_device:
        return _from_own_device(envelope, sender, number, settings, own_sends or set())
    if isinstance(envelope.get("editMessage"), dict):
        edited = envelope["editMessage"].get("dataMessage") or {}
        return _data(edited, envelope, sender, number, settings, edit=True)
    data = envelope.get("dataMessage")
    if not isinstance(data, dict):
        kind = next((key for key in envelope if key.endswith("Message")), "unknown")
        return Ignored(f"{kind}, not a text message", sender)
    return _data(data, envelope, sender, number, settings)


def _data(
    data: dict[str, Any],
    envelope: dict[str, Any],
    sender: str,
    number: str | None,
    settings: SignalSettings,
    edit: bool = False,
) -> Inbound | Ignored:
    text = data.get("message")
    if data.get("reaction") or data.get("remoteDelete") or not isinstance(text, str) or not text.strip():
        return Ignored("no text (reaction, deletion, attachment or update)", sender)
    timestamp = _timestamp(envelope, data)
    if timestamp is None:
        return Ignored("no timestamp", sender)
    group = data.get("groupInfo")
    if isinstance(group, dict):
        group_id = _allowed_group(group, settings)
        if group_id is None:
            return Ignored("a group that is not allowed, or a group update", sender)
        return Inbound(sender, number, rest_group_id(group_id), group_id, text, timestamp, edit)
    return Inbound(sender, number, number or sender, None, text, timestamp, edit)


def _allowed_group(group: dict[str, Any], settings: SignalSettings) -> str | None:
    """The internal id of an allowed group's ordinary message (not an update)."""
    group_id = group.get("groupId")
    if not isinstance(group_id, str) or group_id not in settings.groups:
        return None
    return group_id if group.get("type") in (None, "DELIVER") else None


def _from_own_device(
    envelope: dict[str, Any], sender: str, number: str | None, settings: SignalSettings, own_sends: set[int]
) -> Inbound | Ignored:
    """Linked device: the owner's commands are their own sends, to Note to Self or an allowed group."""
    sync = envelope.get("syncMessage")
    sent = sync.get("sentMessage") if isinstance(sync, dict) else None
    if not isinstance(sent, dict):
        return Ignored("linked device: only the account's own sent messages count", sender)
    if number != settings.number:
        return Ignored("linked device: a sync message from another account", sender)
    timestamp = _timestamp(envelope, sent)
    if timestamp is None or timestamp in own_sends:
        return Ignored("our own reply (echo)", sender)
    text = sent.get("message")
    if not isinstance(text, str) or not text.strip():
        return Ignored("no text", sender)
    group = sent.get("groupInfo")
    if isinstance(group, dict):
        group_id = _allowed_group(group, settings)
        if group_id is None:
            return Ignored("linked device: a group that is not allowed, or a group update", sender)
        return Inbound(sender, number, rest_group_id(group_id), group_id, text, timestamp)
    if settings.number not in (sent.get("destinationNumber"), sent.get("destination")):
        return Ignored("linked device: the owner writing to someone else", sender)
    return Inbound(sender, number, settings.number, None, text, timestamp)


def _timestamp(envelope: dict[str, Any], message: dict[str, Any]) -> int | None:
    for value in (message.get("timestamp"), envelope.get("timestamp")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
