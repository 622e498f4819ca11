"""Questions for the admins, channel-neutral: asked (written down, then sent), answered once, expired.

One mechanism for approvals (a due occurrence of an ``approve: true`` task
waits for a yes) and ``moltbot ask`` (a script waits for an answer). A
question is a row and an alert in one transaction. An answer must come from
a conversation the question was sent to, after it was asked, while it is
open: a bare choice answers the oldest open question there that has that
choice, ``yes 2`` question #2. The one who answers first settles it (a
conditional update); a question nobody answers expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from moltbot import store
from moltbot.clock import Clock
from moltbot.durations import spoken
from moltbot.records import ADMINS, ALERTS, Question, Run, Watcher

if TYPE_CHECKING:
    from moltbot.config.integrations import SignalSettings

__all__ = ["Answered", "Questions"]

log = logging.getLogger(__name__)
YES_NO = ("yes", "no")


class Answered(NamedTuple):
    """What an answer did, for the one who sent it."""

    text: str
    run_id: int | None = None  # an approval's run, started: its result follows


class Questions:
    def __init__(
        self,
        clock: Clock,
        signal: Callable[[], SignalSettings | None],
        zone: Callable[[], ZoneInfo],
        wake: Callable[[], None],
    ) -> None:
        self.clock = clock
        self._signal = signal  # [signal] with the paired people (core/people.py)
        self._zone = zone
        self._wake = wake

    # --- asking -----------------------------------------------------------------------------

    def _recipients(self) -> tuple[str, ...]:
        """The conversations a question goes to, and the only ones its answer may come from: each
        admin's own chat on Signal (the alert recipients)."""
        signal = self._signal()
        return tuple(f"signal:{address}" for address in signal.alert_recipients) if signal else ()

    def ask(
        self,
        text: str,
        choices: tuple[str, ...] = YES_NO,
        timeout: timedelta = timedelta(minutes=10),
        *,
        origin: str = "ask",
        task_id: str | None = None,
        run_id: int | None = None,
        scheduled_for: datetime | None = None,
    ) -> Question | None:
        """Write the question down and queue it for the admins, in one transaction; None when this
        occurrence was asked about before (an approval is asked once, whoever plans it)."""
        now = self.clock.now()
        with store.write_transaction():
            question = store.insert_question(
                text, choices, self._recipients(), origin, now, now + timeout,
                task_id=task_id, scheduled_for=scheduled_for, run_id=run_id,
            )  # fmt: skip
            if question is not None:
                store.enqueue_message(Watcher(ALERTS, ADMINS), self._phone_text(question), now)
                self._wake()  # after the commit: the daemon's senders look at the outbox
        return question

    def _phone_text(self, question: Question) -> str:
        numbered = len(store.open_questions()) > 1
        suffix = f" {question.number}" if numbered else ""
        answers = " / ".join(choice + suffix for choice in question.choices)
        if question.origin == "approval":  # the words, exactly
            body = f"🔐 {question.text} Run it? {answers}"
        else:
            until = question.expires_at.astimezone(self._zone()).strftime("%H:%M")
            body = f"❓ {question.text} {'answer ' if numbered else ''}{answers} (until {until})"
        return f"#{question.number} {body}" if numbered else body

    # --- reading ----------------------------------------------------------------------------

    def get(self, question_id: int) -> Question | None:
        return store.get_question(question_id)

    def waiting(self) -> list[Question]:
        """Open questions, oldest first (``status``)."""
        return store.open_questions()

    def match(
        self, word: str, number: int | None, conversations: set[str], sent_at: datetime
    ) -> Question | None:
        """The open question a message answers: sent to one of ``conversations`` before the message was
        sent, not expired, with ``word`` among its choices; #``number`` if given, else the oldest."""
        now = self.clock.now()
        for question in store.open_questions():
            if question.expires_at <= now or question.asked_at > sent_at:
                continue
            if not conversations & set(question.sent_to) or word not in question.choices:
                continue
            if number is None or question.number == number:
                return question
        return None

    # --- answering --------------------------------------------------------------------------

    def answer(self, question: Question, word: str, by: str, watcher: Watcher | None) -> Answered:
        """Settle ``question`` with ``word`` (inside the caller's transaction); an approval's yes starts
        its occurrence (its result to ``watcher``), its no records the occurrence as skipped."""
        now = self.clock.now()
        label = f"#{question.number}"
        with store.write_transaction():
            if not store.answer_question(question.id, word, by, now):
                return Answered(f"{label} was answered already")
            if question.origin != "approval":
                return Answered(f"✓ {label}: {word}")
            assert question.task_id is not None
            if word != question.choices[0]:
                self._skip(question, f"declined by {by}", now)
                return Answered(f"⏭ {question.task_id} ({self._due(question)}) skipped: declined by you")
            run = self._start(question, by, watcher, now)
        if run.status == "skipped":
            return Answered(f"⏭ {question.task_id}: {run.message}")
        return Answered(f"▶ {question.task_id} started (run {run.id}), approved by you", run.id)

    def approve_by_run(self, task_id: str, by: str, watcher: Watcher | None) -> Answered | None:
        """``run:TASK`` from an admin (or ``moltbot run TASK`` on the host) while TASK waits for
        approval: that counts as the yes. None: nothing waits (or the task is paused: then it is a
        plain run, and the occurrence stays the pause's)."""
        waiting = [q for q in store.open_questions() if q.origin == "approval" and q.task_id == task_id]
        task = store.get_task(task_id)
        if not waiting or task is None or task.paused_by not in (None, "shutdown"):
            return None
        return self.answer(waiting[0], waiting[0].choices[0], by, watcher)

    def give_up(self, question: Question) -> bool:
        """``moltbot ask``'s own timeout: the question is closed (a late answer finds it so)."""
        return store.answer_question(question.id, "", "nobody", self.clock.now(), status="expired")

    def expire(self) -> datetime | None:
        """Settle the questions whose time is up (an approval's occurrence is recorded as skipped, and
        the admins told); when the next one is up."""
        now = self.clock.now()
        for question in store.expired_questions(now):
            with store.write_transaction():
                if not store.answer_question(question.id, "", "nobody", now, status="expired"):
                    continue
                if question.origin == "approval" and question.task_id is not None:
                    waited = spoken(question.expires_at - question.asked_at)
                    self._skip(question, f"no answer within {waited}", now)
                    store.enqueue_message(
                        Watcher(ALERTS, ADMINS),
                        f"⏭ {question.task_id} ({self._due(question)}) skipped: no answer within {waited}. "
                        f"Send run:{question.task_id} to run it now.",
                        now,
                    )
        return store.next_expiry()

    def _due(self, question: Question) -> str:
        at = question.scheduled_for or question.asked_at
        return "due " + at.astimezone(self._zone()).strftime("%a %H:%M")

    def _skip(self, question: Question, reason: str, now: datetime) -> None:
        assert question.task_id is not None
        store.enqueue_run(
            question.task_id, "approval", None, now, refuse_because=reason, occurrence=question.scheduled_for
        )

    def _start(self, question: Question, by: str, watcher: Watcher | None, now: datetime) -> Run:
        """The approved occurrence, queued for the daemon (attempt 1 of it: the database refuses a second)."""
        assert question.task_id is not None
        task = store.get_task(question.task_id)
        refusal = None
        if task is None or task.removed:
            refusal = "the task is no longer configured"
        elif task.paused_by not in (None, "shutdown") or not task.enabled:
            # The owner stopped it after the question went out: that wins over an older yes.
            state = "paused" if task.enabled else "disabled"
            refusal = f"not run: {state} since it was asked; resume:{task.task_id}, then run:{task.task_id}"
        elif task.current_run_id is not None and task.overlap == "skip":
            refusal = f"already running (run {task.current_run_id}); overlap policy: skip"
        run = store.enqueue_run(
            question.task_id, "approved", by, now,
            refuse_because=refusal, watcher=watcher, occurrence=question.scheduled_for,
        )  # fmt: skip
        store.set_question_run(question.id, run.id)
        self._wake()  # after the commit
        return run
