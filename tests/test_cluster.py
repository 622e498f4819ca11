"""Several daemons ("nodes") on one PostgreSQL database (#15): the same guarantees as on one box.

Each node is a real ``moltbot daemon`` with a MOLTBOT_HOME of its own (the same tasks.json and
scripts), all pointed at one database of the test cluster (tests/pg.py), with a short lease (3 s)
so that a lost node is noticed within seconds.
"""

from __future__ import annotations

import collections
import itertools
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from moltbot import store
from moltbot.config.database import PostgresTarget
from moltbot.config.home import Home
from tests.conftest import DaemonProcess, Env, alive, wait_until
from tests.fake_gateway import FakeGateway, text_frame
from tests.pg import PgCluster
from tests.pg_proxy import PartitionProxy
from tests.test_signal import OWNER, OWNER_UUID, now_ms, signal_toml

pytestmark = pytest.mark.slow
LEASE = 3.0
# A run's script: "OVERLAP" into ledger.bad when an earlier run's process is still alive as it starts.
_OVERLAP_CHECK = (
    'for pid in $(cut -d" " -f2 {ledger} 2>/dev/null); do\n'
    '  kill -0 "$pid" 2>/dev/null && echo "OVERLAP $pid" >> {ledger}.bad\n'
    "done\n"
    'echo "$MOLTBOT_RUN_ID $$ start" >> {ledger}\n'
)


def _node_home(root: Path, name: str, database: PostgresTarget, tasks: list[dict[str, Any]]) -> Env:
    home = Home(root / name)
    for directory in (home.config_dir, home.tasks_dir, home.data_dir, home.logs_dir):
        directory.mkdir(parents=True)
    node = Env(home, database=database)
    node.write_tasks(*tasks, settings=f'[daemon]\nnode = "{name}"\nlease_seconds = {LEASE}\n')
    return node


@pytest.fixture
def cluster(tmp_path: Path, pg_database: PostgresTarget) -> Iterator[Callable[..., list[DaemonProcess]]]:
    """``cluster(tasks, scripts, nodes=3)``: that many daemons on one database."""
    started: list[DaemonProcess] = []

    def start(tasks: list[dict[str, Any]], scripts: dict[str, str], nodes: int = 3) -> list[DaemonProcess]:
        for index in range(1, nodes + 1):
            node = _node_home(tmp_path, f"n{index}", pg_database, tasks)
            for name, body in scripts.items():
                node.script(name, body)
            started.append(DaemonProcess(node))
        store.open_db(pg_database)
        return started

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()
        daemon.log.close()


