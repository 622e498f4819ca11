"""Answers from a model server, read with a cap and checked before anything trusts their shape.

Ollama and Letta run on the owner's machines, but what they send is not
moltbot's to trust (a broken build, a proxy's error page, a hostile process
on the port): a body is read up to a cap and refused past it, parsed only
through ``bounded_json`` (size, then depth), and must be a JSON object. Each
failure is an ``AgentUnavailable`` naming the server, which every caller
already turns into a clear message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from moltbot import bounded_json

__all__ = ["MAX_ANSWER_BYTES", "AgentUnavailable", "body", "json_object", "ndjson_objects"]

# A model's reply is text for a phone; 4 MiB is far past any real one (and a model list is tiny).
MAX_ANSWER_BYTES = 4 * 2**20


class AgentUnavailable(Exception):
    """The agent cannot answer (server down, model missing, an error, a bad answer); the text says which."""


def body(response: httpx.Response, server: str, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The whole body of a streamed response, refused as soon as it passes ``limit``."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise AgentUnavailable(f"{server} answered over {limit} bytes; refused unread")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(data: bytes, server: str, limit: int = MAX_ANSWER_BYTES) -> dict[str, Any]:
    try:
        value = bounded_json.loads(data, limit)
    except ValueError as exc:  # UnsafeJson, JSONDecodeError, UnicodeDecodeError
        raise AgentUnavailable(f"{server} answered something that is not JSON we accept: {exc}") from exc
    if not isinstance(value, dict):
        raise AgentUnavailable(f"{server} answered JSON that is not an object")
    return value


def ndjson_objects(
    response: httpx.Response, server: str, limit: int = MAX_ANSWER_BYTES
) -> Iterator[dict[str, Any]]:
    """A streamed NDJSON answer, line by line; a line (or the whole) past ``limit`` is refused."""
    pending, size = b"", 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise AgentUnavailable(f"{server} streamed over {limit} bytes; refused")
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json_object(line, server, limit)
    if pending.strip():
        yield json_object(pending, server, limit)
