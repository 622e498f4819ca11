"""Scripts that talk to the owner: ``moltbot notify`` (a message to the admins) and ``moltbot ask``
(a question to them, answered on the phone; its exit code is the answer).

Both go through the core to the durable outbox, from inside a run (attributed to
its task) or from anywhere with the same ``MOLTBOT_HOME``. A run as ``[daemon]
task_user`` cannot write the database: both refuse there with ``EXIT_TASK_USER``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from datetime import timedelta
from types import FrameType

from moltbot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, core
from moltbot.durations import MAX_DURATION, parse_duration

__all__ = ["EXIT_NO_ANSWER", "EXIT_TASK_USER", "cmd_ask", "cmd_notify"]

EXIT_NO_ANSWER = 4  # nobody answered within the timeout (a contract, issue #13)
EXIT_TASK_USER = 5  # a run as [daemon] task_user: it cannot reach the database
ASK_POLL_SECONDS = 0.5  # how often the waiting `ask` reads the database: an answer shows within this
MAX_NOTIFY_CHARS = 4000  # the outbox splits a long text into phone-sized parts; this bounds their number
MAX_QUESTION_CHARS = 1000
_CHOICE = re.compile(r"[a-z][a-z0-9_-]{0,19}")


def _refused_as_task_user(command: str) -> bool:
    if not os.environ.get("MOLTBOT_RUN_DIR"):
        return False
    print(
        f"moltbot {command}: not available in a run as [daemon] task_user (it may not write moltbot's "
        "database); run the task as the daemon's user (no `user`, no task_user) to use it",
        file=sys.stderr,
    )
    return True


def _attributed(text: str) -> str:
    task = os.environ.get("MOLTBOT_TASK_ID")
    return f"{task}: {text}" if task else text


def _run_id() -> int | None:
    run = os.environ.get("MOLTBOT_RUN_ID", "")
    return int(run) if run.isdigit() else None


def cmd_notify(args: argparse.Namespace) -> int:
    text = args.text.strip()
    if not text or len(text) > MAX_NOTIFY_CHARS:
        print(f"moltbot notify: the text must be 1 to {MAX_NOTIFY_CHARS} characters", file=sys.stderr)
        return EXIT_USAGE
    if _refused_as_task_user("notify"):
        return EXIT_TASK_USER
    opened = core(args)
    opened.alert(_attributed(text))
    opened.wake_daemon()  # its senders look at the outbox now
    return EXIT_OK


def _choices(text: str) -> tuple[str, ...] | None:
    choices = tuple(choice.strip().lower() for choice in text.split(","))
    if not 2 <= len(choices) <= 5 or len(set(choices)) != len(choices):
        return None
    return choices if all(_CHOICE.fullmatch(choice) for choice in choices) else None


def cmd_ask(args: argparse.Namespace) -> int:
    question = args.question.strip()
    if not question or len(question) > MAX_QUESTION_CHARS:
        print(f"moltbot ask: the question must be 1 to {MAX_QUESTION_CHARS} characters", file=sys.stderr)
        return EXIT_USAGE
    choices = _choices(args.choices)
    if choices is None:
        print(
            "moltbot ask: --choices takes 2 to 5 different words (a letter, then letters, digits, - or _), "
            "e.g. yes,no or keep,delete,later",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        timeout = parse_duration(args.timeout, at_most=MAX_DURATION)
        assert timeout is not None  # never is not allowed here
    except ValueError as exc:
        print(f"moltbot ask: --timeout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if _refused_as_task_user("ask"):
        return EXIT_TASK_USER
    opened = core(args)
    asked = opened.questions.ask(
        _attributed(question), choices, timeout, task_id=os.environ.get("MOLTBOT_TASK_ID"), run_id=_run_id()
    )
    assert asked is not None  # only an approval's occurrence can have been asked before
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a stopped run closes its question
    try:
        while True:
            current = opened.questions.get(asked.id)
            if current is None or current.status == "expired":
                return _no_answer(timeout)
            if current.status == "answered":
                print(current.answer)
                return EXIT_OK if current.answer == choices[0] else EXIT_FAILED
            remaining = (current.expires_at - opened.clock.now()).total_seconds()
            if remaining <= 0:
                if opened.questions.give_up(current):
                    return _no_answer(timeout)
                continue  # answered in the last instant: read it
            time.sleep(min(ASK_POLL_SECONDS, remaining))
    finally:
        signal.signal(signal.SIGTERM, previous)
        current = opened.questions.get(asked.id)
        if current is not None and current.status == "open":
            opened.questions.give_up(current)


def _no_answer(timeout: timedelta) -> int:
    from moltbot.durations import spoken

    print(f"moltbot ask: no answer within {spoken(timeout)}", file=sys.stderr)
    return EXIT_NO_ANSWER


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
