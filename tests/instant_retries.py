"""Every retry policy of moltbot made instant (or nearly), for tests: none waits out a real backoff.

In-process tests get them from an autouse fixture (conftest.py); a daemon a test
starts runs as ``python -m tests.instant_retries daemon``: the real ``moltbot``
command line, with these policies. ``test_retries.py`` checks the real ones.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from tenacity import wait_fixed, wait_none

from moltbot import retries

# A short wait rather than none where a loop retries on its own: a service that stays down
# must not be hammered in a tight loop by the daemon under test.
INSTANT: dict[str, Any] = {
    "QUICK": retries.QUICK.copy(wait=wait_none()),
    "OUTBOX_WAIT": wait_fixed(0.05),
    "RECONNECT_WAIT": wait_fixed(0.05),
    "THREAD_RESTART_WAIT": wait_fixed(0.05),
    "DATABASE_WAIT": wait_fixed(0.05),
    "DATABASE_ALERT_AFTER_SECONDS": 1.0,
    "PING_WAIT": wait_none(),
    "PING_TIMEOUT_SECONDS": 1.0,
}


def apply() -> None:
    for name, policy in INSTANT.items():
        setattr(retries, name, policy)
    busy = os.environ.get("MOLTBOT_TEST_DB_BUSY_SECONDS")  # a fault test's short SQLite busy timeout
    if busy:
        # The module, not the function of the same name that moltbot.store re-exports.
        importlib.import_module("moltbot.store.connection").BUSY_TIMEOUT_SECONDS = float(busy)


if __name__ == "__main__":
    from moltbot.cli import main

    apply()
    sys.exit(main(sys.argv[1:]))
