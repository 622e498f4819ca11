"""Discord REST v10, for the Tasks Channel and the messages tasks send.

httpx with timeouts, ``Authorization: Bot <token>`` and the User-Agent
Discord asks for. Rate limits (NOTES.md §2) are honoured before a request is
sent, never after: each bucket's ``X-RateLimit-Remaining``/``Reset-After``
and any 429's ``retry_after`` (per bucket, or for everything when global)
hold back the next request to that bucket until then, and a sliding window
keeps the whole client under 50 requests per second. A 429 is retried until
``retries.DISCORD_RATE_LIMIT_STOP`` says enough; nothing else is retried
here (the caller decides).
Thread-safe: one lock guards the limits; waiting happens outside it.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from moltbot import __version__, retries

__all__ = ["DiscordClient", "DiscordError", "DiscordForbidden", "DiscordNotFound", "DiscordUnauthorized"]

log = logging.getLogger(__name__)
DEFAULT_API = "https://discord.com/api/v10"
GLOBAL_PER_SECOND = 50
_MAJOR = re.compile(r"^/(channels|guilds|webhooks)/(\d+)")
_ID = re.compile(r"/\d{5,}")


class DiscordError(Exception):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Discord answered {status}{f' (code {code})' if code else ''}: {message}")
        self.status, self.code = status, code


class DiscordUnauthorized(DiscordError):
    """401: the token is wrong or revoked; all Discord work stops."""


class DiscordForbidden(DiscordError):
    """403 (50001 missing access, 50013 missing permissions, 50005 not the author, 50007 DMs closed)."""


class DiscordNotFound(DiscordError):
    """404 (10008 unknown message, 10003 unknown channel): on edit or delete, already handled."""


def route_key(method: str, path: str) -> str:
    """The rate-limit route: method, path with ids blanked except the top-level resource's."""
    major = _MAJOR.match(path)
    rest = path[major.end() :] if major else path
    head = f"/{major[1]}/{major[2]}" if major else ""
    return f"{method} {head}{_ID.sub('/{id}', rest)}"


class DiscordClient:
    def __init__(
        self,
        token: str,
        api_base: str = DEFAULT_API,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(
            base_url=api_base.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={
                "Authorization": f"Bot {token}",
                "User-Agent": f"DiscordBot (https://github.com/moltbot/moltbot, {__version__})",
            },
        )
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._bucket_of: dict[str, str] = {}  # route -> Discord's bucket id
        self._blocked_until: dict[str, float] = {}  # bucket or route -> no request before this
        self._global_until = 0.0
        self._recent: deque[float] = deque()  # send times within the last second (global limit)
        self.unauthorized = False  # set by a 401: every later call fails at once

    def close(self) -> None:
        self._http.close()

    # --- the endpoints moltbot uses ------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/users/@me")  # type: ignore[no-any-return]

    def messages(self, channel_id: str, before: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params = {"limit": str(limit), **({"before": before} if before else {})}
        return self.request("GET", f"/channels/{channel_id}/messages", params=params)  # type: ignore[no-any-return]

    def all_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The whole channel, newest first (paginated with ``before``, not only the newest 100)."""
        found: list[dict[str, Any]] = []
        before = None
        while True:
            page = self.messages(channel_id, before)
            found += page
            if len(page) < 100:
                return found
            before = page[-1]["id"]

    def create_message(self, channel_id: str, content: str, nonce: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
        if nonce:
            body |= {"nonce": nonce[:25], "enforce_nonce": True}  # a retried post is not posted twice
        return self.request("POST", f"/channels/{channel_id}/messages", json=body)  # type: ignore[no-any-return]

    def edit_message(self, channel_id: str, message_id: str, content: str) -> dict[str, Any]:
        path = f"/channels/{channel_id}/messages/{message_id}"
        return self.request("PATCH", path, json={"content": content})  # type: ignore[no-any-return]

    def delete_message(self, channel_id: str, message_id: str) -> bool:
        """True when deleted now; False when it was already gone (404: handled elsewhere)."""
        try:
            self.request("DELETE", f"/channels/{channel_id}/messages/{message_id}")
        except DiscordNotFound:
            return False
        return True

    def open_dm(self, user_id: str) -> str:
        channel = self.request("POST", "/users/@me/channels", json={"recipient_id": user_id})
        return str(channel["id"])

    # --- the rate-limited request ---------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.unauthorized:
            raise DiscordUnauthorized(401, None, "the bot token was refused earlier; fix DISCORD_BOT_TOKEN")
        route = route_key(method, path)
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_turn(route)
            response = self._http.request(method, path, **kwargs)
            self._learn(route, response)
            if response.status_code != 429:
                return self._result(response)
            if retries.gives_up(retries.DISCORD_RATE_LIMIT_STOP, attempt):
                raise DiscordError(429, None, f"still rate limited after {attempt} tries ({method} {path})")
            self._on_429(route, response)

    def _wait_for_turn(self, route: str) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                bucket = self._bucket_of.get(route, route)
                until = max(self._global_until, self._blocked_until.get(bucket, 0.0))
                if len(self._recent) >= GLOBAL_PER_SECOND:
                    until = max(until, self._recent[0] + 1.0)
                if until <= now:
                    self._recent.append(now)
                    return
            self._sleep(until - now)

    def _learn(self, route: str, response: httpx.Response) -> None:
        headers = response.headers
        bucket = headers.get("X-RateLimit-Bucket")
        with self._lock:
            if bucket:
                self._bucket_of[route] = bucket
            key = self._bucket_of.get(route, route)
            if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset-After"):
                reset = self._clock() + float(headers["X-RateLimit-Reset-After"])
                self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), reset)

    def _on_429(self, route: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        retry_after = float(body.get("retry_after") or response.headers.get("Retry-After") or 1.0)
        is_global = bool(body.get("global")) or response.headers.get("X-RateLimit-Global") == "true"
        with self._lock:
            until = self._clock() + retry_after
            if is_global:
                self._global_until = max(self._global_until, until)
            else:
                key = self._bucket_of.get(route, route)
                self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
        scope = "global" if is_global else "bucket"
        log.warning("discord: rate limited on %s (%s); waiting %.2f s", route, scope, retry_after)

    def _result(self, response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_success:
            return body
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message", response.text[:200]) if isinstance(body, dict) else response.text[:200]
        if response.status_code == 401:
            self.unauthorized = True
            raise DiscordUnauthorized(401, code, message)
        error = {403: DiscordForbidden, 404: DiscordNotFound}.get(response.status_code, DiscordError)
        raise error(response.status_code, code, message)
