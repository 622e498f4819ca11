"""The daemon's WAL checkpoints keep the WAL file bounded under sustained writes, with readers
in other processes (issue #11: it grew by every commit, 275 MB after 6 000 commands).

A real store and the daemon's real checkpoint thread, with a small size limit;
commands go through the core as the Signal bridge hands them over; the readers
are other processes: ``moltbot status`` in a loop, and a plain sqlite3 reader
holding a snapshot the way a long ``.backup`` does.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest

from handlers.commands import handle
from moltbot.core import Core, ReceivedCommand, Request, Watcher
from moltbot.wal_checkpoints import WalCheckpointer
from tests.conftest import Env, wait_until

LIMIT = 2 * 1024 * 1024  # the WAL in use past which it starts over
SHRINK = 3 * LIMIT  # a WAL file past which it is truncated
EVERY = 10  # commits between checkpoints
OWNER = "0b0e0a2c-1111-4222-8333-444455556666"
WATCHER = Watcher("signal", OWNER)
STATUS_LOOP = "from moltbot.cli import main\nwhile True:\n    main(['status', '--json'])\n"
# Reads inside one transaction, says so, and keeps that snapshot until its stdin closes.
SNAPSHOT_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM inbox").fetchall()
print("holding", flush=True)
sys.stdin.read()
db.execute("COMMIT")
"""


@pytest.fixture
def core(env: Env) -> Core:
    env.script("job.sh", "true\n")
    env.write_tasks(
        *(
            {"task_id": f"job-{n:02d}", "script_path": "job.sh", "schedule": "daily at 03:00"}
            for n in range(30)
        )
    )
    opened = Core(env.home)
    opened.open()
    opened.sync(opened.load_specs())
    return opened


@pytest.fixture
def checkpointer(core: Core) -> Iterator[WalCheckpointer]:
    started = WalCheckpointer(every=EVERY, restart_above=LIMIT, truncate_above=SHRINK)
    started.start()
    yield started
    started.stop()


def wal_size(core: Core) -> int:
    wal = core.home.db_path.with_name(core.home.db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def status_commands(core: Core) -> Iterator[int]:
    """Handle one ``status`` command per step, as the daemon does; the WAL's size after each."""
    request = Request("status", "admin", f"signal:{OWNER}", WATCHER)
    for sent_at in count(1):
        command = ReceivedCommand("signal", OWNER, sent_at, OWNER, "status")
        assert core.chat.accept(command, WATCHER, lambda: handle(core, request)) is not None
        yield wal_size(core)


def commands_until(commands: Iterator[int], done: Callable[[int], bool], at_most: int = 3000) -> int:
    """Commands until ``done`` (given the WAL's size) holds; how many it took."""
    for taken, size in enumerate(commands, 1):
        if done(size):
            return taken
        if taken == at_most:
            raise AssertionError(f"still not done after {at_most} commands (WAL {size} bytes)")
    raise AssertionError("unreachable")


def test_the_wal_stays_bounded_under_commands_while_other_processes_read(
    env: Env, core: Core, checkpointer: WalCheckpointer, tmp_path: Path
) -> None:
    printed = tmp_path / "status.out"
    with printed.open("w") as out:
        reader = subprocess.Popen([sys.executable, "-c", STATUS_LOOP], env=env.environ, stdout=out)
    try:
        wait_until(lambda: printed.stat().st_size > 0, what="the status loop to read")
        commands = status_commands(core)
        sizes = [next(commands) for _ in range(2000)]
        assert reader.poll() is None
    finally:
        reader.kill()
        reader.wait()
    # ~32 MB went through the WAL. It started over whenever it had passed the limit, a checkpoint
    # and a few commits later, or a few more when a status read was in the way (a reader
    # preempted inside a query on a busy machine holds its snapshot for a while).
    assert max(sizes) < 4 * LIMIT, f"the WAL reached {max(sizes) / 1e6:.1f} MB"


def test_a_reader_holding_a_snapshot_delays_truncation_and_nothing_else(
    env: Env, core: Core, checkpointer: WalCheckpointer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "moltbot.wal_checkpoints")
    refused = "a reader keeps it from starting over"
    with subprocess.Popen(
        [sys.executable, "-c", SNAPSHOT_HOLDER, str(core.home.db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        commands = status_commands(core)
        # The held snapshot keeps every page written since in the WAL: it grows past both limits.
        handled = commands_until(commands, lambda size: size > SHRINK)
        wait_until(lambda: refused in caplog.text, what="a warning about the reader")
        handled += commands_until(commands, lambda size: size > 2 * SHRINK)
        assert caplog.text.count(refused) == 1  # said once, though every commit since tried again
        holder.stdin.close()
        assert holder.wait(10) == 0
    # The thread lives on: a checkpoint after the reader left truncates the file it let grow.
    handled += commands_until(commands, lambda size: size <= LIMIT)
    assert "WAL started over" in caplog.text
    assert len(core.chat.pending()) == handled  # every answer queued (no delivery here), none lost
