"""The daemon's database identity file (``data/daemon.db-id``) is read bounded and parsed strictly:
one that is too big or not the daemon's own three numbers is not taken for a split database."""

from __future__ import annotations

import os

from moltbot import store
from moltbot.core.database_identity import record, split
from tests.conftest import Env


def test_only_the_daemons_own_short_record_counts(env: Env) -> None:
    store.open_db(env.home.db_path)
    identity = env.home.data_dir / "daemon.db-id"
    record(env.home, os.getpid())
    assert split(env.home, os.getpid()) is None  # the very file
    found = os.stat(env.home.db_path)
    identity.write_text(f"{os.getpid()} {found.st_dev} {found.st_ino + 1}\n")
    assert "deleted or replaced" in (split(env.home, os.getpid()) or "")  # the check can fail
    assert split(env.home, os.getpid() + 1) is None  # another daemon's record (before a crash)
    identity.write_text(f"{os.getpid()} {found.st_dev} {found.st_ino + 1}" + " " * (1 << 20))
    assert split(env.home, os.getpid()) is None  # over the bound: not read whole, not believed
    for garbage in ("", "x y z", f"{os.getpid()} 1", f"{os.getpid()} -1 2", "1 2 3 4"):
        identity.write_text(garbage)
        assert split(env.home, os.getpid()) is None, garbage
