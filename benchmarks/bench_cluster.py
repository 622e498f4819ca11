"""Several nodes on PostgreSQL (#15), against one node on SQLite and the floor, in the same run.

- lateness: N one-shot tasks spread evenly over a few seconds (bench_firing's workload); each start
  against its due instant, p50 and p99. Peers: floor+pipes (a bare loop spawning as a supervised
  run must), moltbot on SQLite, moltbot on PostgreSQL with 1, 2 and 3 nodes (one database, a
  MOLTBOT_HOME each, the same tasks).
- rate: N tasks due at one instant; occurrences fired per second (N / the last start's lateness).
- recovery: a node killed (SIGKILL) while it runs a long task, ``--kills`` times; the time from the
  kill until another node has started the task again (the lease, ``--lease`` seconds, must run out
  first: the figure is the lease plus how long the others take to notice).

The PostgreSQL server is a throw-away cluster on this machine (tests/pg.py) with fsync on.

Usage: python benchmarks/bench_cluster.py [--tasks 300] [--spread 5] [--rounds 2] [--kills 10] [--lease 30]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_firing import run_floor, schedule_instants  # noqa: E402
from harness import MoltbotHome, iso, make_probe, percentiles, read_starts, wait_for_files  # noqa: E402

from tests.pg import PgCluster, start_cluster  # noqa: E402

LEAD = 8.0  # bench_firing's 6 s, and time for the nodes to connect


def run_nodes(dues: list[float], out: Path, nodes: int, cluster: PgCluster | None) -> None:
    """``nodes`` daemons sharing one new PostgreSQL database (``cluster`` None: one on SQLite)."""
    tasks = [
        {
            "task_id": f"t{i}",
            "script_path": "probe.sh",
            "schedule": f"at {iso(due)}",
            "args": [str(out / f"t{i}")],
        }
        for i, due in enumerate(dues)
    ]
    target = cluster.new_database() if cluster else None
    homes = [
        MoltbotHome(
            tasks, daemon_toml=f'node = "n{n}"\n', env={"MOLTBOT_DATABASE_URL": target.url} if target else {}
        )
        for n in range(1, nodes + 1)
    ]
    try:
        for home in homes:
            home.start()
        wait_for_files(out, len(dues), timeout=LEAD + 120, quiet_until=max(dues) + 0.05)
    finally:
        for home in homes:
            home.stop()
            shutil.rmtree(home.root, ignore_errors=True)
        if cluster and target:
            cluster.drop(target)


def one_round(runner: str, count: int, spread: float, cluster: PgCluster, burst: bool) -> list[float]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{runner}-"))
    dues = [due + (LEAD - 6.0) for due in schedule_instants(count, spread, burst=burst)]
    if runner == "floor+pipes":
        run_floor(dues, out, make_probe(Path(tempfile.mkdtemp(prefix="probe-"))), supervised=True)
    elif runner == "sqlite":
        run_nodes(dues, out, 1, None)
    else:
        run_nodes(dues, out, int(runner.split("x")[1]), cluster)
    starts = read_starts(out, [f"t{i}" for i in range(count)])
    shutil.rmtree(out, ignore_errors=True)
    return [starts[f"t{i}"] - due for i, due in enumerate(dues)]


def recovery_seconds(cluster: PgCluster, lease: float) -> float:
    """One kill: two nodes, a long task running on one; SIGKILL it; until the other started it again."""
    import psycopg2

    target = cluster.new_database()
    tasks = [{"task_id": "long", "script_path": "long.sh", "schedule": "every 24h", "missed": "once"}]
    homes = [
        MoltbotHome(
            tasks,
            daemon_toml=f'node = "n{n}"\nlease_seconds = {lease}\n',
            env={"MOLTBOT_DATABASE_URL": target.url},
        )
        for n in (1, 2)
    ]
    asking = None
    try:
        for home in homes:
            (home.root / "tasks" / "long.sh").write_text("#!/bin/sh\nsleep 3600\n")
            (home.root / "tasks" / "long.sh").chmod(0o755)
            home.start()
        asking = subprocess.Popen([sys.executable, "-m", "moltbot", "run", "long"], env=homes[0].env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        conn = psycopg2.connect(target.url)
        conn.autocommit = True

        def running(trigger: str) -> str | None:
            with conn.cursor() as cursor:
                cursor.execute("SELECT node FROM run WHERE status = 'running' AND trigger = %s", (trigger,))
                row = cursor.fetchone()
            return row[0] if row else None

        while (node := running("manual")) is None:
            time.sleep(0.05)
        victim = homes[int(node[1:]) - 1]
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while running("recovery") is None:
            if time.monotonic() - killed > lease * 3 + 30:
                raise TimeoutError("no recovery")
            time.sleep(0.05)
        took = time.monotonic() - killed
        conn.close()
        return took
    finally:
        if asking is not None:
            asking.kill()
            asking.wait()
        for home in homes:
            home.stop()
            shutil.rmtree(home.root, ignore_errors=True)
        cluster.drop(target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--spread", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=30.0)
    args = parser.parse_args()
    cluster = start_cluster(durable=True)
    if isinstance(cluster, str):
        raise SystemExit(f"no PostgreSQL: {cluster}")
    try:
        runners = ["floor+pipes", "sqlite", "pgx1", "pgx2", "pgx3"]
        for kind in ("lateness", "rate"):
            results: dict[str, list[float]] = {runner: [] for runner in runners}
            spans: dict[str, list[float]] = {runner: [] for runner in runners}
            for round_index in range(args.rounds):
                shift = round_index % len(runners)
                for runner in runners[shift:] + runners[:shift]:  # interleaved: the machine's drift is shared
                    lateness = one_round(runner, args.tasks, args.spread, cluster, burst=kind == "rate")
                    results[runner].extend(lateness)
                    spans[runner].append(max(lateness))
            print(f"\n== {kind}: {args.tasks} tasks, {args.rounds} rounds ==")
            floor = percentiles(results["floor+pipes"])
            for runner in runners:
                stats = percentiles(results[runner])
                if kind == "lateness":
                    print(
                        f"{runner:12s} p50 {stats['p50'] * 1000:7.2f} ms  p99 {stats['p99'] * 1000:7.2f} ms  "
                        f"p99 vs floor+pipes {stats['p99'] / floor['p99']:5.2f}x"
                    )
                else:
                    best = min(spans[runner])
                    print(
                        f"{runner:12s} {args.tasks / best:8.0f} occurrences/s "
                        f"(all {args.tasks} in {best * 1000:.0f} ms)"
                    )
        if args.kills:
            took = [recovery_seconds(cluster, args.lease) for _ in range(args.kills)]
            print(f"\n== recovery after SIGKILL of a node: {args.kills} kills, lease {args.lease:g} s ==")
            print(f"median {statistics.median(took):.2f} s  max {max(took):.2f} s  (lease + noticing it)")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
