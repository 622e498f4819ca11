"""Pings to an outside monitor (the healthchecks.io protocol), sent off every thread that matters.

A monitor (healthchecks.io, a self-hosted Healthchecks, or any service of the same protocol)
alerts when the pings it expects stop coming: what moltbot cannot tell anyone itself when the
whole machine is down. A task's ``ping_url`` hears ``/start`` when a run starts, the plain URL
on success, ``/<exit code>`` on a failure with one and ``/fail`` on any other end that is not a
success (a timeout, a stop); start and end carry the same ``rid`` (the run's), so the monitor
pairs them and shows the run's duration. ``[daemon] heartbeat_url`` hears the plain URL after
good passes of the daemon's loop (``heartbeat.py``).

Best-effort, on purpose: the pings wait in a bounded queue, in memory, for one supervised
thread (``threads.py``), so a slow or dead monitor never delays a run nor the loop. A ping a
crash loses is not sent again: the monitor sees the gap, which is the point. A request has one
deadline (``retries.PING_TIMEOUT_SECONDS``, name lookup to answer), reads at most
``MAX_ANSWER_BYTES`` of the answer (its status line; the rest is ignored) and is tried again
(``retries.PING_STOP``, ``PING_WAIT``) only when it surely did not reach the monitor (no
connection) or when repeating it is harmless: a second success ping or heartbeat only says
again that all is well. How each URL fares is told to a ``PingWatch`` (the health board).
"""

from __future__ import annotations

import base64
import logging
import queue
import re
import socket
import ssl
import threading
import time
import uuid
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from moltbot import retries
from moltbot.redact import masked_url
from moltbot.threads import Supervised, ThreadWatch, describe

__all__ = ["MAX_ANSWER_BYTES", "PingFailed", "PingWatch", "Pings", "ping", "ping_address"]

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024  # enough for any status line; a monitor's answer says no more that matters
QUEUE_SIZE = 1000  # pings waiting; past it, new ones are dropped (and logged once per backlog)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


