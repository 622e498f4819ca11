"""The Signal gateway down and stalled at seeded moments: every reply goes out once or is visibly given up.

Outages, one after another in a seeded order and length:

- down: a run's result comes while nothing listens; it waits and goes out
  once when the gateway is back;
- stalled: the gateway accepts connections and answers nothing (signal-cli
  wedged behind its HTTP front), a run's result or a command's answer is sent
  into it; the send gets no answer, so it may have been delivered: it is given
  up (listed by ``moltbot outbox`` with why) and never sent again, though the
  gateway delivers it late, once, when it comes unstuck.

Throughout, scheduling goes on; afterwards a command still gets its answer
(the receiving, handling and sending threads are alive).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from tests.conftest import Env, wait_until
from tests.fake_gateway import BOT, FakeGateway, text_frame
from tests.faults.harness import Incarnation, count_runs, sleep_until

pytestmark = pytest.mark.slow

OWNER = "+4915100000001"
OWNER_UUID = "0b0e0a2c-1111-4222-8333-444455556666"
OUTAGES = 4
TIMEOUT = 0.5  # the gateway's timeout_seconds: how long a stalled send waits for its answer


def test_gateway_down_and_stalled_replies_once_or_visibly_given_up(
    env: Env, gateway: FakeGateway, fault_rng: random.Random, lives: Callable[[str], Incarnation]
) -> None:
    release = env.home.root / "release"
    env.script("job.sh", f'while [ ! -e {release}-$MOLTBOT_RUN_ID ]; do sleep 0.02; done\necho "done"\n')
    env.script("tick.sh", "true\n")
    settings = (
        f'[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["{OWNER}", "{OWNER_UUID}"]\n'
        f"timeout_seconds = {TIMEOUT}\n"
    )
    env.write_tasks(
        {"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"},
        {"task_id": "tick", "script_path": "tick.sh", "schedule": "every 1s"},
        settings=settings,
    )
    daemon = lives("gateway")
    daemon.wait_ready()
    wait_until(gateway.connected, what="the daemon's websocket")
    plan = [(fault_rng.choice(["down", "stalled run", "stalled answer"]), fault_rng.random() < 0.5,
             fault_rng.uniform(0, 1)) for _ in range(OUTAGES)]  # fmt: skip
    print("outages (kind, sockets dropped, seconds held):", plan)
    for kind, drop, hold in plan:
        ticks, notices = _ticks(env), len(_notices(gateway))
        if kind == "stalled answer":
            gateway.stall()
            # Its socket is still open: the command is received, and answered into the stall.
            _given_up(env, _say(gateway, "status"))
        else:
            command = _say(gateway, "run:job")
            wait_until(lambda c=command: _replies(gateway, c), what="the run's start acknowledged")
            run_id = _query(env, "SELECT max(id) FROM run WHERE task_id = 'job'")[0][0]
            gateway.stop() if kind == "down" else gateway.stall()
            (release.parent / f"{release.name}-{run_id}").touch()  # its result comes during the outage
            if kind == "down":
                wait_until(
                    lambda r=run_id: _tried(env, r), what="a try of the result while the gateway is down"
                )
            else:
                _given_up(env, command)
        if drop and kind != "down":
            gateway.drop_sockets()  # a restart that hangs: reconnecting meets the stall too
        wait_until(lambda t=ticks: _ticks(env) > t, what="scheduling to go on during the outage")
        sleep_until(time.monotonic() + hold)
        gateway.restart() if kind == "down" else gateway.unstall()
        wait_until(gateway.connected, timeout=20, what="the daemon to reconnect")
        # Each outage on its own: what this one left waiting is out before the next begins.
        if kind == "down" or drop:
            wait_until(lambda n=notices: len(_notices(gateway)) > n, what="the admins told it is back")
        _settled(env)

    last = _say(gateway, "status")
    wait_until(lambda: _replies(gateway, last), what="an answer after the outages")
    _settled(env)
    listing = env.cli("outbox").stdout
    assert daemon.stop() == 0

    rows = _query(  # an alert's row to "admins" is handed over to a row per admin: those are sent
        env, "SELECT status, address, reply_to, text, last_error FROM outbox WHERE address != 'admins'"
    )
    # A message is known by the command it answers or, unasked (an alert), by recipient and text.
    quoted = Counter((b["quote_timestamp"], b["message"]) for b in gateway.sent if b.get("quote_timestamp"))
    assert [key for key, count in quoted.items() if count > 1] == [], "an answer delivered twice"
    delivered = Counter(b.get("quote_timestamp") or (b["recipients"][0], b["message"]) for b in gateway.sent)
    promised: dict[Any, list[tuple[Any, ...]]] = {}
    for row in rows:
        promised.setdefault(row[2] or (row[1], row[3]), []).append(row)
    assert set(delivered) <= set(promised), "delivered without an outbox row"
    for key, mine in promised.items():
        assert {row[0] for row in mine} <= {"sent", "failed"}, mine
        sent, failed = sum(row[0] == "sent" for row in mine), [row for row in mine if row[0] == "failed"]
        # A message given up was perhaps delivered (the stall let it through late): never twice.
        assert sent <= delivered[key] <= sent + len(failed), (mine, delivered[key])
        for row in failed:
            assert row[4] and row[4][:40] in listing, (row, listing)
    expected_failures = sum(kind != "down" for kind, _, _ in plan)
    assert sum(row[0] == "failed" for row in rows) == expected_failures, rows
    assert "Traceback" not in daemon.output()


def _say(gateway: FakeGateway, text: str) -> int:
    timestamp = gateway.next_timestamp()
    assert gateway.push(text_frame(OWNER_UUID, text, timestamp, OWNER)), "the daemon's socket is open"
    return timestamp


def _replies(gateway: FakeGateway, command: int) -> list[str]:
    return [body["message"] for body in list(gateway.sent) if body.get("quote_timestamp") == command]


def _given_up(env: Env, command: int) -> None:
    """The answer to ``command`` (or its run's result) was sent into the stall and given up."""
    wait_until(lambda: _query(env, f"SELECT 1 FROM outbox WHERE reply_to = {command} AND status = 'failed'"),
               timeout=15, what="the stalled send to be given up")  # fmt: skip


def _settled(env: Env) -> None:
    wait_until(lambda: not _query(env, "SELECT id FROM outbox WHERE status IN ('pending', 'sending')"),
               what="every message delivered or given up")  # fmt: skip


def _notices(gateway: FakeGateway) -> list[str]:
    return [body["message"] for body in list(gateway.sent) if "back online" in body["message"]]


def _tried(env: Env, run_id: int) -> bool:
    """The run's result was tried (and not delivered) at least once."""
    return bool(_query(env, f"SELECT 1 FROM outbox WHERE run_id = {run_id} AND attempts > 0"))


def _ticks(env: Env) -> int:
    return count_runs(env, "task_id = 'tick' AND status = 'success'")


def _query(env: Env, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(env.home.db_path, timeout=15)) as conn:
        return conn.execute(query).fetchall()
