"""Command round trip over Signal: a ``status`` pushed on the gateway's websocket
until its reply reaches ``POST /v2/send``, one command at a time.

moltbot (a real daemon) and signalbot (PyPI, the usual Python framework on this
gateway, answering with the same text from the same database) take turns on
the same fake gateway (tests/fake_gateway.py, the real wire protocol), round
by round. Start-up is not measured.

Usage: python benchmarks/bench_signal.py [--commands 1000] [--rounds 4] [--tasks 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import MoltbotHome, percentiles  # noqa: E402

from tests.fake_gateway import BOT, FakeGateway, text_frame  # noqa: E402

OWNER_UUID = "0b0e0a2c-1111-4222-8333-444455556666"
OWNER = "+4915100000001"


def measure(gateway: FakeGateway, count: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Round trips in seconds; the next command goes only once the last reply is in."""
    timings = []
    stamp = int(time.time() * 1000)
    for index in range(count):
        before = len(gateway.sent)
        started = clock()
        assert gateway.push(text_frame(OWNER_UUID, "status", stamp + index, OWNER)), "no socket"
        gateway.wait_for_sent(before + 1, timeout=30)
        timings.append(gateway.sent_times[before] - started)
    return timings


def wait_connected(gateway: FakeGateway, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not gateway.connected():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the bot did not connect to the gateway")
        time.sleep(0.05)
    time.sleep(0.5)  # let start-up work (group lists, version checks) finish first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=30)
    args = parser.parse_args()
    per_round = args.commands // args.rounds
    # "unset", as dev and CI images of the gateway report: signalbot 2.2 refuses
    # release 0.100 (it wants 0.101) but skips its check for "unset".
    gateway = FakeGateway(version="unset")
    gateway.response_shape = "array"  # what releases after 0.100 answer, and signalbot 2.2 expects
    gateway.start()
    task = {"script_path": "probe.sh", "schedule": "daily at 03:00", "args": ["/dev/null"]}
    tasks = [{"task_id": f"task-{i:02d}", **task} for i in range(args.tasks)]
    results: dict[str, list[float]] = {"moltbot": [], "signalbot": []}
    with MoltbotHome(tasks) as home:
        settings = home.root / "config" / "moltbot.toml"
        settings.write_text(
            settings.read_text()
            + f'\n[signal]\nurl = "{gateway.url}"\nnumber = "{BOT}"\nallowed = ["{OWNER_UUID}"]\n'
        )
        for round_index in range(args.rounds):
            order = ["moltbot", "signalbot"] if round_index % 2 == 0 else ["signalbot", "moltbot"]
            for name in order:
                if name == "moltbot":
                    home.start()
                    assert home.process is not None
                    wait_connected(gateway, home.process)
                    results[name] += measure(gateway, per_round)
                    home.stop()
                else:
                    peer_script = str(Path(__file__).parent / "signalbot_peer.py")
                    service = f"127.0.0.1:{gateway.port}"
                    peer = subprocess.Popen(
                        [sys.executable, peer_script, service, BOT, str(home.root)], env=home.env
                    )
                    try:
                        wait_connected(gateway, peer)
                        results[name] += measure(gateway, per_round)
                    finally:
                        peer.terminate()
                        peer.wait(30)
                gateway.drop_sockets()
    gateway.stop()
    total = per_round * args.rounds
    print(f"\n== status round trip: {total} commands each, {args.tasks} tasks, {args.rounds} rounds ==")
    base = percentiles(results["signalbot"])
    for name, values in results.items():
        stats = percentiles(values)
        figures = f"p50 {stats['p50'] * 1000:7.2f} ms  p99 {stats['p99'] * 1000:7.2f} ms"
        ratio = stats["p99"] / base["p99"]
        print(f"{name:10s} {figures}  max {stats['max'] * 1000:7.2f} ms  p99 vs signalbot {ratio:5.2f}x")
    print(json.dumps({name: percentiles(values) for name, values in results.items()}))


if __name__ == "__main__":
    main()
