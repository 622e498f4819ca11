"""Discord REST v10, for the Tasks Channel and the messages tasks send.

httpx with timeouts, ``Authorization: Bot <token>`` and the User-Agent
Discord asks for. Rate limits (NOTES.md §2) are honoured before a request is
sent, never after: each bucket's ``X-RateLimit-Remaining``/``Reset-After``
and any 429's ``retry_after`` (per bucket, or for everything when global)
hold back the next request to that bucket until then, and a sliding window
keeps the whole client under 50 requests per second. A 429 is retried until
``retries.DISCORD_RATE_LIMIT_STOP`` says enough; nothing else is retried
here (the caller decides).
What Discord answers is bounded before it is parsed: read up to
``MAX_ANSWER_BYTES`` (the rest never), parsed by ``moltbot.bounded_json``; a
body of the wrong shape (a 429's that is no object, a page that is no list)
and rate-limit numbers that are no numbers never crash the caller: the former
is a ``DiscordError``, the latter fall back to a second's wait.
Thread-safe: one lock guards the limits; waiting happens outside it.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from moltbot import __version__, bounded_json, retries

__all__ = [
    "MAX_ANSWER_BYTES",
    "DiscordClient",
    "DiscordError",
    "DiscordForbidden",
    "DiscordNotFound",
    "DiscordUnauthorized",
]

log = logging.getLogger(__name__)
DEFAULT_API = "https://discord.com/api/v10"
GLOBAL_PER_SECOND = 50
# A page of 100 messages is at most ~6.5 MB (2000 characters of content and 6000 of embeds each,
# in UTF-8); anything bigger is not Discord's answer to anything moltbot asks.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_WAIT_SECONDS = 300.0  # the longest rate-limit wait believed; past it, the bucket is asked again
_MAJOR = re.compile(r"^/(channels|guilds|webhooks)/(\d+)")
_ID = re.compile(r"/\d{5,}")


class Answer:
    """A response read within its bound: status, headers and the body as it came."""

    def __init__(self, response: httpx.Response, body: bytes) -> None:
        self.status_code, self.headers, self.body = response.status_code, response.headers, body
        self.is_success = response.is_success

    def json(self) -> Any:
        """The body as JSON, parsed bounded; ValueError when it is none (or too deep)."""
        return bounded_json.loads(self.body, MAX_ANSWER_BYTES)

    @property
    def text(self) -> str:
        return self.body[:200].decode(errors="replace")


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
        """The bot's own user (``GET /users/@me``)."""
        user = self.request("GET", "/users/@me")
        if not isinstance(user, dict):
            raise DiscordError(200, None, "GET /users/@me answered no user object")
        return user

    def own_id(self) -> str:
        """The bot's own user id: its task messages count whoever else may post them."""
        user_id = str(self.me().get("id"))
        if not user_id.isdigit():
            raise DiscordError(200, None, "GET /users/@me answered no user id")
        return user_id

    def messages(self, channel_id: str, before: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """A page of messages, newest first; only objects with a message id are kept."""
        return [m for m in self._page(channel_id, before, limit) if _message_id(m)]

    def all_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The whole channel, newest first (paginated with ``before``, not only the newest 100)."""
        found: list[dict[str, Any]] = []
        before: str | None = None
        while True:
            page = self._page(channel_id, before, 100)
            found += [m for m in page if _message_id(m)]
            oldest = _message_id(page[-1]) if page else ""
            # A page that does not go back in time would be asked for again and again.
            if len(page) < 100 or not oldest or (before is not None and int(oldest) >= int(before)):
                return found
            before = oldest

    def _page(self, channel_id: str, before: str | None, limit: int) -> list[Any]:
        params = {"limit": str(limit), **({"before": before} if before else {})}
        page = self.request("GET", f"/channels/{channel_id}/messages", params=params)
        if not isinstance(page, list):
            raise DiscordError(200, None, f"a page of channel {channel_id} is not a list of messages")
        return page

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
        channel_id = str(channel.get("id")) if isinstance(channel, dict) else ""
        if not channel_id.isdigit():
            raise DiscordError(200, None, f"opening a DM with {user_id} answered no channel id")
        return channel_id

    # --- the rate-limited request ---------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.unauthorized:
            raise DiscordUnauthorized(401, None, "the bot token was refused earlier; fix DISCORD_BOT_TOKEN")
        route = route_key(method, path)
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_turn(route)
            response = self._bounded(method, path, **kwargs)
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

    def _bounded(self, method: str, path: str, **kwargs: Any) -> Answer:
        """The request's answer, read up to MAX_ANSWER_BYTES; DiscordError (unread rest) beyond."""
        with self._http.stream(method, path, **kwargs) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    message = f"{method} {path} answered more than {MAX_ANSWER_BYTES} bytes; refused unread"
                    raise DiscordError(response.status_code, None, message)
            return Answer(response, bytes(body))

    def _learn(self, route: str, response: Answer) -> None:
        headers = response.headers
        bucket = headers.get("X-RateLimit-Bucket")
        with self._lock:
            if bucket:
                self._bucket_of[route] = bucket
            key = self._bucket_of.get(route, route)
            reset_after = _seconds(headers.get("X-RateLimit-Reset-After"))
            if headers.get("X-RateLimit-Remaining") == "0" and reset_after is not None:
                reset = self._clock() + reset_after
                self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), reset)

    def _on_429(self, route: str, response: Answer) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # Discord's is an object; a proxy's may be anything
            body = {}
        retry_after = (
            _seconds(body.get("retry_after")) or _seconds(response.headers.get("Retry-After")) or 1.0
        )
        is_global = body.get("global") is True or response.headers.get("X-RateLimit-Global") == "true"
        with self._lock:
            until = self._clock() + retry_after
            if is_global:
                self._global_until = max(self._global_until, until)
            else:
                key = self._bucket_of.get(route, route)
                self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
        scope = "global" if is_global else "bucket"
        log.warning("discord: rate limited on %s (%s); waiting %.2f s", route, scope, retry_after)

    def _result(self, response: Answer) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError as exc:  # not JSON, or nested too deep
            if response.is_success:
                raise DiscordError(response.status_code, None, f"an answer that is not JSON: {exc}") from exc
            body = None
        if response.is_success:
            return body
        code = body.get("code") if isinstance(body, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        message = body.get("message") if isinstance(body, dict) else None
        message = message[:200] if isinstance(message, str) else response.text
        if response.status_code == 401:
            self.unauthorized = True
            raise DiscordUnauthorized(401, code, message)
        error = {403: DiscordForbidden, 404: DiscordNotFound}.get(response.status_code, DiscordError)
        raise error(response.status_code, code, message)


def _seconds(value: object) -> float | None:
    """A wait Discord gave (a header's text, or a JSON number), within reason; None if it is none."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_WAIT_SECONDS)


def _message_id(message: object) -> str:
    """A message's id when it is a message with one (a snowflake), else ""."""
    message_id = str(message.get("id", "")) if isinstance(message, dict) else ""
    return message_id if message_id.isdigit() else ""
