"""The signal-cli-rest-api gateway, behind one small module.

pysignalclirestapi (the owner's choice) makes the calls where its hazards can
be neutralised: ``_BoundedApi`` never touches the network in its constructor
(the library asks /v1/about there), answers ``about()`` from the mode
detected once by ``detect()`` (the library asks again before every call), and
sends every request through a session with a timeout (it sets none). Those
calls are reactions and the account list.

httpx makes the calls the library cannot make safely:

- ``POST /v2/send``: the library turns every failure into one error type
  without the HTTP status, but a 400 must never be retried (it may have been
  delivered, GATEWAY-NOTES 1.8) while connection errors, 5xx and 429 must be;
  it also drops a 429's challenge tokens and forces ``notify_self: false``.
- the typing indicator: the library has none.
- ``GET /v1/about``: detection needs the status code and a timeout.
- normal-mode ``GET /v1/receive``: its client timeout must outlast the
  server's wait, or the messages the server hands over are lost.

What the gateway answers to those two GETs is read only up to a bound and
parsed by ``moltbot.bounded_json`` (size, then depth); an answer of the wrong
shape (``/v1/about`` as ``[]`` or ``null``) is a ``GatewayError``, as an
unreachable gateway is, never a crash of the caller.
"""

from __future__ import annotations

import base64
import logging
import socket
from dataclasses import dataclass
from typing import Any

import httpx
import requests
from pysignalclirestapi import SignalCliRestApi

from moltbot import __version__, bounded_json
from moltbot.config.integrations import SignalSettings
from moltbot.redact import redact_urls
from moltbot.retries import quick_retries

__all__ = [
    "ABOUT_MAX_BYTES",
    "RECEIVE_MAX_BYTES",
    "About",
    "Gateway",
    "GatewayError",
    "GatewayUnavailable",
    "SendRefused",
    "SendUncertain",
    "rest_group_id",
]

log = logging.getLogger(__name__)
POLL_SECONDS = 10  # normal mode: how long the server waits for messages per request
ABOUT_MAX_BYTES = 64 * 1024  # /v1/about is a few hundred bytes
RECEIVE_MAX_BYTES = 4 * 1024 * 1024  # normal mode: the envelopes of POLL_SECONDS, a few KiB each


