"""What ``moltbot notify`` and ``moltbot ask`` accept: checked by the CLI, and again by the daemon when
a run as the task user hands it the same request through its folder (``relay.py``). No store here:
the CLI and the daemon both import it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import NamedTuple

from moltbot.durations import MAX_DURATION, parse_duration

__all__ = ["MAX_NOTIFY_CHARS", "MAX_QUESTION_CHARS", "Asked", "Invalid", "ask", "notify"]

MAX_NOTIFY_CHARS = 4000  # the outbox splits a long text into phone-sized parts; this bounds their number
MAX_QUESTION_CHARS = 1000
_CHOICE = re.compile(r"[a-z][a-z0-9_-]{0,19}")


class Invalid(ValueError):
    """A request refused: its message says why, for the one who made it."""


class Asked(NamedTuple):
    question: str
    choices: tuple[str, ...]
    timeout: timedelta


def notify(text: object) -> str:
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > MAX_NOTIFY_CHARS:
        raise Invalid(f"the text must be 1 to {MAX_NOTIFY_CHARS} characters")
    return text


def ask(question: object, choices: object, timeout: object) -> Asked:
    """The question, its choices (``yes,no``: the first is yes) and timeout (``10m``), as given."""
    question = question.strip() if isinstance(question, str) else ""
    if not question or len(question) > MAX_QUESTION_CHARS:
        raise Invalid(f"the question must be 1 to {MAX_QUESTION_CHARS} characters")
    words = tuple(word.strip().lower() for word in choices.split(",")) if isinstance(choices, str) else ()
    if (
        not 2 <= len(words) <= 5
        or len(set(words)) != len(words)
        or not all(_CHOICE.fullmatch(word) for word in words)
    ):
        raise Invalid(
            "--choices takes 2 to 5 different words (a letter, then letters, digits, - or _), "
            "e.g. yes,no or keep,delete,later"
        )
    try:
        waited = parse_duration(timeout if isinstance(timeout, str) else "", at_most=MAX_DURATION)
    except ValueError as exc:
        raise Invalid(f"--timeout: {exc}") from exc
    if waited is None:  # never: not allowed here
        raise Invalid("--timeout: a duration is needed")
    return Asked(question, words, waited)
