"""``moltbot notify`` and ``moltbot ask`` from runs as the task user, which may not write the database:
their requests, left in the run's folder (``run_dirs.py``), taken by the daemon as they come.

While such runs are active, a supervised thread looks in their folders every
``POLL_SECONDS``. A request is read with the care ``run_dirs.collect`` takes
(a regular file of the run's user, not a link, at most ``MAX_REQUEST_BYTES``),
parsed as bounded JSON, checked as the CLI checks it (``talk_rules.py``),
and made into the core's own calls, attributed to the run's task and run (the
task's id, never the request's word for it): a message to the admins, or a
question. The answer file (``answer-<token>.json``) acknowledges a
notification once it is in the outbox, and carries a question's answer once
it has one. Each request is taken once: its name is remembered for the
attempt's folder, which is the attempt's alone and goes with it (runs do not
outlive the daemon: a shutdown interrupts them, recovery after a crash kills
them). A run gets at most ``MAX_REQUESTS`` requests taken; the folder is
looked at no further. At the attempt's end, notifications it left are still
taken, and its questions still open are closed, as ``moltbot ask`` closes its
own when it ends. After a crash, recovery takes the notifications nobody took
(``unanswered_notifications``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from moltbot import bounded_json, run_dirs, talk_rules
from moltbot.records import Question
from moltbot.threads import Supervised, ThreadWatch

__all__ = ["MAX_REQUESTS", "Relay", "Talk"]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5  # how soon a request is taken, and an answer handed on
MAX_REQUESTS = 50  # per attempt: notifications and questions together
MAX_REQUEST_BYTES = 16 * 1024  # a question is at most 1000 characters, a notification 4000
MAX_ENTRIES = 500  # looked at per folder and pass: a run cannot make a pass long with junk
_REQUEST = re.compile(r"(ask|notify)-([0-9a-f]{1,10}-[0-9a-f]{16})\.json")


class Asking(Protocol):
    """What of ``core.questions.Questions`` the relay uses."""

    def ask(
        self, text: str, choices: tuple[str, ...], timeout: timedelta, *,
        task_id: str | None = None, run_id: int | None = None,
    ) -> Question | None: ...  # fmt: skip

    def get(self, question_id: int) -> Question | None: ...

    def give_up(self, question: Question) -> bool: ...


class Talk(Protocol):
    """What of the core the relay uses (``core.api.Core``)."""

    @property
    def questions(self) -> Asking: ...

    def alert(self, text: str) -> None: ...

    def wake_daemon(self) -> None: ...


@dataclass
class _Folder:
    path: Path
    uid: int
    task_id: str
    run_id: int
    taken: set[str] = field(default_factory=set)  # the requests' names
    asked: dict[str, int] = field(default_factory=dict)  # token -> question, not settled yet
    full: bool = False  # MAX_REQUESTS taken: no more


class Relay:
    def __init__(self, core: Talk, watch: ThreadWatch | None = None) -> None:
        self._core = core
        self._lock = threading.Lock()  # the folders, and the one taking their requests
        self._folders: dict[Path, _Folder] = {}
        self._wake = threading.Event()
        self._thread = Supervised("run-requests", self._one_pass, watch)
        self._started = False

    def watch(self, folder: Path, uid: int, task_id: str, run_id: int) -> None:
        """Take the requests an attempt (as ``uid``) leaves in ``folder`` from now on."""
        with self._lock:
            self._folders[folder] = _Folder(folder, uid, task_id, run_id)
            if not self._started:
                self._started = True
                self._thread.start()
        self._wake.set()

    def finish(self, folder: Path) -> None:
        """The attempt ended: its last notifications taken, its open questions closed."""
        with self._lock:
            watched = self._folders.pop(folder, None)
            if watched is None:
                return
            self._take(watched, questions=False)
            for question_id in watched.asked.values():
                question = self._core.questions.get(question_id)
                if question is not None and question.status == "open":
                    self._core.questions.give_up(question)

    def stop(self) -> None:
        self._thread.stopping.set()
        self._wake.set()
        if self._started:
            self._thread.stop()

    def _one_pass(self) -> None:
        with self._lock:
            for watched in list(self._folders.values()):
                self._take(watched)
                self._hand_on_answers(watched)
            busy = bool(self._folders)
        self._wake.wait(POLL_SECONDS if busy else None)
        self._wake.clear()

    def _take(self, watched: _Folder, questions: bool = True) -> None:
        for name in self._new_requests(watched):
            kind, token = name.split("-", 1)[0], name[name.index("-") + 1 : -len(".json")]
            if kind == "ask" and not questions:
                continue  # the run is over: nobody waits for the answer
            if len(watched.taken) >= MAX_REQUESTS:
                log.warning("%s run %d: over %d requests; no more taken", watched.task_id, watched.run_id,
                            MAX_REQUESTS)  # fmt: skip
                watched.full = True
                return
            try:
                body = self._body(watched, name)
                if kind == "notify":
                    self._notify(watched, token, body)
                else:
                    self._ask(watched, token, body)
            except talk_rules.Invalid as refusal:
                watched.taken.add(name)
                log.warning("%s run %d: %s refused: %s", watched.task_id, watched.run_id, name, refusal)
                run_dirs.answer(watched.path, token, {"status": "refused", "error": str(refusal)})

    def _new_requests(self, watched: _Folder) -> list[str]:
        if watched.full:
            return []
        names = []
        try:
            with os.scandir(watched.path) as entries:
                for count, entry in enumerate(entries):
                    if count >= MAX_ENTRIES:
                        break
                    if _REQUEST.fullmatch(entry.name) and entry.name not in watched.taken:
                        names.append(entry.name)
        except OSError as exc:
            log.warning("%s: not looked in: %s", watched.path, exc.strerror or exc)
        return sorted(names)

    def _body(self, watched: _Folder, name: str) -> dict[str, Any]:
        return _request_body(watched.path / name, watched.uid)

    def _notify(self, watched: _Folder, token: str, body: dict[str, Any]) -> None:
        text = talk_rules.notify(body.get("text"))
        self._core.alert(f"{watched.task_id}: {text}")  # in the outbox before the run hears of it
        self._core.wake_daemon()
        watched.taken.add(f"notify-{token}.json")
        run_dirs.answer(watched.path, token, {"status": "queued"})

    def _ask(self, watched: _Folder, token: str, body: dict[str, Any]) -> None:
        asked = talk_rules.ask(body.get("question"), body.get("choices"), body.get("timeout"))
        question = self._core.questions.ask(
            f"{watched.task_id}: {asked.question}", asked.choices, asked.timeout,
            task_id=watched.task_id, run_id=watched.run_id,
        )  # fmt: skip
        watched.taken.add(f"ask-{token}.json")
        if question is None:  # only an approval's occurrence is asked once
            raise talk_rules.Invalid("not asked")
        watched.asked[token] = question.id

    def _hand_on_answers(self, watched: _Folder) -> None:
        for token, question_id in list(watched.asked.items()):
            question = self._core.questions.get(question_id)
            if question is not None and question.status == "open":
                continue
            status = question.status if question is not None else "expired"
            answer = question.answer if question is not None else None
            run_dirs.answer(watched.path, token, {"status": status, "answer": answer})
            del watched.asked[token]


def _request_body(path: Path, uid: int) -> dict[str, Any]:
    text = run_dirs.read(path, uid, MAX_REQUEST_BYTES)
    if text is None:  # a link, another's file, too big: logged by read
        raise talk_rules.Invalid("not a file of the run's own under the size allowed")
    try:
        body = bounded_json.loads(text, MAX_REQUEST_BYTES, max_depth=2)
    except ValueError as exc:
        raise talk_rules.Invalid(f"not JSON moltbot wrote: {exc}") from exc
    if not isinstance(body, dict):
        raise talk_rules.Invalid("not JSON moltbot wrote")
    return body


def unanswered_notifications(folder: Path, uid: int) -> list[str]:
    """The notifications a run (as ``uid``) left that a crashed daemon never took (no answer file),
    oldest first, read and checked as the relay does: recovery queues them, so none is lost.
    Questions are not: the run that waited for the answer is gone."""
    texts = []
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for count, entry in enumerate(entries) if count < MAX_ENTRIES)
    except OSError as exc:
        log.warning("%s: not looked in: %s", folder, exc.strerror or exc)
        return []
    for name in names:
        found = _REQUEST.fullmatch(name)
        if found is None or found[1] != "notify" or f"answer-{found[2]}.json" in names:
            continue
        try:
            texts.append(talk_rules.notify(_request_body(folder / name, uid).get("text")))
        except talk_rules.Invalid as refusal:
            log.warning("%s: refused: %s", folder / name, refusal)
        if len(texts) >= MAX_REQUESTS:
            break
    return texts
