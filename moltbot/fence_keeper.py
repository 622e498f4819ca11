"""The fence keeper: a small process that kills the daemon's runs if the daemon dies first.

On PostgreSQL, another node re-runs a dead node's runs once its lease runs out (store/sessions.py);
that re-run must never overlap the original. Under systemd the unit's cgroup dies with the daemon
(KillMode=mixed). Without it (a foreground daemon, the tests), a ``kill -9`` of the daemon would
leave its runs' process groups running. So the daemon starts this keeper and tells it on a pipe
which groups are open ("+PGID", "-PGID"); when the pipe closes without "=" (the daemon is gone,
however it died), the keeper SIGKILLs the groups still open. Runs as the task user are another
user's processes: the keeper may not kill them (systemd does).
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["main"]


def main() -> int:
    from moltbot.privileges import undumpable

    undumpable()  # as the daemon: no same-user task may read or trace it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the daemon's terminal is the daemon's
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the daemon's own end is told by the pipe
    groups: set[int] = set()
    clean = False
    for line in sys.stdin.buffer:
        text = line.strip().decode("ascii", "replace")
        if text == "=":
            clean = True
        elif text[:1] in "+-" and text[1:].isdigit():
            (groups.add if text[0] == "+" else groups.discard)(int(text[1:]))
    if not clean:
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
