"""The sd_notify protocol: tell systemd we are ready, alive, stopping, and how we are.

A datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without
that variable every call does nothing. The watchdog interval is half of
``$WATCHDOG_USEC`` (when ``$WATCHDOG_PID`` is unset or ours), so a loop that
hangs misses its ping and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self._address = address
        self.watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._status: str | None = None  # the last STATUS= sent; None: not READY yet

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        address = environ.get("NOTIFY_SOCKET") or None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        return cls(address, int(usec) if usec.isdigit() and ours else None)

    @property
    def active(self) -> bool:
        return self._address is not None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")
        self._status = status

    def watchdog(self, status: str | None = None) -> None:
        self._send("WATCHDOG=1" + (f"\nSTATUS={status}" if status else ""))
        self._status = status or self._status

    def status(self, status: str) -> None:
        """STATUS= when it differs from the last one sent; nothing before READY, which carries one."""
        if self._status is None or status == self._status:
            return
        self._status = status
        self._send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        address = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), address)
        except OSError:
            pass  # systemd gone or the socket unreachable: nothing a daemon can do about it
