"""Signal <-> moltbot: commands in, answers, run results and alerts out.

Three threads: the receiver (frames into a queue, receiver.py), the command
worker (here) and the outbox sender (the core's worker for ``SignalChannel``,
delivery.py). A command is authorized here and handed to the core with its
handler (``handlers/``): the core records it (a replay is never run twice),
handles it and queues its answer in one transaction.

Who may command: ``allowed`` senders (admins of moltbot), ``viewers`` for
read-only commands, by ACI UUID or number (senders.py: a number that may be
another account's is refused), 1:1 or in an allowed group. Anyone
else gets no answer at all; the refusal is logged without the message's
content, and admins hear of refusals at most every ten minutes.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from handlers.agent import Interpreter, answers_a_proposal, is_free_text
from handlers.answers import BARE_ANSWERS, NO_SUCH_QUESTION, NOTHING_WAITING, parse_answer, settle
from handlers.commands import MAX_TEXT_CHARS, handle, too_long
from moltbot import retries
from moltbot.config.integrations import OllamaSettings, SignalSettings
from moltbot.config.settings import Settings
from moltbot.core import Core, Question, ReceivedCommand, Reply, Request, Watcher, database_locked
from moltbot.core.delivery import Delivery
from moltbot.signal_chat.delivery import CHANNEL, SignalChannel
from moltbot.signal_chat.envelopes import Ignored, Inbound, classify
from moltbot.signal_chat.gateway import Gateway
from moltbot.signal_chat.receiver import Receiver
from moltbot.signal_chat.senders import Verdict, judge
from moltbot.threads import Supervised

__all__ = ["SignalBridge"]

log = logging.getLogger(__name__)
TYPING_REFRESH = 8.0  # Signal apps hide the indicator after a few seconds
STRANGER_ALERT_EVERY = timedelta(minutes=10)
EDITS_IGNORED = "edits are ignored; send the command again"
_STOP = object()


class _UseAgent(NamedTuple):
    """For the command worker: free text goes to this model from now on (None: to none)."""

    ollama: OllamaSettings | None


class SignalBridge:
    def __init__(
        self, core: Core, settings: SignalSettings, delivery: Delivery, ollama: OllamaSettings | None = None
    ) -> None:
        self.core = core
        self.settings = settings
        self.gateway = Gateway(settings)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.receiver = Receiver(self.gateway, self.frames, core.health, self._back_online)
        delivery.add(SignalChannel(self.gateway, settings, self._sent, core.people.with_paired))
        # Echo protection (linked device): what we sent comes back as the account's own sync messages.
        self._own_sends: deque[int] = deque(maxlen=1000)  # their timestamps
        self._own_texts: deque[str] = deque(maxlen=100)  # and texts: the echo may beat the send's answer
        self._typing: dict[int, tuple[str, float]] = {}  # run id -> (chat, last refresh, monotonic)
        self._refused = 0
        self._refusal_alerted: datetime | None = None
        self._worker = Supervised("signal-commands", self._one_frame, core.health)
        self._ollama = ollama
        self.interpreter = _interpreter(core, ollama)  # free text, when an agent is configured

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        self.receiver.start()
        allowed = len(self.settings.allowed)
        log.info("signal: bot %s, gateway %s, %d allowed", self.settings.number, self.settings.url, allowed)

    def stop(self) -> None:
        """Within ~10 s (systemd's stop timeout also covers the runs' grace period)."""
        self.receiver.stop()
        self._worker.stopping.set()
        self.frames.put(_STOP)
        self._worker.stop()

    def close(self) -> None:
        self.gateway.close()

    def settings_changed(self, settings: Settings) -> None:
        """A reload changed ``[ollama]``: the model is swapped by the command worker, between two
        messages, so no message is read by half of each."""
        if settings.ollama != self._ollama:
            self._ollama = settings.ollama
            self.frames.put(_UseAgent(settings.ollama))

    # --- commands ----------------------------------------------------------------------

    def _one_frame(self) -> None:
        try:
            frame = self.frames.get(timeout=TYPING_REFRESH if self._typing else None)
        except queue.Empty:
            frame = None
        if frame is _STOP:
            return
        if isinstance(frame, _UseAgent):
            self.interpreter = _interpreter(self.core, frame.ollama, self.interpreter)
            return
        if frame is not None:
            self._handle_until_stored(frame)
        self._refresh_typing()

    def _handle_until_stored(self, frame: Any) -> None:
        """A command the database could not take yet (locked by another process) is tried
        again, not dropped: the gateway will not send it twice."""
        attempt = 0
        while not self._worker.stopping.is_set():
            try:
                self.handle_frame(frame)
                return
            except Exception as error:
                if not database_locked(error):
                    log.exception("signal: a received message could not be handled")
                    return
                attempt += 1
                if attempt == 1:
                    log.warning("signal: the database is locked; the received message waits for it")
            self._worker.stopping.wait(retries.delay(retries.DATABASE_WAIT, attempt))

    def handle_frame(self, frame: Any) -> None:
        if self.interpreter is not None and not self.core.leads():
            # Several nodes with a model: its proposals live in the leader's memory, and every message
            # of a conversation may settle or withdraw one, so the leader takes them all.
            return
        found = classify(frame, self.settings, set(self._own_sends))
        if isinstance(found, Ignored):
            log.debug("signal: ignored a frame: %s", found.reason)
            return
        if self.settings.linked_device and found.text in self._own_texts:
            log.debug("signal: ignored the echo of our own message")
            return
        role, why = self._role(found)
        if role is None:
            if not self._paired(found):
                self._refuse(found, why)
            return
        age = self.core.clock.now().timestamp() - found.timestamp / 1000
        if age > self.settings.max_command_age_seconds:
            limit = self.settings.max_command_age_seconds
            log.info(
                "signal: ignored a command from %s sent %.0f s ago (max %g s)", found.sender_uuid, age, limit
            )
            return
        watcher = Watcher(CHANNEL, found.chat, found.timestamp, found.sender_number or found.sender_uuid)
        request = Request(found.text, role, f"signal:{found.sender_uuid}", watcher)
        # Recorded cut to the bound: the inbox keeps what a command may be, not a flood.
        recorded = found.text[:MAX_TEXT_CHARS]
        command = ReceivedCommand(CHANNEL, found.sender_uuid, found.timestamp, found.chat, recorded)
        refusal = too_long(found.text)
        answering = self._answers(found, request, role)
        if answering is not None:  # a question for the admins (handlers/answers.py: the precedence)
            settled = functools.partial(self._settle, answering, found, request)
            reply = self.core.chat.accept(command, watcher, lambda: self._withdrawing(request, settled()))
        elif refusal is not None:  # before anything reads it: the parser, the model
            reply = self.core.chat.accept(command, watcher, lambda: self._withdrawing(request, refusal))
        elif self.interpreter is not None and not found.edit and self._is_free_text(found.text):
            if self.core.chat.seen(command):
                return
            answer = self.interpreter.interpret(request)  # slow: outside any transaction
            reply = self.core.chat.accept(command, watcher, lambda: answer)
        elif found.edit:
            edit = Reply(EDITS_IGNORED)
            reply = self.core.chat.accept(command, watcher, lambda: self._withdrawing(request, edit))
        else:
            reply = self.core.chat.accept(command, watcher, lambda: self._answer(request))
        if reply is None:
            log.info(
                "signal: command %d from %s seen before; not repeated", found.timestamp, found.sender_uuid
            )
            return
        self._watch(reply, found)

    def _answers(self, found: Inbound, request: Request, role: str) -> tuple[Question | None, str] | None:
        """The question this message answers, with the choice; (None, word) for a numbered answer
        that answers nothing (it is told so); None when it is not an answer to a question."""
        answer = parse_answer(found.text)
        if answer is None or role != "admin" or found.group_id is not None or found.edit:
            return None  # questions go to each admin's own chat, and only there are they answered
        word, number = answer
        if number is None and self.interpreter is not None and self.interpreter.waiting(request):
            return None  # a bare yes/no settles the model's proposal first
        conversations = {f"signal:{found.sender_uuid}", f"signal:{found.sender_number or found.sender_uuid}"}
        sent_at = datetime.fromtimestamp(found.timestamp / 1000, UTC)
        question = self.core.questions.match(word, number, conversations, sent_at)
        if question is None and number is None and (word not in BARE_ANSWERS or self.interpreter is not None):
            return None  # a one-word command (or a bare yes the model's front says is for nothing)
        return question, word

    def _settle(self, answering: tuple[Question | None, str], found: Inbound, request: Request) -> Reply:
        question, word = answering
        if question is None:
            answer = parse_answer(found.text)
            if answer is not None and answer[1] is None:
                return Reply(NOTHING_WAITING.format(word=word))
            return Reply(NO_SUCH_QUESTION.format(number=answer[1] if answer else "?"))
        return settle(self.core, question, word, found.sender_number or found.sender_uuid, request)

    def _is_free_text(self, text: str) -> bool:
        return not answers_a_proposal(text) and is_free_text(text)

    def _answer(self, request: Request) -> Reply:
        """A command, a typo, a yes or a no: a proposal waiting in its conversation is settled too."""
        if self.interpreter is None:
            return handle(self.core, request)
        return self.interpreter.answer(request, lambda: handle(self.core, request))

    def _withdrawing(self, request: Request, reply: Reply) -> Reply:
        """Any message cancels what waits for a yes in its conversation, even one not read."""
        return reply if self.interpreter is None else self.interpreter.withdrawn(request, reply)

    def _watch(self, reply: Reply, found: Inbound) -> None:
        """A run was started: 👀 on the command, and the typing indicator while it runs."""
        if reply.run_id is not None:
            # At once: a short run may be over before the next refresh (then it is only switched off).
            self.gateway.typing(found.chat, on=True)
            self._typing[reply.run_id] = (found.chat, time.monotonic())
            self.gateway.react(found.chat, "👀", found.sender_number or found.sender_uuid, found.timestamp)

    def _role(self, found: Inbound) -> Verdict:
        if self.settings.linked_device:
            return Verdict("admin")  # envelopes.classify let only the account's own sends through
        return judge(self.core.people.with_paired(self.settings), found.sender_uuid, found.sender_number)

    def _paired(self, found: Inbound) -> bool:
        """A stranger's message that is an open pairing code (1:1 only: one sent to a group is spent
        unused): they are paired and told. A wrong code is refused like any stranger's message:
        nothing says a pairing is open."""
        if found.edit:
            return False
        watcher = Watcher(CHANNEL, found.chat, found.timestamp, found.sender_number or found.sender_uuid)
        in_group = found.group_id is not None

        def admins() -> list[Watcher]:  # the admins there are: read only for a right code
            return [Watcher(CHANNEL, a) for a in self.core.people.with_paired(self.settings).alert_recipients]

        person = self.core.people.pair(
            found.text, found.sender_uuid, found.sender_number, watcher, in_group, admins
        )
        if person is None:
            return False
        log.info("signal: paired %s (%s) with a pairing code", person.uuid, person.number or "number hidden")
        return True

    def _refuse(self, found: Inbound, why: str) -> None:
        """No reply, nothing runs; a log line (never the content) and, now and then, an alert."""
        number = found.sender_number or "number hidden"
        log.warning("signal: refused a message from %s (%s): %s", found.sender_uuid, number, why)
        self._refused += 1
        now = self.core.clock.now()
        if self._refusal_alerted is None or now - self._refusal_alerted >= STRANGER_ALERT_EVERY:
            who = found.sender_number or found.sender_uuid
            self.core.alert(f"⚠ ignored {self._refused} message(s) from senders not allowed (last: {who})")
            self._refused, self._refusal_alerted = 0, now

    # --- feedback ---------------------------------------------------------------------

    def _refresh_typing(self) -> None:
        now = time.monotonic()
        for run_id, (chat, refreshed) in list(self._typing.items()):
            run = self.core.run(run_id)
            if run is None or not run.active:
                del self._typing[run_id]
                self.gateway.typing(chat, on=False)
            elif now - refreshed >= TYPING_REFRESH - 0.5:
                self.gateway.typing(chat, on=True)
                self._typing[run_id] = (chat, now)

    def _sent(self, timestamp: int, text: str) -> None:
        if timestamp:
            self._own_sends.append(timestamp)
        else:
            self._own_texts.append(text)

    def _back_online(self, since: datetime) -> None:
        local = since.astimezone(self.core.settings.timezone).strftime("%H:%M")
        self.core.alert(f"moltbot is back online; resend anything you sent since {local}")


def _interpreter(
    core: Core, settings: OllamaSettings | None, kept: Interpreter | None = None
) -> Interpreter | None:
    """The free-text interpreter for ``settings``; ``kept``'s proposals waiting for a yes stay."""
    if settings is None:
        return None
    from moltbot.agents.ollama import OllamaClient

    client = OllamaClient(settings.host, settings.model, settings.timeout_seconds)
    ask = lambda messages, tools: client.chat(messages, tools)  # noqa: E731
    if kept is None:
        return Interpreter(core, ask)
    kept.chat = ask  # the proposals waiting for a yes stay: made by the model the sender saw
    return kept
