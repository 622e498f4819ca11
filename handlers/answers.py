"""Answers to the admins' questions (approvals, ``moltbot ask``): ``yes``, ``no``, ``yes 2``, ``keep #3``.

An answer is one word, a choice of the question, and optionally the question's
number; anything longer is not an answer (read no further than
``MAX_ANSWER_CHARS``). Which question it answers, and whether its sender may,
the core decides (``core/questions.py``): only a question sent to that person's
own chat, asked before the message was sent, still open.

Precedence (issue #13): a numbered answer always goes to its question. A bare
``yes`` or ``no`` goes to the model's proposal waiting in that conversation
(``agent.py``: made at most two minutes ago, in reply to that person's own
message) when there is one, else to the oldest open question there.
"""

from __future__ import annotations

from moltbot.core import Core, Question, Reply, Request

__all__ = [
    "BARE_ANSWERS",
    "MAX_ANSWER_CHARS",
    "NOTHING_WAITING",
    "NO_SUCH_QUESTION",
    "parse_answer",
    "settle",
]

MAX_ANSWER_CHARS = 40  # "delete 12" is ten; a choice is at most 20 characters
NO_SUCH_QUESTION = "no open question #{number} for you (answered, expired, or not asked of you)"
# A bare yes or no that finds nothing open (another admin answered first, or the host ran it):
# said so, rather than "unknown command 'yes'", which leaves the second admin guessing.
BARE_ANSWERS = ("yes", "no")
NOTHING_WAITING = (
    "no question waits for your {word}: answered already (status shows what ran), expired, "
    "or not asked of you"
)


def parse_answer(text: str) -> tuple[str, int | None] | None:
    """``"Yes 2"`` -> ("yes", 2), ``"no"`` -> ("no", None); None for anything that is not an answer."""
    if len(text) > MAX_ANSWER_CHARS:
        return None
    words = text.strip().lower().rstrip(".!").split()
    if not 1 <= len(words) <= 2 or not words[0].isascii() or not words[0][:1].isalpha():
        return None
    if len(words) == 1:
        return words[0], None
    digits = words[1].removeprefix("#")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 4):
        return None
    return words[0], int(digits)


def settle(core: Core, question: Question, word: str, by: str, request: Request) -> Reply:
    """Answer ``question`` with ``word`` for ``by`` (an approval's run reports to ``request``'s chat)."""
    answered = core.questions.answer(question, word, by, request.watcher)
    return Reply(answered.text, run_id=answered.run_id)
