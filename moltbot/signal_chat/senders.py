"""Who a Signal sender is to moltbot: an admin (``allowed``), a viewer, or nobody, and why.

The UUID (ACI) is the account; a number can pass to someone else (recycled, re-registered after a
SIM swap). So the number counts only when it cannot be another account's:

- an entry written as a pair ``[number, UUID]`` is one person: its number with any other UUID is
  refused; its UUID is that person whatever number comes with it (numbers change, or are hidden);
- a number and a UUID that lead to two different people are refused: entries of different roles,
  or where either is part of a pair.

Two single entries of the same list (``allowed = ["+49…", "<uuid>"]``) may be one person listed
twice, as was usual before pairs: they are not told apart, so a number alone is trusted with any
UUID not listed elsewhere. Pair them to have the number checked.
"""

from __future__ import annotations

from typing import NamedTuple

from moltbot.config.integrations import SignalSettings

__all__ = ["Verdict", "judge"]

NOT_ALLOWED = "not an allowed sender"


class Verdict(NamedTuple):
    role: str | None  # "admin", "viewer", or None: refused
    reason: str = ""  # why it was refused


def judge(settings: SignalSettings, uuid: str, number: str | None) -> Verdict:
    by_uuid = _role(settings, uuid)
    by_number = _role(settings, number) if number else None
    uuid_of_number = next((u for n, u in settings.pairs if n == number), None)
    number_of_uuid = next((n for n, u in settings.pairs if u == uuid), None)
    if by_number is not None and uuid_of_number not in (None, uuid):
        return Verdict(None, f"{number} belongs to another UUID")
    if by_uuid is not None and by_number is not None:
        paired = uuid_of_number is not None or number_of_uuid is not None
        same_pair = uuid_of_number == uuid
        if (by_uuid != by_number or paired) and not same_pair:
            return Verdict(None, f"{number} and {uuid} are different entries")
    role = by_uuid or by_number
    return Verdict(role, "" if role else NOT_ALLOWED)


def _role(settings: SignalSettings, address: str | None) -> str | None:
    if address in settings.allowed:
        return "admin"
    if address in settings.viewers:
        return "viewer"
    return None