class PingFailed(Exception):
    """A ping that got no 2xx answer; ``sent``: the request may have reached the monitor."""

    def __init__(self, message: str, sent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.status = status


class PingWatch(ThreadWatch, Protocol):
    """Told how each monitor's pings fare (``name``: "heartbeat" or a task id); must not block."""

    def ping_result(self, name: str, url: str, error: str | None) -> None: ...


class _Ping(NamedTuple):
    name: str
    url: str  # the whole address (its suffix and rid included)
    shown: str  # the monitor's URL masked (redact.masked_url), for logs and status
    suffix: str
    repeatable: bool  # sending it twice is harmless


def ping_address(base: str, suffix: str = "", rid: str | None = None) -> str:
    """``base`` + ``/suffix`` (start, fail, an exit code), and ``rid=`` in its query."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + (f"/{suffix}" if suffix else "")
    query = "&".join(part for part in (parts.query, f"rid={rid}" if rid else "") if part)
    return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))


def ping(url: str, timeout: float) -> int:
    """GET ``url`` within ``timeout`` seconds in all; its 2xx status. Raises ``PingFailed``."""
    parts = urlsplit(url)
    host, secure = parts.hostname or "", parts.scheme == "https"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}", "User-Agent: moltbot"]
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers.append(f"Authorization: Basic {base64.b64encode(credentials).decode()}")
    request = ("\r\n".join([*headers, "Connection: close", "", ""])).encode()
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(host, parts.port or (443 if secure else 80), deadline)
    except OSError as exc:
        raise PingFailed(f"no connection: {host}: {describe(exc)}", sent=False) from exc
    try:
        sock.settimeout(_left(deadline))  # CPython bounds a whole handshake, or sendall, by it
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(_left(deadline))
        sock.sendall(request)
        answer = _status_line(sock, deadline)
    except (OSError, ssl.SSLError) as exc:
        raise PingFailed(f"no answer: {describe(exc)}", sent=True) from exc
    finally:
        sock.close()
    found = _STATUS_LINE.match(answer)
    if found is None:
        raise PingFailed("not an HTTP answer", sent=True)
    status = int(found[1])
    if not 200 <= status < 300:
        raise PingFailed(f"HTTP {status}", sent=True, status=status)
    return status


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the monitor took too long")
    return left


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A connection to ``host`` made before ``deadline``, the name lookup included."""
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in _lookup(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def _lookup(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """getaddrinfo within the deadline. The C library's lookup cannot be interrupted (with a
    silent DNS server it waits resolv.conf's timeout times its attempts), so it runs in a thread of
    its own that is left behind, to end on its own, when the deadline comes first."""
    found: list[list[tuple[Any, ...]]] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=lookup, name=f"lookup {host}", daemon=True)
    worker.start()
    worker.join(_left(deadline))
    if failed:
        raise failed[0]
    if not found:
        raise TimeoutError("the name lookup did not end within the deadline")
    return found[0]


def _status_line(sock: socket.socket, deadline: float) -> bytes:
    """The answer's first line, read within the deadline and at most ``MAX_ANSWER_BYTES``."""
    answer = b""
    while b"\r\n" not in answer and len(answer) < MAX_ANSWER_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the monitor took too long to answer")
        sock.settimeout(left)
        chunk = sock.recv(MAX_ANSWER_BYTES - len(answer))
        if not chunk:
            break
        answer += chunk
    return answer


class Pings:
    """A queue of pings and the thread that sends them (started at the first one).

    ``latest_only``: only the newest ping waits (the heartbeat's lane: a heartbeat that could
    not go out in time says nothing a newer one does not). The daemon gives the heartbeat a
    lane of its own, so a dead task monitor (a minute of retries per ping) never holds it up.
    """

    def __init__(
        self, watch: PingWatch | None = None, thread: str = "pings", latest_only: bool = False
    ) -> None:
        self.watch = watch
        self._latest_only = latest_only
        self._queue: queue.Queue[_Ping | None] = queue.Queue(1 if latest_only else QUEUE_SIZE)
        self._thread = Supervised(thread, self._one_pass, watch)
        self._started = False
        self._lock = threading.Lock()
        self._dropping = False
        self._drained = threading.Event()

    def send(self, name: str, base: str, suffix: str = "", rid: str | None = None) -> None:
        """Queue a ping of ``base``; never blocks (a full queue drops it, saying so once)."""
        if not base:
            return
        url = ping_address(base, suffix, rid)
        shown = masked_url(base)
        item = _Ping(name, url, shown, suffix, repeatable=suffix == "")
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        try:
            if self._latest_only:
                self._replace_waiting(item)
            else:
                self._queue.put_nowait(item)
            self._dropping = False
        except queue.Full:
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "ping to %s dropped: %d pings wait already (the monitor is slow?)", shown, QUEUE_SIZE
                )

    def _replace_waiting(self, item: _Ping) -> None:
        with self._lock:  # one sender at a time: between the get and the put, nobody else puts
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def run_started(self, name: str, base: str, run_id: int) -> None:
        self.send(name, base, "start", _rid(base, run_id))

    def run_ended(self, name: str, base: str, run_id: int, status: str, exit_code: int | None) -> None:
        if status == "success":
            suffix = ""
        elif status == "failed" and exit_code is not None and 0 < exit_code < 256:
            suffix = str(exit_code)
        else:
            suffix = "fail"
        self.send(name, base, suffix, _rid(base, run_id))

    def stop(self, timeout: float | None = None) -> None:
        """Send what waits, within ``timeout`` (default: one ping's deadline and a bit), then end."""
        if not self._started:
            return
        wait = retries.PING_TIMEOUT_SECONDS + 1 if timeout is None else timeout
        end = time.monotonic() + wait
        try:
            self._queue.put(None, timeout=wait)  # after what waits: the thread ends there
            self._drained.wait(max(0.0, end - time.monotonic()))
        except queue.Full:
            pass
        self._thread.stop(0.1)  # what is left (a monitor that never answers) is lost: best-effort

    def _one_pass(self) -> None:
        item = self._queue.get()
        if item is None:
            self._thread.stopping.set()
            self._drained.set()
            return
        error = self._deliver(item)
        if self.watch is not None:
            self.watch.ping_result(item.name, item.shown, error)

    def _deliver(self, item: _Ping) -> str | None:
        attempt = 0
        while True:
            attempt += 1
            try:
                ping(item.url, retries.PING_TIMEOUT_SECONDS)
                return None
            except PingFailed as exc:
                again = not exc.sent or (item.repeatable and (exc.status is None or exc.status >= 500))
                if not again or retries.gives_up(retries.PING_STOP, attempt):
                    log.warning("ping %s /%s (%s) failed: %s", item.shown, item.suffix, item.name, exc)
                    return str(exc)
                time.sleep(retries.delay(retries.PING_WAIT, attempt))


def _rid(base: str, run_id: int) -> str:
    """The run's id as the monitor pairs a start with its end: a UUID, the same for both."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}#run-{run_id}"))
