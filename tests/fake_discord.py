"""A fake Discord REST v10 on 127.0.0.1 with the real wire behaviour moltbot relies on.

Messages newest first with ``limit``/``before`` pagination; create (author =
the bot), edit (author only: 403 code 50005), delete (204, or 404 code 10008);
``POST /users/@me/channels`` (DM); ``GET /users/@me``; 401 for a wrong token;
``X-RateLimit-*`` headers per bucket and 429s with ``retry_after`` (per bucket
or global). Every request is logged with its arrival time, so tests can check
that no request came before a rate limit allowed it. ``garbage`` answers a
route's next requests with raw bytes of a test's choosing (Discord, or a proxy
in front of it, gone wrong). HTTP plumbing: tests/loopback.py.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import Loopback, Reply, Request

TOKEN = "fake-bot-token"
BOT_ID = "900000000000000001"
HUMAN_ID = "900000000000000002"


@dataclass
class Bucket:
    limit: int = 5
    reset_after: float = 1.0
    used: int = 0
    window_start: float = 0.0
    storm: int = 0  # answer the next N requests with 429 regardless
    storm_retry_after: float = 0.3
    storm_global: bool = False
    not_before: float = 0.0  # a request before this violates a 429 it was given


@dataclass
class Logged:
    at: float
    method: str
    path: str
    early: bool  # sent before a rate limit allowed it


@dataclass
class FakeDiscord:
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    dms: dict[str, str] = field(default_factory=dict)
    fail_edits: bool = False  # PATCH answers 500 (Discord having trouble)
    forbidden_channels: set[str] = field(default_factory=set)  # posting there: 403 code 50013
    # route ("GET /channels/1/messages") -> the next answers to it, as they go on the wire
    garbage: dict[str, list[Reply]] = field(default_factory=dict)
    port: int = 0
    _next_id: int = 1_200_000_000_000_000_000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Loopback | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    def start(self) -> FakeDiscord:
        self._server = Loopback(self._serve, port=self.port).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def post(self, channel_id: str, content: str, author_id: str = HUMAN_ID) -> dict[str, Any]:
        """A message as someone (a human, by default) posts it."""
        with self._lock:
            self._next_id += 1
            message = {
                "id": str(self._next_id),
                "channel_id": channel_id,
                "content": content,
                "author": {"id": author_id, "bot": author_id == BOT_ID},
                "timestamp": time.time(),
            }
            self.channels.setdefault(channel_id, []).append(message)
        return message

    def bucket(self, route: str) -> Bucket:
        with self._lock:
            return self.buckets.setdefault(route, Bucket())

    @property
    def early_requests(self) -> list[Logged]:
        return [entry for entry in self.log if entry.early]

    # --- request handling ------------------------------------------------------------

    def _serve(self, request: Request) -> Reply:
        path = request.path.removeprefix("/api/v10")
        with self._lock:
            canned = self.garbage.get(_route(request.method, path))
            if canned:
                self.log.append(Logged(time.monotonic(), request.method, path, False))
                return canned.pop(0)
        token = request.headers.get("authorization", "")
        status, answer, headers = self.handle(request.method, path, request.query, request.body, token)
        return Reply(status, answer, headers=headers)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, token: str
    ) -> tuple[int, Any, dict[str, str]]:
        route = _route(method, path)
        bucket = self.bucket(route)
        now = time.monotonic()
        with self._lock:
            early = now < bucket.not_before
            self.log.append(Logged(now, method, path, early))
        if token != f"Bot {TOKEN}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        with self._lock:
            if bucket.storm > 0:
                bucket.storm -= 1
                bucket.not_before = now + bucket.storm_retry_after
                answer = {"message": "You are being rate limited.", "retry_after": bucket.storm_retry_after,
                          "global": bucket.storm_global}  # fmt: skip
                headers = {"Retry-After": str(bucket.storm_retry_after), "X-RateLimit-Scope": "user"}
                if bucket.storm_global:
                    headers["X-RateLimit-Global"] = "true"
                return 429, answer, headers
            if now - bucket.window_start >= bucket.reset_after:
                bucket.window_start, bucket.used = now, 0
            bucket.used += 1
            reset_after = max(0.0, bucket.reset_after - (now - bucket.window_start))
            headers = {
                "X-RateLimit-Limit": str(bucket.limit),
                "X-RateLimit-Remaining": str(max(0, bucket.limit - bucket.used)),
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": f"bucket-{abs(hash(route)) % 10**8}",
            }
            if bucket.used > bucket.limit:
                bucket.not_before = bucket.window_start + bucket.reset_after
                return (
                    429,
                    {"message": "You are being rate limited.", "retry_after": reset_after, "global": False},
                    headers,
                )
            if bucket.used == bucket.limit:
                bucket.not_before = bucket.window_start + bucket.reset_after
        status, answer = self._endpoint(method, path, query, body)
        return status, answer, headers

    def _endpoint(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/users/@me":
            return 200, {"id": BOT_ID, "username": "moltbot", "bot": True}
        if method == "POST" and path == "/users/@me/channels":
            user = str(body.get("recipient_id")) if isinstance(body, dict) else ""
            with self._lock:
                channel = self.dms.setdefault(user, str(800_000_000_000_000_000 + len(self.dms)))
            return 200, {"id": channel, "type": 1, "recipients": [{"id": user}]}
        match = re.fullmatch(r"/channels/(\d+)/messages(?:/(\d+))?", path)
        if not match:
            return 404, {"message": "404: Not Found", "code": 0}
        channel, message_id = match[1], match[2]
        with self._lock:
            messages = self.channels.setdefault(channel, [])
            found = next((m for m in messages if m["id"] == message_id), None) if message_id else None
        if method == "GET" and message_id is None:
            limit = min(100, int(query.get("limit", ["50"])[0]))
            newest_first = sorted(messages, key=lambda m: int(m["id"]), reverse=True)
            if "before" in query:
                newest_first = [m for m in newest_first if int(m["id"]) < int(query["before"][0])]
            return 200, newest_first[:limit]
        if method == "POST" and message_id is None:
            if channel in self.forbidden_channels:
                return 403, {"message": "Missing Permissions", "code": 50013}
            content = body.get("content") if isinstance(body, dict) else None
            if not content or len(content) > 2000:
                return 400, {"message": "Invalid Form Body", "code": 50035}
            return 200, self.post(channel, content, BOT_ID)
        if found is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        if method == "PATCH":
            if self.fail_edits:
                return 500, {"message": "500: Internal Server Error", "code": 0}
            if found["author"]["id"] != BOT_ID:
                return 403, {"message": "Cannot edit a message authored by another user", "code": 50005}
            with self._lock:
                found["content"] = body["content"]
            return 200, found
        if method == "DELETE":
            with self._lock:
                messages.remove(found)
            return 204, None
        return 405, {"message": "405: Method Not Allowed", "code": 0}


def _route(method: str, path: str) -> str:
    major = re.match(r"^/(channels|guilds)/(\d+)", path)
    rest = path[major.end() :] if major else path
    head = major[0] if major else ""
    blanked = re.sub(r"/\d{5,}", "/{id}", rest)
    return f"{method} {head}{blanked}"
