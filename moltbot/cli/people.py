"""``moltbot pair`` and ``moltbot people``: who may command moltbot on Signal.

``pair`` shows a one-time code and waits (reading the database, as ``moltbot run`` waits for
a run) until the daemon's Signal bridge has paired whoever sent it; Ctrl-C or the code's ten
minutes close it. ``people`` lists moltbot.toml's and the paired; ``people remove`` unpairs.
"""

from __future__ import annotations

import argparse
import sys
import time

from moltbot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, core, print_json, user
from moltbot.core.people import PAIRING_MINUTES, UnknownPerson, shown

__all__ = ["cmd_pair", "cmd_people"]

WAIT_POLL_SECONDS = 0.5  # how soon `pair` sees the pairing the daemon recorded


def cmd_pair(args: argparse.Namespace) -> int:
    opened = core(args)
    signal = opened.settings.signal
    if signal is None:
        print("moltbot pair: no [signal] in moltbot.toml: configure the gateway first (README: Signal)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if signal.linked_device:
        print("moltbot pair: [signal] linked_device = true: your own account commands moltbot already; "
              "pairing is for a bot with a number of its own", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    code, pairing = opened.people.open_pairing(f"cli:{user()}")
    until = pairing.expires_at.astimezone(opened.local_zone()).strftime("%H:%M")
    print(f"Send this to the bot ({signal.number}) from your phone, within {PAIRING_MINUTES} minutes "
          f"(until {until}):\n\n    pair {code}\n", flush=True)  # fmt: skip
    if opened.daemon_pid() is None:
        print("note: the daemon is not running; the code is read once it runs (systemctl start moltbot)",
              file=sys.stderr)  # fmt: skip
    if args.no_wait:
        return EXIT_OK
    print("waiting… (Ctrl-C gives up and closes the code)", file=sys.stderr)
    try:
        while True:
            current = opened.people.pairing(pairing.id)
            if current is None or current.closed_at is not None:
                break
            if opened.clock.now() >= current.expires_at:
                opened.people.cancel(pairing.id, "expired")
                print(f"moltbot pair: nobody sent the code within {PAIRING_MINUTES} minutes; "
                      "run moltbot pair again", file=sys.stderr)  # fmt: skip
                return EXIT_FAILED
            time.sleep(WAIT_POLL_SECONDS)
    except KeyboardInterrupt:
        opened.people.cancel(pairing.id)
        print("\nmoltbot pair: given up; the code no longer pairs anyone", file=sys.stderr)
        raise
    if current is None or current.outcome != "paired":
        why = current.outcome if current else "gone"
        print(f"moltbot pair: the code was closed ({why}); run moltbot pair again", file=sys.stderr)
        return EXIT_FAILED
    person = next((p for p in opened.people.paired() if p.id == current.person_id), None)
    print(f"paired: {shown(person.number, person.uuid) if person else 'someone since removed'}")
    return EXIT_OK


def cmd_people(args: argparse.Namespace) -> int:
    opened = core(args)
    if args.action == "remove":
        if not args.who:
            print("moltbot people remove: whom? a number, a UUID or its first characters", file=sys.stderr)
            return EXIT_USAGE
        try:
            person, still_allowed = opened.people.remove(args.who)
        except UnknownPerson as exc:
            print(f"moltbot people remove: {exc}", file=sys.stderr)
            return EXIT_FAILED
        also = "; still allowed by moltbot.toml" if still_allowed else ""
        print(f"removed: {shown(person.number, person.uuid)} (paired {person.paired_at:%Y-%m-%d}){also}")
        return EXIT_OK
    listed = opened.people.listed()
    if args.json:
        print_json([
            {"number": entry.number, "uuid": entry.uuid, "roles": list(entry.roles), "source": entry.source}
            for entry in listed
        ])  # fmt: skip
        return EXIT_OK
    if not listed:
        print("nobody: moltbot pair adds your phone (or list it in [signal] allowed)")
        return EXIT_OK
    for entry in listed:
        print(f"{shown(entry.number, entry.uuid):<22} {', '.join(entry.roles):<24} {entry.source}")
    return EXIT_OK