def _in_background(request: pytest.FixtureRequest, node: Env, *args: str) -> None:
    """A CLI command left waiting (``moltbot run`` waits for the run's end), ended with the test."""
    process = subprocess.Popen(node.cli_argv(*args), env=node.environ, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip

    def end() -> None:
        process.kill()
        process.wait()

    request.addfinalizer(end)


def _behind_a_proxy(
    request: pytest.FixtureRequest, root: Path, cluster: PgCluster, database: PostgresTarget, tasks: list[Any]
) -> tuple[Env, PartitionProxy]:
    """Node n1, which reaches the database through a proxy the test can freeze (a partition)."""
    proxy = PartitionProxy("127.0.0.1", cluster.port)
    request.addfinalizer(proxy.close)
    name = database.url.rsplit("/", 1)[1]
    return _node_home(root, "n1", PostgresTarget(cluster.url(name, port=proxy.port)), tasks), proxy


def _runs(where: str = "TRUE") -> list[tuple[Any, ...]]:
    return (
        store.connection()
        .execute(
            "SELECT id, task_id, status, trigger, scheduled_for, attempt, node, started_at, finished_at, "
            "message "
            f"FROM run WHERE {where} ORDER BY id"
        )
        .fetchall()
    )


def test_three_nodes_run_every_occurrence_exactly_once(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = tmp_path / "ledger"
    tasks = [{"task_id": f"t{i}", "script_path": "note.sh", "schedule": "every 1s"} for i in range(6)]
    nodes = cluster(tasks, {"note.sh": f'echo "$MOLTBOT_RUN_ID $MOLTBOT_TASK_ID" >> {ledger}\n'})
    wait_until(lambda: len(_runs("status = 'success'")) >= 60, timeout=40, what="60 runs across the nodes")
    for node in nodes:
        assert node.stop() == 0
    runs = _runs("scheduled_for IS NOT NULL AND status NOT IN ('skipped', 'missed')")
    per_occurrence = collections.Counter(
        (task, scheduled) for _, task, _, _, scheduled, _, _, _, _, _ in runs
    )
    assert max(per_occurrence.values()) == 1  # the database's key; and no node ran one twice:
    lines = ledger.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len([run for run in runs if run[2] == "success"])
    for task in {task for task, _ in per_occurrence}:
        instants = sorted(store.from_db(s) for t, s in per_occurrence if t == task)
        gaps = [later - earlier for earlier, later in itertools.pairwise(instants)]
        assert set(gaps) <= {timedelta(seconds=1)}, f"{task}: an occurrence was not claimed: {gaps}"
    assert {run[6] for run in runs} <= {"n1", "n2", "n3"} and all(run[6] for run in runs)
    assert len({run[6] for run in runs}) >= 2  # the work was shared: claims raced and never collided
    skipped_as_bugs = _runs("message LIKE '%please report this as a bug%'")
    assert skipped_as_bugs == []
    # Which node ran what, in logs and history (on SQLite neither says it: one box).
    assert re.search(r"t0: run \d+ started \(schedule\) on n[123]", nodes[0].env.cli("logs", "t0").stdout)
    assert re.search(r"ran on n\d \(\d+\)", nodes[0].env.cli("history", "t0").stdout)


def test_a_node_killed_mid_run_is_recovered_elsewhere_without_overlap(
    cluster, tmp_path: Path, request
) -> None:  # type: ignore[no-untyped-def]
    ledger = tmp_path / "ledger"
    script = _OVERLAP_CHECK.format(ledger=ledger) + "sleep 20\n"
    tasks = [{"task_id": "long", "script_path": "long.sh", "schedule": "every 1h", "missed": "once"}]
    nodes = cluster(tasks, {"long.sh": script})
    # Asked for on n1's host; whichever node claims it first runs it.
    _in_background(request, nodes[0].env, "run", "long")
    first = wait_until(lambda: _runs("status = 'running'"), what="the run to start")[0]
    victim = next(node for node in nodes if node.env.home.root.name == first[6])
    wait_until(lambda: ledger.exists() and ledger.read_text().strip(), what="the script to start")
    pid = int(ledger.read_text().split()[1])
    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.process.wait(5)
    wait_until(lambda: not alive(pid), timeout=5, what="the fence keeper to kill the run")
    recovered = wait_until(
        lambda: _runs("trigger = 'recovery' AND status = 'running'"),
        timeout=LEASE * 3 + 5,
        what="the recovery run",
    )[0]
    took = time.monotonic() - killed_at
    assert took <= LEASE + LEASE / 6 + 2.5, f"recovered after {took:.1f} s"
    assert recovered[6] != victim.env.home.root.name
    (interrupted,) = _runs(f"id = {first[0]}")
    assert interrupted[2] == "interrupted" and victim.env.home.root.name in interrupted[9]
    assert not (tmp_path / "ledger.bad").exists()


def test_a_request_on_one_host_wakes_another_node_at_once(cluster, request) -> None:  # type: ignore[no-untyped-def]
    tasks = [{"task_id": "hourly", "script_path": "quick.sh", "schedule": "every 1h"}]
    first, _second = cluster(tasks, {"quick.sh": "true\n"}, nodes=2)
    wait_until(lambda: _runs("status = 'success'") or True)  # both registered (the first pass ran)
    first.signal(signal.SIGSTOP)  # alive (the CLI queues for it), but deaf: only NOTIFY wakes n2
    request.addfinalizer(lambda: first.signal(signal.SIGKILL))
    _in_background(request, first.env, "run", "hourly")
    ran = wait_until(lambda: _runs("trigger = 'manual' AND started_at IS NOT NULL"), what="the run on n2")[0]
    queued_at, started_at = (
        store.connection().execute("SELECT queued_at, started_at FROM run WHERE id = ?", (ran[0],)).fetchone()
    )
    assert ran[6] == "n2"
    # Long before n1's lease (3 s) could run out and its settling wake n2 up.
    assert store.from_db(started_at) - store.from_db(queued_at) < timedelta(seconds=1)


def test_a_node_cut_off_from_the_database_fences_its_runs_and_nothing_runs_twice(
    tmp_path: Path, pg_cluster: PgCluster, pg_database: PostgresTarget, request: pytest.FixtureRequest
) -> None:
    ledger = tmp_path / "ledger"
    tasks = [{"task_id": "long", "script_path": "long.sh", "schedule": "every 1h", "missed": "once"}]
    cut_off, proxy = _behind_a_proxy(request, tmp_path, pg_cluster, pg_database, tasks)
    other = _node_home(tmp_path, "n2", pg_database, tasks)
    for node in (cut_off, other):
        node.script("long.sh", _OVERLAP_CHECK.format(ledger=ledger) + "sleep 20\n")
    first = DaemonProcess(cut_off)
    request.addfinalizer(first.kill)
    store.open_db(pg_database)
    _in_background(request, cut_off, "run", "long")
    original = wait_until(lambda: _runs("status = 'running'"), what="the run on n1")[0]
    second = DaemonProcess(other)
    request.addfinalizer(second.kill)
    wait_until(lambda: ledger.exists() and ledger.read_text().strip(), what="the script to start")
    pid = int(ledger.read_text().split()[1])

    proxy.freeze()
    frozen_at = time.monotonic()
    wait_until(lambda: not alive(pid), timeout=LEASE, what="n1 to kill its own run (fencing)")
    fenced_after = time.monotonic() - frozen_at
    assert fenced_after < LEASE  # before its lease can run out: before anyone may re-run it
    recovery = wait_until(
        lambda: _runs("trigger = 'recovery' AND started_at IS NOT NULL"), timeout=30, what="n2 to re-run it"
    )[0]
    assert recovery[6] == "n2"

    proxy.thaw()
    assert first.process.wait(30) == 75  # its lease was lost: it starts again as a new session
    executions = _runs("task_id = 'long' AND started_at IS NOT NULL")
    assert (executions[0][0], executions[0][2]) == (original[0], "interrupted")
    assert "n1" in executions[0][9] and "n2" in executions[0][9]  # lost by n1, settled by n2
    assert len(executions) == 2 and executions[1][3] == "recovery"  # nothing ran a third time
    assert not (tmp_path / "ledger.bad").exists()
    assert "runs killed" in first.output()


def test_the_same_signal_command_at_every_node_is_handled_and_answered_once(  # type: ignore[no-untyped-def]
    cluster, request, tmp_path: Path, pg_database: PostgresTarget
) -> None:
    gateways = [FakeGateway(ping_seconds=1.0).start() for _ in range(3)]
    for gateway in gateways:
        request.addfinalizer(gateway.stop)
    tasks = [{"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"}]
    nodes = cluster(tasks, {"job.sh": "echo hello from job\n"}, nodes=0)
    for index, gateway in enumerate(gateways, 1):
        node = _node_home(tmp_path, f"n{index}", pg_database, tasks)
        node.script("job.sh", "echo hello from job\n")
        node.write_tasks(*tasks, settings=node.home.settings_toml.read_text() + signal_toml(gateway))
        nodes.append(DaemonProcess(node))
    for gateway in gateways:
        wait_until(gateway.connected, what="every node's websocket")

    def everywhere(text: str) -> None:
        timestamp = now_ms()  # one message: the same envelope reaches every node
        for gateway in gateways:
            assert gateway.push(text_frame(OWNER_UUID, text, timestamp, OWNER))

    def answers() -> list[str]:
        return [text for gateway in gateways for text in gateway.texts_to(OWNER)]

    everywhere("status")
    wait_until(lambda: len(answers()) >= 1, what="the answer")
    assert "nodes: n1 · n2 · n3" in answers()[0]
    cli_status = nodes[0].env.cli("status", check=True).stdout
    assert "nodes: n1 on " in cli_status and ", n3 on " in cli_status
    everywhere("run:job")
    wait_until(lambda: any("hello from job" in text for text in answers()), what="the run's result")
    (result,) = [text for text in answers() if "hello from job" in text]
    assert any(f"(run {run[0]} on {run[6]})" in result for run in _runs("task_id = 'job'")), result
    for node in nodes:
        assert node.stop() == 0  # everything queued went out before this
    texts = answers()
    assert len([text for text in texts if text.startswith("moltbot:")]) == 1, texts
    assert len([text for text in texts if "hello from job" in text]) == 1, texts
    assert len(texts) == 3, texts  # status; run:job's acknowledgment; its result
    assert store.connection().execute("SELECT count(*) FROM inbox").fetchone()[0] == 2
    assert len(_runs("task_id = 'job' AND started_at IS NOT NULL")) == 1


def test_a_node_with_another_tasks_json_stands_aside_and_says_so(
    tmp_path: Path, pg_database: PostgresTarget, request
) -> None:  # type: ignore[no-untyped-def]
    ledger = tmp_path / "ledger"
    tasks = [{"task_id": "tick", "script_path": "note.sh", "schedule": "every 1s"}]
    edited = [{**tasks[0], "priority": 3}]  # the same task, defined otherwise
    first = _node_home(tmp_path, "n1", pg_database, tasks)
    second = _node_home(tmp_path, "n2", pg_database, edited)
    for node in (first, second):
        node.script("note.sh", f'echo "$MOLTBOT_RUN_ID" >> {ledger}\n')
    one = DaemonProcess(first)
    request.addfinalizer(one.kill)
    store.open_db(pg_database)
    wait_until(lambda: _runs("node = 'n1' AND status = 'success'"), what="a run on n1")
    two = DaemonProcess(second)  # syncs its own tasks.json: the database's is now n2's
    request.addfinalizer(two.kill)
    wait_until(lambda: "differs from the one n2 wrote" in one.output(), timeout=LEASE, what="n1 to notice")
    (since,) = store.connection().execute("SELECT max(id) FROM run").fetchone()
    wait_until(lambda: len(_runs(f"id > {since} AND status = 'success'")) >= 3, what="3 runs after it")
    assert {run[6] for run in _runs(f"id > {since} + 1 AND started_at IS NOT NULL")} == {
        "n2"
    }  # n1 runs nothing
    alerts = store.connection().execute("SELECT text FROM outbox WHERE text LIKE '%differs from the one n2%'")
    assert len(alerts.fetchall()) == 1  # told once
    doctor = first.cli("doctor")
    assert "tasks.json differs from the one n2 wrote" in doctor.stdout
    assert "nodes up: n1, n2" in doctor.stdout or "nodes up: n2, n1" in doctor.stdout
    assert _runs("message LIKE '%please report this as a bug%'") == []


def test_one_node_leads_and_another_takes_over_when_it_dies(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = cluster([], {}, nodes=3)

    def leading() -> list[DaemonProcess]:
        return [node for node in nodes if "leads: the Discord Tasks Channel" in node.output()]

    (leader,) = wait_until(leading, what="a leader")
    # A negative: no second leader within a window in which each listener tries the lock once.
    time.sleep(LEASE / 6 + 0.2)
    assert leading() == [leader]
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(5)
    wait_until(lambda: len(leading()) == 2, timeout=LEASE * 2, what="another node to lead")


def test_a_node_cut_off_briefly_fences_its_run_and_runs_it_again_once(
    tmp_path: Path, pg_cluster: PgCluster, pg_database: PostgresTarget, request: pytest.FixtureRequest
) -> None:
    ledger = tmp_path / "ledger"
    tasks = [{"task_id": "long", "script_path": "long.sh", "schedule": "every 1h", "missed": "once"}]
    cut_off, proxy = _behind_a_proxy(request, tmp_path, pg_cluster, pg_database, tasks)
    cut_off.script("long.sh", _OVERLAP_CHECK.format(ledger=ledger) + "sleep 20\n")
    node = DaemonProcess(cut_off)
    request.addfinalizer(node.kill)
    store.open_db(pg_database)
    _in_background(request, cut_off, "run", "long")
    original = wait_until(lambda: _runs("status = 'running'"), what="the run")[0]
    wait_until(lambda: ledger.exists() and ledger.read_text().strip(), what="the script to start")
    pid = int(ledger.read_text().split()[1])

    proxy.freeze()
    wait_until(lambda: not alive(pid), timeout=LEASE, what="the fence to kill the run")
    proxy.thaw()  # within the lease: nobody settled the node, it goes on
    again = wait_until(
        lambda: _runs("trigger = 'recovery' AND started_at IS NOT NULL"), what="the run again"
    )[0]
    assert again[5] == 2  # the occurrence's second attempt
    (fenced,) = _runs(f"id = {original[0]}")
    assert fenced[2] == "interrupted" and "fenced" in fenced[9]
    assert node.process.poll() is None  # it kept its session
    assert not (tmp_path / "ledger.bad").exists()
    assert len(_runs("task_id = 'long' AND started_at IS NOT NULL")) == 2


def test_a_node_stopping_cleanly_hands_its_run_to_the_others_with_its_checkpoint(  # type: ignore[no-untyped-def]
    cluster, request, tmp_path: Path
) -> None:
    seen = tmp_path / "checkpoints-seen"
    script = (
        f'echo "${{MOLTBOT_CHECKPOINT:-none}}" >> {seen}\n'
        + "moltbot checkpoint save '{\"step\": 2}'\nsleep 20\n"
    )
    tasks = [{"task_id": "long", "script_path": "long.sh", "schedule": "every 1h"}]
    nodes = cluster(tasks, {"long.sh": script}, nodes=2)
    _in_background(request, nodes[0].env, "run", "long")
    first = wait_until(lambda: _runs("status = 'running'"), what="the run")[0]
    wait_until(lambda: store.load_checkpoint("long") == '{"step": 2}', what="its checkpoint")
    stopping = next(node for node in nodes if node.env.home.root.name == first[6])
    assert stopping.stop() == 0
    resumed = wait_until(lambda: _runs("trigger = 'resume' AND started_at IS NOT NULL"), what="the resume")[0]
    assert resumed[6] != first[6]  # the node still up carries on, now, not when the other comes back
    wait_until(lambda: len(seen.read_text().splitlines()) == 2, what="the resumed run to start")
    assert seen.read_text().splitlines() == ["none", '{"step": 2}']  # it goes on from the checkpoint
    task = store.get_task("long")
    assert task is not None and task.paused_by is None


def test_a_second_daemon_under_a_name_in_use_refuses_to_start(cluster, tmp_path: Path, pg_database) -> None:  # type: ignore[no-untyped-def]
    (running,) = cluster([], {}, nodes=1)
    twin = _node_home(tmp_path / "elsewhere", "n1", pg_database, [])  # another home, the same node name
    result = subprocess.run(
        twin.cli_argv("daemon"), env=twin.environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert "node name 'n1' is in use by a running daemon" in result.stderr
    assert running.process.poll() is None  # and the first one's session is untouched
    assert [(s.node, s.pid) for s in store.live_sessions()] == [("n1", running.process.pid)]


def test_a_retry_after_the_run_was_settled_elsewhere_does_not_start(pg_database: PostgresTarget) -> None:
    from datetime import UTC, datetime

    from moltbot.run_result import RunResult
    from moltbot.store.runs import start_run

    store.open_db(pg_database)
    now = datetime.now(UTC)
    store.sync_tasks(
        [store.TaskDefinition("job", "job", "{}", "every 1h@UTC", 5, True, "skip", None)],
        now, lambda _t, _a: now, lambda _t: True,
    )  # fmt: skip
    lost = store.open_session("nas-1", "host-1", 1, now, 30)
    with store.write_transaction():
        ticket = start_run("job", "schedule", now, scheduled_for=now)
    store.use_node("nas-2")
    assert store.settle_session(lost, "nas-2", "nas-1", now)  # nas-1's lease ran out: nas-2 settled it
    failure = RunResult("failed", 1, now, now, "exit code 1", "", "", None)
    assert store.begin_retry(ticket, failure, now) is None  # nas-1, back: no retry of a run not its own
    runs = store.connection().execute("SELECT id, status FROM run ORDER BY id").fetchall()
    assert runs == [(ticket.id, "interrupted")]