class GatewayError(Exception):
    def __init__(
        self, message: str, status: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


class GatewayUnavailable(GatewayError):
    """Not reached, 5xx or 429: the request surely took no effect; try again later."""


class SendRefused(GatewayError):
    """400 and the like: refused, though it may have been delivered (never retried)."""


class SendUncertain(GatewayError):
    """The request went out and no answer came: it may have taken effect (never retried)."""


@dataclass(frozen=True)
class About:
    mode: str  # normal | native | json-rpc
    version: str


def rest_group_id(internal_id: str) -> str:
    """groupInfo.groupId (internal) -> the ``group.<base64>`` id the REST API expects."""
    return "group." + base64.b64encode(internal_id.encode()).decode()


class _TimeoutSession(requests.Session):
    """A requests session whose every request is bounded in time."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(str(method), str(url), *args, **kwargs)


class _BoundedApi(SignalCliRestApi):  # type: ignore[misc]
    """pysignalclirestapi without its network calls at construction and before each request."""

    def __init__(self, base_url: str, number: str, timeout: float, about: dict[str, Any]) -> None:
        self._cached_about = about  # read by about(), which the base constructor calls
        super().__init__(base_url, number)
        self._session = _TimeoutSession(timeout)

    def about(self) -> dict[str, Any]:
        return self._cached_about


class Gateway:
    """One gateway, one account. Every call is bounded by ``settings.timeout_seconds``."""

    def __init__(self, settings: SignalSettings) -> None:
        self.settings = settings
        self.number = settings.number
        timeout = httpx.Timeout(settings.timeout_seconds)
        # TCP_NODELAY: a request's headers and body go out as separate writes, and
        # Nagle held the body for the peer's delayed ACK: 40 ms on every send.
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(
            base_url=settings.url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"moltbot/{__version__}"},
        )
        self.about: About | None = None
        self._api: _BoundedApi | None = None

    def close(self) -> None:
        self._http.close()

    # --- detection ---------------------------------------------------------------------

    def detect(self) -> About:
        """Ask /v1/about (once per connection); raises GatewayUnavailable when unreachable."""
        try:
            data = self._get_json("/v1/about", ABOUT_MAX_BYTES)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(
                redact_urls(f"gateway unreachable at {self.settings.url}: {exc}")
            ) from exc
        if not isinstance(data, dict):
            raise GatewayError(f"/v1/about answered JSON that is not an object ({type(data).__name__})")
        self.about = About(str(data.get("mode", "normal")), str(data.get("version", "?")))
        self._api = _BoundedApi(self.settings.url, self.number, self.settings.timeout_seconds, data)
        return self.about

    @property
    def receive_url(self) -> str:
        base = self.settings.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/v1/receive/{self.number}"

    # --- sending -------------------------------------------------------------------------

    @quick_retries(GatewayUnavailable)
    def send(
        self, recipient: str, text: str, quote: tuple[int, str] | None = None, attachment: str | None = None
    ) -> int:
        """POST /v2/send; the message's timestamp. Retries only what surely did not take effect."""
        body: dict[str, Any] = {"number": self.number, "recipients": [recipient], "message": text}
        if quote is not None:
            body["quote_timestamp"], body["quote_author"] = quote
        if attachment is not None:
            body["base64_attachments"] = [attachment]
        response = self._post("/v2/send", body)
        if response.status_code == 201:
            return _sent_timestamp(response.json())
        details = _error_body(response)
        message = f"/v2/send answered {response.status_code}: {details.get('error', response.text[:200])}"
        if response.status_code == 429 or response.status_code >= 500:
            raise GatewayUnavailable(message, response.status_code, details)
        raise SendRefused(message, response.status_code, details)

    def typing(self, recipient: str, on: bool) -> None:
        """Show (or stop showing) the typing indicator; best effort."""
        method = "PUT" if on else "DELETE"
        try:
            self._http.request(method, f"/v1/typing-indicator/{self.number}", json={"recipient": recipient})
        except httpx.HTTPError as exc:
            log.debug("typing indicator failed: %s", exc)

    def react(self, recipient: str, emoji: str, target_author: str, timestamp: int) -> None:
        """React to a message (best effort: a reaction is a courtesy, the reply is the answer)."""
        if self._api is None:
            return
        try:
            self._api.add_reaction(emoji, recipient, timestamp, target_author)
        except Exception as exc:  # the library raises its own error, or requests'
            log.debug("reaction failed: %s", exc)

    def accounts(self) -> list[str]:
        if self._api is None:
            self.detect()
        assert self._api is not None
        return list(self._api.list_accounts())

    # --- receiving (normal and native mode) ----------------------------------------------

    def poll(self) -> list[dict[str, Any]]:
        """GET /v1/receive: what arrived, waiting up to POLL_SECONDS for it."""
        try:
            frames = self._get_json(  # a JSON array, sent as text/plain
                f"/v1/receive/{self.number}",
                RECEIVE_MAX_BYTES,
                params={"timeout": str(POLL_SECONDS)},
                # Longer than the server's wait plus signal-cli's start-up: a client
                # that gives up first loses the messages the server already took.
                timeout=httpx.Timeout(self.settings.timeout_seconds + POLL_SECONDS + 30),
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"receive failed: {exc}") from exc
        return [frame for frame in frames if isinstance(frame, dict)] if isinstance(frames, list) else []

    def _get_json(self, path: str, max_bytes: int, **options: Any) -> Any:
        """GET ``path``: its JSON body, read up to ``max_bytes`` and parsed bounded; GatewayError else."""
        with self._http.stream("GET", path, **options) as response:
            if response.status_code != 200:
                raise GatewayUnavailable(f"{path} answered {response.status_code}", response.status_code)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:  # the rest is never read
                    raise GatewayError(f"{path} answered more than {max_bytes} bytes; refused unread")
        try:
            return bounded_json.loads(bytes(body), max_bytes)
        except ValueError as exc:  # not JSON, or nested too deep
            raise GatewayError(f"{path} answered what is not acceptable JSON: {exc}") from exc

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GatewayUnavailable(f"gateway unreachable: {exc}") from exc
        except httpx.HTTPError as exc:  # sent, then no (complete) answer
            raise SendUncertain(f"no answer from the gateway: {exc!r}") from exc


def _sent_timestamp(data: Any) -> int:
    """Release 0.100 answers {"timestamp": "…"}; newer ones [{"timestamp": "…", "errors": …}]."""
    if isinstance(data, list):
        data = data[0] if data else {}
    errors = data.get("errors") if isinstance(data, dict) else None
    if errors:
        log.warning("gateway reported per-recipient failures: %s", errors)
    try:
        return int(data["timestamp"])
    except (KeyError, TypeError, ValueError):
        return 0


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
