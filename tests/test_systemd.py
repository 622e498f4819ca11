"""sd_notify against a real AF_UNIX datagram socket, with the real daemon."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DaemonProcess, Env


def receive(sock: socket.socket, until: Callable[[list[str]], bool], timeout: float = 15) -> list[str]:
    sock.settimeout(timeout)
    messages: list[str] = []
    while not until(messages):
        messages.append(sock.recv(4096).decode())
    return messages


def test_ready_watchdog_status_and_stopping(
    env: Env, start_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    env.script("job.sh", "true\n")
    env.write_tasks({"task_id": "job", "script_path": "job.sh", "schedule": "daily at 03:00"})
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        daemon = start_daemon(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="400000")  # a ping every 0.2 s
        messages = receive(sock, lambda got: sum("WATCHDOG=1" in m for m in got) >= 3)
        assert messages[0].startswith("READY=1\nSTATUS=1 tasks, 0 running")
        assert f"MAINPID={daemon.process.pid}" in messages[0]
        assert all("STATUS=1 tasks" in m for m in messages[1:])  # the loop pets it though nothing is due
        daemon.signal(signal.SIGTERM)
        stopping = receive(sock, lambda got: any(m.startswith("STOPPING=1") for m in got))
        assert any(m.startswith("STOPPING=1\nSTATUS=stopping (SIGTERM)") for m in stopping)
        assert daemon.process.wait(20) == 0


def test_without_notify_socket_the_idle_daemon_never_wakes(env: Env) -> None:
    from moltbot.systemd import Notifier

    notifier = Notifier.from_env({})
    assert not notifier.active and notifier.watchdog_interval is None
    notifier.ready("x")  # does nothing, raises nothing
    assert (
        Notifier.from_env(
            {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
        ).watchdog_interval
        is None
    )
