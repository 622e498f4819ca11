"""Scripts that talk to the owner: ``moltbot notify`` (a message to the admins) and ``moltbot ask``
(a question to them, answered on the phone; its exit code is the answer).

Both go through the core to the durable outbox, from inside a run (attributed to
its task) or from anywhere with the same ``MOLTBOT_HOME``. A run as ``[daemon]
task_user`` cannot write the database: there both leave a request in the run's
folder (``MOLTBOT_RUN_DIR``), which the daemon (or the foreground ``moltbot
run`` that started the run) takes, checks again and answers (``relay.py``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import timedelta
from types import FrameType

from moltbot import run_dirs, talk_rules
from moltbot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, core

__all__ = ["EXIT_NO_ANSWER", "cmd_ask", "cmd_notify"]

EXIT_NO_ANSWER = 4  # nobody answered within the timeout (a contract, issue #13)
ASK_POLL_SECONDS = 0.5  # how often the waiting `ask` looks for its answer: it shows within this
# As the task user, the daemon's verdict decides: it settles the question at its expiry and hands
# the verdict on within a poll or two, so `ask` waits that much past its own timeout. Else an
# answer in the last instant, acknowledged to the admin with ✓, would find the script gone (exit 4).
VERDICT_GRACE_SECONDS = 5.0
NOTIFY_ACK_SECONDS = 30.0  # how long a run's `notify` waits for the daemon to queue its message


def _attributed(text: str) -> str:
    task = os.environ.get("MOLTBOT_TASK_ID")
    return f"{task}: {text}" if task else text


def _run_id() -> int | None:
    run = os.environ.get("MOLTBOT_RUN_ID", "")
    return int(run) if run.isdigit() else None


def _in_run_folder() -> bool:
    return bool(os.environ.get(run_dirs.RUN_DIR_ENV))


def cmd_notify(args: argparse.Namespace) -> int:
    try:
        text = talk_rules.notify(args.text)
    except talk_rules.Invalid as exc:
        print(f"moltbot notify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if _in_run_folder():
        return _notify_through_folder(text)
    opened = core(args)
    opened.alert(_attributed(text))
    opened.wake_daemon()  # its senders look at the outbox now
    return EXIT_OK


def _notify_through_folder(text: str) -> int:
    """As the task user: queued once the daemon says so (the daemon attributes it to the task)."""
    token = run_dirs.request("notify", {"text": text})
    deadline = time.monotonic() + NOTIFY_ACK_SECONDS
    while (reply := run_dirs.reply(token)) is None and time.monotonic() < deadline:
        time.sleep(ASK_POLL_SECONDS)
    if reply is not None and reply.get("status") == "queued":
        return EXIT_OK
    why = reply.get("error") if reply else f"not taken within {NOTIFY_ACK_SECONDS:.0f}s (is the daemon busy?)"
    print(
        f"moltbot notify: {why}; a message left in the run's folder is still sent when the run ends",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_ask(args: argparse.Namespace) -> int:
    try:
        asked = talk_rules.ask(args.question, args.choices, args.timeout)
    except talk_rules.Invalid as exc:
        print(f"moltbot ask: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if _in_run_folder():
        return _ask_through_folder(args, asked)
    opened = core(args)
    question = opened.questions.ask(
        _attributed(asked.question), asked.choices, asked.timeout,
        task_id=os.environ.get("MOLTBOT_TASK_ID"), run_id=_run_id(),
    )  # fmt: skip
    assert question is not None  # only an approval's occurrence can have been asked before
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a stopped run closes its question
    try:
        while True:
            current = opened.questions.get(question.id)
            if current is None or current.status == "expired":
                return _no_answer(asked.timeout)
            if current.status == "answered":
                return _answered(current.answer or "", asked.choices)
            remaining = (current.expires_at - opened.clock.now()).total_seconds()
            if remaining <= 0:
                if opened.questions.give_up(current):
                    return _no_answer(asked.timeout)
                continue  # answered in the last instant: read it
            time.sleep(min(ASK_POLL_SECONDS, remaining))
    finally:
        signal.signal(signal.SIGTERM, previous)
        current = opened.questions.get(question.id)
        if current is not None and current.status == "open":
            opened.questions.give_up(current)


def _ask_through_folder(args: argparse.Namespace, asked: talk_rules.Asked) -> int:
    """As the task user: the daemon asks, and closes the question when the run ends; this waits for
    its answer file, the daemon's verdict (or, with no daemon to take the request, its own timeout
    and a grace: no answer)."""
    token = run_dirs.request(
        "ask", {"question": asked.question, "choices": args.choices, "timeout": args.timeout}
    )
    deadline = time.monotonic() + asked.timeout.total_seconds() + VERDICT_GRACE_SECONDS
    while True:
        reply = run_dirs.reply(token)
        if reply is not None:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _no_answer(asked.timeout)
        time.sleep(min(ASK_POLL_SECONDS, remaining))
    if reply.get("status") == "answered" and isinstance(reply.get("answer"), str):
        return _answered(reply["answer"], asked.choices)
    if reply.get("status") == "refused":
        print(f"moltbot ask: refused: {reply.get('error')}", file=sys.stderr)
        return EXIT_USAGE
    return _no_answer(asked.timeout)


def _answered(answer: str, choices: tuple[str, ...]) -> int:
    print(answer)
    return EXIT_OK if answer == choices[0] else EXIT_FAILED


def _no_answer(timeout: timedelta) -> int:
    from moltbot.durations import spoken

    print(f"moltbot ask: no answer within {spoken(timeout)}", file=sys.stderr)
    return EXIT_NO_ANSWER


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
